"""The Docker plugin's HTTP server on a real unix socket: JSON calls, bad input, a slow handler, a stolen name."""

import json
import socket
from pathlib import Path
from typing import Any

import pytest
import trio

from meshd.plugin import PluginServer
from meshd.plugin._http import MAX_BODY


def _post(path: str, target: str, body: bytes) -> tuple[int, dict[str, Any]]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(path)
        s.sendall(f"POST {target} HTTP/1.1\r\nHost: plugin\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(rest)


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


async def test_calls_are_answered_and_bad_input_gets_an_err(tmp_path: Path) -> None:
    sock = str(tmp_path / "plugins" / "t.sock")

    async def handler(target: str, body: Any) -> dict[str, Any]:
        if target == "/slow":
            await trio.sleep(10)
        return {"target": target, "body": body}

    async with trio.open_nursery() as nursery:
        await nursery.start(PluginServer(sock, handler, reply_timeout_s=0.3).run)
        call = lambda target, body: trio.to_thread.run_sync(_post, sock, target, body)  # noqa: E731
        assert await call("/Plugin.Activate", b'{"a": 1}') == (200, {"target": "/Plugin.Activate", "body": {"a": 1}})
        status, reply = await call("/X", b"{not json")
        assert status == 200 and "not JSON" in reply["Err"]
        status, reply = await call("/slow", b"{}")
        assert "could not answer /slow" in reply["Err"] and "no Raft leader" in reply["Err"]
        status, reply = await call("/X", b"x" * (MAX_BODY + 10))
        assert status == 413
        with pytest.raises(OSError, match="served by another process"):
            await PluginServer(sock, handler).run()
        nursery.cancel_scope.cancel()
    assert not await trio.Path(sock).exists()  # removed when the agent stops

"""The plugin socket: HTTP/1.1 with JSON bodies on a unix socket, as dockerd's plugin client speaks it.

One trio task per connection drives an ``h11.Connection``; every request is a
``POST`` of a JSON body to a call's path (``/NetworkDriver.Join``), answered
with the JSON the handler returns.  Bounds: at most ``MAX_CONNECTIONS``
connections, a request's headers and body at most ``MAX_BODY`` bytes (413),
a request must arrive within ``REQUEST_TIMEOUT_S``, and a handler that has
not answered within ``REPLY_TIMEOUT_S`` (no Raft leader, say) is answered with
an ``Err`` saying so — dockerd's own timeout is 30 s or more, and it shows the
``Err`` to its user instead of hanging.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import h11
import trio

log = logging.getLogger("meshd.plugin")

MAX_CONNECTIONS = 64
MAX_BODY = 1 << 20
REQUEST_TIMEOUT_S = 30.0
REPLY_TIMEOUT_S = 20.0
_CONTENT_TYPE = b"application/vnd.docker.plugins.v1.2+json"

Handler = Callable[[str, Any], Awaitable[dict[str, Any]]]


class PluginServer:
    """Serves ``handler(path, body)`` on the unix socket ``path``: ``await nursery.start(server.run)``."""

    def __init__(self, path: str, handler: Handler, *, reply_timeout_s: float = REPLY_TIMEOUT_S,
                 refusal: Callable[[str, str], dict[str, Any]] = lambda target, message: {"Err": message}) -> None:
        self.path = path
        self.handler = handler
        #: the reply that refuses a call to ``target`` with ``message`` (the key differs by API)
        self.refusal = refusal
        self.reply_timeout_s = reply_timeout_s
        self.connections = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        _prepare(self.path)
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        await sock.bind(self.path)
        os.chmod(self.path, 0o600)
        sock.listen(MAX_CONNECTIONS)
        listener = trio.SocketListener(sock)
        task_status.started()
        try:
            async with trio.open_nursery() as nursery:
                while True:
                    stream = await listener.accept()
                    if self.connections >= MAX_CONNECTIONS:
                        await stream.aclose()
                        continue
                    nursery.start_soon(self._serve, stream)
        finally:
            with trio.CancelScope(shield=True):
                await listener.aclose()
            with contextlib.suppress(FileNotFoundError):  # removed by hand: nothing left to clean
                os.unlink(self.path)

    async def _serve(self, stream: trio.abc.Stream) -> None:
        self.connections += 1
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_BODY)
        try:
            while conn.our_state is not h11.CLOSED and conn.their_state is not h11.CLOSED:
                with trio.move_on_after(REQUEST_TIMEOUT_S) as idle:
                    request = await _request(conn, stream)
                if idle.cancelled_caught or request is None:
                    return
                target, body = request
                await _send(conn, stream, await self._answer(target, body))
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
        except (h11.RemoteProtocolError, trio.BrokenResourceError, trio.ClosedResourceError, _TooLarge):
            return
        finally:
            self.connections -= 1
            with trio.CancelScope(shield=True):
                await stream.aclose()

    async def _answer(self, target: str, body: bytes) -> dict[str, Any]:
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            return self.refusal(target, f"{target}: the body is not JSON")
        with trio.move_on_after(self.reply_timeout_s):
            return await self.handler(target, data)
        log.warning("plugin call timed out call=%s after=%.0fs", target, self.reply_timeout_s)
        return self.refusal(target, f"meshd could not answer {target} within {self.reply_timeout_s:.0f} s: the "
                                    "cluster cannot commit now (no Raft leader?); `meshd status` on this host says "
                                    "why; retry")


class _TooLarge(Exception):
    """A request body over ``MAX_BODY``: answered with 413, then the connection is closed."""


async def _request(conn: h11.Connection, stream: trio.abc.Stream) -> tuple[str, bytes] | None:
    target, body = "", bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(65536)
            conn.receive_data(bytes(data))
            if not data and conn.their_state is not h11.DONE:
                return None
            continue
        if isinstance(event, h11.Request):
            target = event.target.decode("latin-1").split("?")[0]
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > MAX_BODY:
                await _send(conn, stream, {"Err": f"request body larger than {MAX_BODY} bytes",
                                           "Error": f"request body larger than {MAX_BODY} bytes"}, 413)
                raise _TooLarge
        elif isinstance(event, h11.EndOfMessage):
            return target, bytes(body)
        elif isinstance(event, h11.ConnectionClosed):
            return None


async def _send(conn: h11.Connection, stream: trio.abc.Stream, reply: dict[str, Any], status: int = 200) -> None:
    body = json.dumps(reply).encode()
    headers = [(b"content-type", _CONTENT_TYPE), (b"content-length", str(len(body)).encode())]
    data = conn.send(h11.Response(status_code=status, headers=headers))
    data += conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())
    await stream.send_all(data)


def _prepare(path: str) -> None:
    """The socket's directory exists, and no dead agent's socket file is in the way."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.exists(path):
        _refuse_if_served(path)
        os.unlink(path)  # left by an agent that died


def _refuse_if_served(path: str) -> None:
    """A socket someone still accepts on is another agent's: starting would steal its plugin."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except OSError:
            return
    raise OSError(f"{path} is served by another process (another meshd agent on this dockerd?): give this agent "
                  "another api.docker_plugin name, or set it to \"\" to run without the Docker plugin")

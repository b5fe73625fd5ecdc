"""nftables through libnftables (no fork of the nft binary per call).

One context per call; a call for another namespace runs wholly inside it
(``InNetns``). A script is one nft transaction: it applies completely or not
at all.

libnftables (1.0.6, Debian 12) waits for the kernel's answer with
``select()`` on its netlink socket, and glibc aborts the whole process
("bit out of range 0 - FD_SETSIZE on fd_set") when that socket's descriptor
is 1024 or more -- which it is in an agent of a cluster of ~150 hosts, whose
ZeroMQ sockets hold over a thousand descriptors. So a process that may hold
that many (its RLIMIT_NOFILE is above FD_SETSIZE, as under systemd's
``LimitNOFILE=65536``) runs libnftables in a helper child process
(``python -m netops._nft_helper``, started at the first call, one request at
a time over pipes) whose descriptor table stays small; the helper enters the
caller's netns (the calling thread's, when none is given) for each call.
A process limited to FD_SETSIZE descriptors calls libnftables itself.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import resource
import subprocess
import sys
import threading
from dataclasses import dataclass
from typing import IO

from netops._errors import NetopsError
from netops._nl import InNetns

_lib = ctypes.CDLL("libnftables.so.1", use_errno=True)
_lib.nft_ctx_new.restype = ctypes.c_void_p
_lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
_lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
_lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
_lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
_lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
_lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
_lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
_lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
_lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
_lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
NFT_CTX_OUTPUT_JSON = 1 << 4
NFT_CTX_OUTPUT_HANDLE = 1 << 3


def _run_here(script: str, json_out: bool) -> str:
    ctx = _lib.nft_ctx_new(0)
    try:
        _lib.nft_ctx_buffer_output(ctx)
        _lib.nft_ctx_buffer_error(ctx)
        if json_out:
            _lib.nft_ctx_output_set_flags(ctx, NFT_CTX_OUTPUT_JSON)
        rc = _lib.nft_run_cmd_from_buffer(ctx, script.encode())
        out = (_lib.nft_ctx_get_output_buffer(ctx) or b"").decode()
        err = (_lib.nft_ctx_get_error_buffer(ctx) or b"").decode().strip()
    finally:
        _lib.nft_ctx_free(ctx)
    if rc != 0:
        first = script.strip().splitlines()[0] if script.strip() else ""
        raise NetopsError("apply nft script", repr(first[:80]), errno.EINVAL, err.splitlines()[0] if err else "")
    return out


def run_in(script: str, netns: str | None, json_out: bool) -> str:
    """Run an nft script with libnftables in this process (in ``netns``, or the calling thread's)."""
    if netns is None:
        return _run_here(script, json_out)
    with InNetns(netns):
        return _run_here(script, json_out)


#: glibc's fd_set holds descriptors 0..1023; libnftables select()s on its netlink socket
FD_SETSIZE = 1024


def needs_helper() -> bool:
    """Whether this process may hold descriptors libnftables cannot select() on (module doc)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft == resource.RLIM_INFINITY or soft > FD_SETSIZE


def run(script: str, netns: str | None = None, json_out: bool = False) -> str:
    """Run an nft script (one transaction) in ``netns`` (a path; None: the calling thread's
    netns); returns nft's output.

    Raises:
        NetopsError: nft rejected the script (the hint is nft's first error line), or the
            helper process that runs libnftables died.
    """
    if not needs_helper():
        return run_in(script, netns, json_out)
    if netns is None:  # the helper enters the netns this thread is in now
        netns = f"/proc/{os.getpid()}/task/{threading.get_native_id()}/ns/net"
    return _HELPER.call(script, netns, json_out)


class _Helper:
    """The child process that runs libnftables for this one (``netops._nft_helper``): one JSON
    request line in (script, netns, json), one JSON answer line out (output, or the error's
    fields). Started at the first call and again after it died; a call that was under way
    when it died fails (the transaction applied completely or not at all; the caller's next
    pass looks again)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None

    def call(self, script: str, netns: str, json_out: bool) -> str:
        request = (json.dumps({"script": script, "netns": netns, "json": json_out}) + "\n").encode()
        with self._lock:
            proc = self._proc
            if proc is None or proc.poll() is not None:
                proc = self._proc = subprocess.Popen(
                    [sys.executable, "-m", "netops._nft_helper"], stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE, close_fds=True)
            stdin, stdout = proc.stdin, proc.stdout
            assert stdin is not None and stdout is not None
            try:
                stdin.write(request)
                stdin.flush()
                line = stdout.readline()
            except OSError:
                line = b""
            if not line:
                self._proc = None
                _reap(proc, stdin, stdout)
                first = script.strip().splitlines()[0] if script.strip() else ""
                raise NetopsError("apply nft script", repr(first[:80]), errno.EIO,
                                  f"the nft helper process exited ({proc.returncode}); the next call starts "
                                  "a new one")
        answer = json.loads(line)
        if "error" in answer:
            raise NetopsError(*answer["error"])
        return str(answer["output"])


def _reap(proc: subprocess.Popen[bytes], *pipes: IO[bytes]) -> None:
    for pipe in pipes:
        with contextlib.suppress(OSError):  # a pipe to a dead process may be broken
            pipe.close()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


_HELPER = _Helper()


def list_table(family: str, table: str, netns: str | None = None) -> list[dict] | None:
    """The table as nft's JSON objects, or None when it does not exist."""
    try:
        out = run(f"list table {family} {table}", netns, json_out=True)
    except NetopsError:
        return None
    return json.loads(out).get("nftables", [])


@dataclass(frozen=True, slots=True)
class NftTable:
    """A table's identity tag (the comment on its first rule) and its sets' elements.

    Elements are canonical strings: ``"mv1a2b . 10.1.0.2"``, ``"mg-7 . 10.2.0.0/24"``, ``"mv1a2b"``.
    """

    tag: str
    sets: dict[str, frozenset[str]]


def _element(value: object) -> str:
    if isinstance(value, list) and len(value) == 2:  # a map's element: [key, value]
        return f"{_element(value[0])} : {_verdict(value[1])}"
    if isinstance(value, dict):
        if "concat" in value:
            return " . ".join(_element(v) for v in value["concat"])
        if "prefix" in value:
            return f"{value['prefix']['addr']}/{value['prefix']['len']}"
        if "elem" in value:
            return _element(value["elem"]["val"])
    return str(value)


def _verdict(value: object) -> str:
    """``{"accept": null}`` → ``accept``, ``{"jump": {"target": "x"}}`` → ``jump x``; other values as elements."""
    if isinstance(value, dict) and len(value) == 1:
        (kind, arg), = value.items()
        if arg is None:
            return str(kind)
        if isinstance(arg, dict) and "target" in arg:
            return f"{kind} {arg['target']}"
    return _element(value)


def dump_table(family: str, table: str, netns: str | None = None) -> NftTable | None:
    """The table's tag and the elements of its sets and maps (``"key : value"``), or None when
    the table does not exist."""
    objects = list_table(family, table, netns)
    if objects is None:
        return None
    tag, sets = "", {}
    for obj in objects:
        if "set" in obj or "map" in obj:
            s = obj.get("set") or obj["map"]
            sets[s["name"]] = frozenset(_element(e) for e in s.get("elem", []))
        elif "rule" in obj and not tag:
            tag = obj["rule"].get("comment", "")
    return NftTable(tag, sets)

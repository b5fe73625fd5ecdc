"""A byte-forwarding unix-socket proxy in front of the real dockerd socket.

Lets a test cut every connection to dockerd (as a dockerd restart does) or make
dockerd unreachable, without touching the real daemon other tests share.
"""

from __future__ import annotations

import os
import socket

import trio

DOCKER_SOCK = "/var/run/docker.sock"


class DockerProxy:
    """Forwards ``path`` to dockerd; ``drop_all()`` cuts every open connection."""

    def __init__(self, path: str, upstream: str = DOCKER_SOCK) -> None:
        self.path = path
        self.upstream = upstream
        self.url = f"unix://{path}"
        self.accepted = 0
        self._scopes: set[trio.CancelScope] = set()

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen until cancelled; on exit every connection is closed and the socket file removed."""
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        await sock.bind(self.path)
        sock.listen(64)
        listener = trio.SocketListener(sock)
        try:
            async with trio.open_nursery() as nursery:
                task_status.started()
                while True:
                    stream = await listener.accept()
                    self.accepted += 1
                    nursery.start_soon(self._forward, stream)
        finally:
            self.drop_all()
            os.unlink(self.path)  # before aclose: in a cancelled scope aclose raises after closing
            await listener.aclose()

    def drop_all(self) -> None:
        for scope in list(self._scopes):
            scope.cancel()

    async def _forward(self, client: trio.SocketStream) -> None:
        with trio.CancelScope() as scope:
            self._scopes.add(scope)
            try:
                upstream = await trio.open_unix_socket(self.upstream)
                async with client, upstream, trio.open_nursery() as nursery:
                    nursery.start_soon(_copy, client, upstream, nursery.cancel_scope)
                    nursery.start_soon(_copy, upstream, client, nursery.cancel_scope)
            finally:
                self._scopes.discard(scope)


async def _copy(src: trio.SocketStream, dst: trio.SocketStream, done: trio.CancelScope) -> None:
    try:
        while data := await src.receive_some(65536):
            await dst.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # either side hung up: the relay simply ends
    done.cancel()

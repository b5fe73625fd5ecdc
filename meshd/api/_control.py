"""The local control socket: the scheduler protocol over a root-only ipc:// ROUTER.

The CLI (`meshd status`, `meshd network ...`) and `meshd top` talk to the
agent of their own host through ``<agent.run_dir>/control.sock``.  It speaks
exactly the scheduler framing and request types (docs/api.md) with the same
:class:`~meshd.api.SchedulerService`, so every CLI verb is also a scheduler
request.  There is no CURVE on it: the run directory is created mode 0700 and
the socket file mode 0600, so only root reaches it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import trio
import zmq

from meshd.transport import TrioSocket, ZmqHost

from ._service import SchedulerService

log = logging.getLogger("meshd.api")

CONTROL_SOCKET = "control.sock"


class ControlServer:
    """Serves :class:`SchedulerService` on ``ipc://<run_dir>/control.sock``."""

    def __init__(self, host: ZmqHost, service: SchedulerService, run_dir: str) -> None:
        self.host = host
        self.service = service
        self.path = Path(run_dir) / CONTROL_SOCKET

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(self.path.parent, 0o700)
        if self.path.exists():
            self.path.unlink()  # left by an agent that died; a live one would hold the lock file
        raw = self.host.ctx.socket(zmq.ROUTER)
        raw.setsockopt(zmq.LINGER, 0)
        sock = TrioSocket(raw)
        old_umask = os.umask(0o177)
        try:
            raw.bind(f"ipc://{self.path}")
        finally:
            os.umask(old_umask)
        log.info("control socket listening path=%s", self.path)
        try:
            async with trio.open_nursery() as nursery:
                task_status.started()
                while True:
                    frames = await sock.recv_multipart()
                    if len(frames) == 2:
                        nursery.start_soon(self._answer, sock, frames[0], frames[1])
        finally:
            sock.close()
            self.path.unlink(missing_ok=True)

    async def _answer(self, sock: TrioSocket, identity: bytes, frame: bytes) -> None:
        reply = await self.service.handle(frame, require_request_id=False)
        try:
            sock.send_multipart_nowait([identity, reply])
        except (trio.WouldBlock, zmq.ZMQError):
            pass  # the CLI went away

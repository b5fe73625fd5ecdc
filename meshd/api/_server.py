"""The scheduler API sockets: SUB 30027, ROUTER 30028, PUB 30029, all CURVE.

* SUB (bound, seed 001 compatible): schedulers connect a PUB and publish
  request frames; nothing is answered on this socket, but a failure is
  published on the PUB socket as ``EVENT_ERROR`` with the request's
  ``request_id`` and type.
* ROUTER: the same frames as requests; each gets exactly one reply frame.
* PUB: events (endpoint up/down, network created/deleted, member changes,
  endpoint counters, errors of SUB requests).

The sockets present the API key pair derived from the cluster secret and the
ZAP handler admits the scheduler client keys from ``api.clients_dir``
(ZAP domain ``meshd-api``).  Each request runs in its own task, at most
``max_concurrent`` at once, so a slow connect never delays a query.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import trio
import zmq

from meshd.config import ApiConfig
from meshd.transport import API_DOMAIN, KeyPair, TrioSocket, ZmqHost

from ._frame import RESPONSE_FLAG, ApiError, MsgType, pack
from ._service import SchedulerService

log = logging.getLogger("meshd.api")

_MULTIPART_ERROR = pack(RESPONSE_FLAG, {"ok": False, "request_id": "", "error": {
    "code": int(ApiError.TRUNCATED), "message": "a request is exactly one ZeroMQ frame (header + body)"}})


class SchedulerApi:
    """Binds the three scheduler sockets and serves them; see the module docstring."""

    def __init__(self, host: ZmqHost, service: SchedulerService, cfg: ApiConfig, *,
                 server_keys: KeyPair, client_keys: dict[bytes, str], max_concurrent: int = 256) -> None:
        self.host = host
        self.service = service
        self.cfg = cfg
        self._server_keys = server_keys
        host.zap.allow(API_DOMAIN, set(client_keys))
        self._limit = trio.Semaphore(max_concurrent)
        self._pub: TrioSocket | None = None
        self.counters: Counter[str] = Counter()
        self.endpoints: dict[str, str] = {}

    def allow_clients(self, client_keys: dict[bytes, str]) -> None:
        """Replace the admitted client keys (e.g. after ``api.clients_dir`` changed)."""
        self.host.zap.allow(API_DOMAIN, set(client_keys))

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Bind and serve until cancelled."""
        bind = self.cfg.bind_address
        router = self._listen(zmq.ROUTER, bind, self.cfg.router_port)
        sub = self._listen(zmq.SUB, bind, self.cfg.sub_port)
        sub.zmq_socket.setsockopt(zmq.SUBSCRIBE, b"")
        self._pub = self._listen(zmq.PUB, bind, self.cfg.pub_port)
        for name, sock in (("router", router), ("sub", sub), ("pub", self._pub)):
            self.endpoints[name] = sock.zmq_socket.getsockopt_string(zmq.LAST_ENDPOINT)
        log.info("scheduler API listening router=%s sub=%s pub=%s",
                 self.endpoints["router"], self.endpoints["sub"], self.endpoints["pub"])
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._serve_router, router, nursery)
                nursery.start_soon(self._serve_sub, sub, nursery)
                task_status.started()
        finally:
            for sock in (router, sub, self._pub):
                sock.close()
            self._pub = None

    def publish(self, msg_type: MsgType, body: dict[str, Any]) -> None:
        """Publish one event frame; dropped (counted) when subscribers are too slow."""
        if self._pub is None:
            return
        try:
            self._pub.send_multipart_nowait([pack(msg_type, body)])
            self.counters["events_published"] += 1
        except trio.WouldBlock:
            self.counters["events_dropped"] += 1

    def _listen(self, kind: int, address: str, port: int) -> TrioSocket:
        return self.host.listen(kind, f"tcp://{address}:{port}", domain=API_DOMAIN, server_keys=self._server_keys)

    async def _serve_router(self, router: TrioSocket, nursery: trio.Nursery) -> None:
        while True:
            frames = await router.recv_multipart()
            if len(frames) != 2:  # [client identity, one frame]
                self.counters["malformed_multipart"] += 1
                await router.send_multipart([frames[0], _MULTIPART_ERROR])
                continue
            self.counters["requests"] += 1
            await self._limit.acquire()
            nursery.start_soon(self._answer, router, frames[0], frames[1])

    async def _answer(self, router: TrioSocket, identity: bytes, frame: bytes) -> None:
        try:
            reply = await self.service.handle(frame, require_request_id=True)
            try:
                router.send_multipart_nowait([identity, reply])
            except (trio.WouldBlock, zmq.ZMQError):
                self.counters["replies_dropped"] += 1  # the client went away or is too slow
        finally:
            self._limit.release()

    async def _serve_sub(self, sub: TrioSocket, nursery: trio.Nursery) -> None:
        while True:
            frames = await sub.recv_multipart()
            self.counters["published_requests"] += 1
            await self._limit.acquire()
            nursery.start_soon(self._run_published, frames[-1])

    async def _run_published(self, frame: bytes) -> None:
        try:
            refused = (await self.service.handle_reply(frame, require_request_id=False)).refused
            if refused is not None:
                self.publish(MsgType.EVENT_ERROR, {
                    "request_type": refused.msg_type, "request_id": refused.request_id,
                    "error": {"code": refused.code, "message": refused.message}})
        finally:
            self._limit.release()

"""A ZAP (ZeroMQ authentication protocol, RFC 27) handler running as a trio task.

libzmq asks the handler bound at ``inproc://zeromq.zap.01`` of the socket's
context whether to admit each new CURVE connection.  The request carries the
server socket's ZAP domain, the peer's IP address and its CURVE public key.
Each domain has a policy: a set of admitted public keys (the cluster client
key for inter-host sockets; the scheduler clients' keys for the API).

Refusals are counted per peer address and logged once per address (a peer
retrying every 100 ms must not flood the log).  The handler must be running
before any CURVE server socket of its context binds: without a handler,
libzmq admits everyone.  :class:`meshd.transport.ZmqHost` enforces that order.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

import trio
import zmq
from zmq.utils import z85

from ._socket import TrioSocket

log = logging.getLogger("meshd.transport")

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
#: Addresses remembered for "log once"; beyond this, refusals are only counted.
_MAX_LOGGED_PEERS = 4096


@dataclass(frozen=True, slots=True)
class SecurityStats:
    """Counters of admitted and refused inter-host connections."""

    admitted: int
    refused: int
    refused_by_address: dict[str, int]


class Refusals:
    """Counts refused connections per peer address; logs each peer once."""

    def __init__(self) -> None:
        self.admitted = 0
        self.by_address: Counter[str] = Counter()
        self._logged: set[str] = set()

    def refuse(self, peer: str, where: str, reason: str) -> None:
        self.by_address[peer] += 1
        if peer not in self._logged and len(self._logged) < _MAX_LOGGED_PEERS:
            self._logged.add(peer)
            log.warning(
                "refused connection peer=%s on=%s reason=%r (further refusals of this peer are only counted)",
                peer, where, reason,
            )

    def statistics(self) -> SecurityStats:
        return SecurityStats(self.admitted, sum(self.by_address.values()), dict(self.by_address))


class ZapHandler:
    """Admit CURVE clients by public key, per ZAP domain."""

    def __init__(self, ctx: zmq.Context, refusals: Refusals) -> None:
        self._ctx = ctx
        self._policies: dict[str, frozenset[bytes]] = {}
        self._refusals = refusals

    def allow(self, domain: str, public_keys: set[bytes] | frozenset[bytes]) -> None:
        """Admit exactly these Z85 public keys on sockets with ZAP ``domain``."""
        self._policies[domain] = frozenset(public_keys)

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Bind the ZAP endpoint and answer requests until cancelled."""
        sock = TrioSocket(self._ctx.socket(zmq.ROUTER))
        sock.zmq_socket.setsockopt(zmq.LINGER, 0)
        try:
            sock.zmq_socket.bind(ZAP_ENDPOINT)
            task_status.started()
            while True:
                frames = await sock.recv_multipart()
                reply = self._answer(frames)
                if reply is not None:
                    await sock.send_multipart(reply)
        except trio.ClosedResourceError:
            return  # the context was destroyed: the host is shutting down
        finally:
            sock.close()

    def _answer(self, frames: list[bytes]) -> list[bytes] | None:
        # [routing id, empty, version, request id, domain, address, identity, mechanism, key]
        if len(frames) < 8 or frames[2] != b"1.0":
            return None
        routing, _, _, request_id, domain, address, _, mechanism, *creds = frames
        peer = address.decode(errors="replace")
        ok = mechanism == b"CURVE" and len(creds) == 1 and self._admits(domain.decode(), creds[0])
        if ok:
            self._refusals.admitted += 1
            status, text = b"200", b"OK"
        else:
            self._refusals.refuse(peer, f"zap:{domain.decode(errors='replace')}", "unknown client key")
            status, text = b"400", b"not a member of this meshd cluster"
        return [routing, b"", b"1.0", request_id, status, text, b"", b""]

    def _admits(self, domain: str, raw_key: bytes) -> bool:
        keys = self._policies.get(domain)
        return keys is not None and len(raw_key) == 32 and z85.encode(raw_key) in keys

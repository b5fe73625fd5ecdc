"""A ZAP (ZeroMQ authentication protocol, RFC 27) handler running as a trio task.

libzmq asks the handler bound at ``inproc://zeromq.zap.01`` of the socket's
context whether to admit each new CURVE connection.  The request carries the
server socket's ZAP domain, the peer's IP address and its CURVE public key.
Each domain has a policy: a set of admitted public keys (the cluster client
key for inter-host sockets; the scheduler clients' keys for the API).

Refusals are counted per peer address and per likely cause, and logged once
per address with the cause and its fix (a peer retrying every 100 ms must
not flood the log).  The handler must be running before any CURVE server
socket of its context binds: without a handler, libzmq admits everyone.
:class:`meshd.transport.ZmqHost` enforces that order.

Who refused what (a refused client gets no answer at all, only silence, so
the server's log is where the cause is told):

* a plaintext client (no CURVE) fails the handshake with a *mechanism
  mismatch* before ZAP is asked: cause ``plaintext``; often the client sees
  the mismatch first and hangs up, and the server only sees the peer go
  away mid-handshake: cause ``hung_up`` (also port scans, TCP health checks);
* a client that expects another server key (another cluster secret; a
  scheduler key file made for another cluster) cannot be decrypted: the
  handshake fails as *cryptographic*: cause ``wrong_server_key``;
* a client with the right server key but a client key nobody admitted is
  refused by this ZAP handler: cause ``unknown_client_key``.

The first two are seen by the socket monitor of :class:`~meshd.transport.ZmqHost`
(:func:`handshake_cause`), the third here.
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
#: ZAP domain of the scheduler API sockets (``meshd.api``); every other domain is inter-host
API_DOMAIN = "meshd-api"
#: Addresses remembered for "log once"; beyond this, refusals are only counted.
_MAX_LOGGED_PEERS = 4096

#: why a connection was refused: the ``reason`` label of meshd_transport_connections_refused_total
PLAINTEXT, HUNG_UP, WRONG_SERVER_KEY, UNKNOWN_CLIENT_KEY, HANDSHAKE_FAILED = (
    "plaintext", "hung_up", "wrong_server_key", "unknown_client_key", "handshake_failed")

#: (cause, scheduler API?) -> what the log says: the likely cause and its fix
_EXPLAIN = {
    (PLAINTEXT, True): "the client does not use CURVE: a scheduler client needs its NAME.key "
                       "(meshd keygen --client NAME; meshd.api.client.SchedulerClient(key_file=...))",
    (PLAINTEXT, False): "the peer does not use CURVE: only meshd agents with the cluster secret may connect",
    (HUNG_UP, True): "the client hung up during the CURVE handshake: most likely a plaintext client (a "
                     "scheduler client needs its NAME.key), else a port scan or TCP health check",
    (HUNG_UP, False): "the peer hung up during the CURVE handshake: most likely a plaintext client (only "
                      "meshd agents with the cluster secret may connect), else a port scan or TCP health check",
    (WRONG_SERVER_KEY, True): "the client expects another server key: its NAME.key was made with another "
                              "cluster secret; make it again with `meshd keygen --client NAME` on a member",
    (WRONG_SERVER_KEY, False): "the peer holds another cluster secret: copy this cluster's secret file to it",
    (UNKNOWN_CLIENT_KEY, True): "the client key is not admitted: copy the client's NAME.pub (never NAME.key) "
                                "into api.clients_dir on this host and restart the agent",
    (UNKNOWN_CLIENT_KEY, False): "the peer knows this cluster's server key but not its client key "
                                 "(not a meshd agent of this cluster)",
    (HANDSHAKE_FAILED, True): "the CURVE handshake failed (protocol error)",
    (HANDSHAKE_FAILED, False): "the CURVE handshake failed (protocol error)",
}


def handshake_cause(event: int, value: int) -> str | None:
    """The refusal cause of a socket-monitor event, or None when the event is no refusal
    this monitor should count (a ZAP refusal is counted by the handler itself)."""
    if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        return None
    if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL and value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
        return PLAINTEXT
    if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL and value == zmq.PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC:
        return WRONG_SERVER_KEY
    if event == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        return HUNG_UP
    return HANDSHAKE_FAILED


@dataclass(frozen=True, slots=True)
class SecurityStats:
    """Counters of admitted and refused connections (inter-host and scheduler API)."""

    admitted: int
    refused: int
    refused_by_address: dict[str, int]
    refused_by_reason: dict[str, int]
    #: admitted connections per ZAP domain ("meshd": other hosts' gossip and Raft; "meshd-api": schedulers)
    admitted_by_domain: dict[str, int]


class Refusals:
    """Counts refused connections per peer address and cause; logs each peer once."""

    def __init__(self) -> None:
        self.admitted = 0
        self.admitted_by_domain: Counter[str] = Counter()
        self.by_address: Counter[str] = Counter()
        self.by_reason: Counter[str] = Counter()
        self._logged: set[str] = set()

    def refuse(self, peer: str, where: str, cause: str, domain: str = "") -> None:
        """Count a refusal of ``peer`` on ``where`` (an endpoint or ZAP domain) for ``cause``."""
        self.by_address[peer] += 1
        self.by_reason[cause] += 1
        if peer not in self._logged and len(self._logged) < _MAX_LOGGED_PEERS:
            self._logged.add(peer)
            why = _EXPLAIN.get((cause, domain == API_DOMAIN), cause)
            log.warning("refused connection peer=%s on=%s cause=%s: %s (further refusals of this peer are "
                        "only counted)", peer, where, cause, why)

    def statistics(self) -> SecurityStats:
        return SecurityStats(self.admitted, sum(self.by_address.values()), dict(self.by_address),
                             dict(self.by_reason), dict(self.admitted_by_domain))


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
            self._refusals.admitted_by_domain[domain.decode(errors="replace")] += 1
            status, text = b"200", b"OK"
        else:
            zap_domain = domain.decode(errors="replace")
            self._refusals.refuse(peer, f"zap:{zap_domain}", UNKNOWN_CLIENT_KEY, zap_domain)
            status, text = b"400", b"not a member of this meshd cluster"
        return [routing, b"", b"1.0", request_id, status, text, b"", b""]

    def _admits(self, domain: str, raw_key: bytes) -> bool:
        keys = self._policies.get(domain)
        return keys is not None and len(raw_key) == 32 and z85.encode(raw_key) in keys

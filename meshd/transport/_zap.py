"""A ZAP (ZeroMQ authentication protocol, RFC 27) handler on its own thread.

libzmq asks the handler bound at ``inproc://zeromq.zap.01`` of the socket's
context whether to admit each new CURVE connection.  The request carries the
server socket's ZAP domain, the peer's IP address and its CURVE public key.
Each domain has a policy: a set of admitted public keys (the cluster client
key for inter-host sockets; the scheduler clients' keys for the API).

The handler answers from a thread of its own, not from the agent's trio loop:
a new connection completes its handshake only when ZAP has answered, and a
loop that runs late (a starved CPU, a burst of work) would hold every new
connection that long. libzmq abandons a handshake after ZMQ_HANDSHAKE_IVL
(30 s) and the dialler dials again, so an agent whose loop ran 30 s behind
could admit no one: in a 150-agent join on 2 cores one agent counted 3,537
handshakes abandoned in 15 minutes, and every abandoned connection was a
peer whose probes (ZeroMQ's IMMEDIATE) were dropped, so the peer took the
agent for failed (docs/scale.md). The answer is a set lookup, so the thread
holds the GIL for microseconds.

The same thread reads the listeners' socket monitors (below). libzmq writes a
monitor event from its I/O thread with a blocking send, so a monitor nobody
reads for ~2,000 events (a loop minutes behind in a connection storm) would
stop that I/O thread, and with it every connection of the host.

Refusals are counted per peer address and per likely cause, and logged once
per address with the cause and its fix (a peer retrying every 100 ms must
not flood the log).  The handler must be running before any CURVE server
socket of its context binds: without a handler, libzmq admits everyone
unless the socket sets ``ZAP_ENFORCE_DOMAIN``.  :class:`meshd.transport.ZmqHost`
enforces that order and sets the option, so a handler thread that died
leaves listeners refusing everyone (and stops the host, see :meth:`ZapHandler.run`).

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

The first two are seen by the listener's socket monitor (:meth:`ZapHandler.watch`,
:func:`handshake_cause`), the third by the ZAP answer.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import socket
import struct
import threading
from collections import Counter
from dataclasses import dataclass

import trio
import zmq
from zmq.utils import z85

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


_MONITOR_EVENTS = (
    zmq.EVENT_ACCEPTED
    | zmq.EVENT_DISCONNECTED
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_MONITOR_STOPPED
)
_FAILED = (
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)


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
    """Counts admitted and refused connections per peer address and cause; logs each peer once.

    Written by the ZAP thread and the socket monitors (trio), read by the agent's status: every
    access holds the lock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._admitted = 0
        self._admitted_by_domain: Counter[str] = Counter()
        self._by_address: Counter[str] = Counter()
        self._by_reason: Counter[str] = Counter()
        self._handshake_failures = 0
        self._logged: set[str] = set()

    @property
    def handshake_failures(self) -> int:
        """CURVE handshakes that failed before ZAP was asked (a ZAP refusal is not one)."""
        with self._lock:
            return self._handshake_failures

    def handshake_failed(self) -> None:
        with self._lock:
            self._handshake_failures += 1

    def admit(self, domain: str) -> None:
        """Count a connection admitted on ZAP ``domain``."""
        with self._lock:
            self._admitted += 1
            self._admitted_by_domain[domain] += 1

    def refuse(self, peer: str, where: str, cause: str, domain: str = "") -> None:
        """Count a refusal of ``peer`` on ``where`` (an endpoint or ZAP domain) for ``cause``."""
        with self._lock:
            self._by_address[peer] += 1
            self._by_reason[cause] += 1
            first = peer not in self._logged and len(self._logged) < _MAX_LOGGED_PEERS
            if first:
                self._logged.add(peer)
        if first:
            why = _EXPLAIN.get((cause, domain == API_DOMAIN), cause)
            log.warning("refused connection peer=%s on=%s cause=%s: %s (further refusals of this peer are "
                        "only counted)", peer, where, cause, why)

    def statistics(self) -> SecurityStats:
        with self._lock:
            return SecurityStats(self._admitted, sum(self._by_address.values()), dict(self._by_address),
                                 dict(self._by_reason), dict(self._admitted_by_domain))


_ids = itertools.count()


class ZapHandlerFailed(RuntimeError):
    """The ZAP thread died: no connection can be admitted any more (listeners refuse everyone)."""


class _Watch:
    """One listener's monitor: attributes a failed handshake (and its cause) to the peer address of
    the connection: the failure event carries the cause, the disconnect that follows the peer."""

    def __init__(self, refusals: Refusals, where: str, domain: str) -> None:
        self._refusals = refusals
        self._where = where
        self._domain = domain
        self._peers: dict[int, str] = {}
        self._causes: list[str | None] = []

    def event(self, event: int, value: int) -> None:
        if event == zmq.EVENT_ACCEPTED:
            self._peers[value] = _peer_of_fd(value)
        elif event & _FAILED:
            self._causes.append(handshake_cause(event, value))
            if event != zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                self._refusals.handshake_failed()
        elif event == zmq.EVENT_DISCONNECTED:
            peer = self._peers.pop(value, "unknown")
            cause = self._causes.pop(0) if self._causes else None
            if cause is not None:  # a ZAP refusal (None) was counted by the ZAP answer
                self._refusals.refuse(peer, self._where, cause, self._domain)


class ZapHandler:
    """Admit CURVE clients by public key, per ZAP domain, and watch the listeners' handshakes,
    from a thread of its own (see the module docstring)."""

    def __init__(self, ctx: zmq.Context, refusals: Refusals) -> None:
        self._ctx = ctx
        #: replaced whole by :meth:`allow`, read by the ZAP thread: never mutated in place
        self._policies: dict[str, frozenset[bytes]] = {}
        self._refusals = refusals
        #: the trio side's end of the control pipe to the thread (None until :meth:`run` binds)
        self._control: zmq.Socket | None = None
        self._control_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        #: why the thread failed ("" while it has not)
        self._failed = ""

    def allow(self, domain: str, public_keys: set[bytes] | frozenset[bytes]) -> None:
        """Admit exactly these Z85 public keys on sockets with ZAP ``domain``."""
        self._policies = {**self._policies, domain: frozenset(public_keys)}

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Bind the ZAP endpoint, answer requests on a thread until cancelled, then stop it.

        Reports started once the endpoint is bound, so no CURVE server socket of the context can
        bind before there is a handler (libzmq admits everyone while none is bound).
        """
        n = next(_ids)
        control_endpoint = f"inproc://meshd-zap-control-{n}"
        sock = self._ctx.socket(zmq.ROUTER)
        control_rx = self._ctx.socket(zmq.PAIR)
        control_tx = self._ctx.socket(zmq.PAIR)
        for s in (sock, control_rx, control_tx):
            s.setsockopt(zmq.LINGER, 0)
        try:
            sock.bind(ZAP_ENDPOINT)
            control_rx.bind(control_endpoint)
            control_tx.connect(control_endpoint)
        except zmq.ZMQError:
            for s in (sock, control_rx, control_tx):
                s.close()
            raise
        token = trio.lowlevel.current_trio_token()
        stopped = trio.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            try:
                self._serve(sock, control_rx)
            except BaseException as exc:  # told to the trio side, which stops the host
                failure.append(exc)
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(stopped.set)

        # the thread owns sock and control_rx from here on (Thread.start is the hand-over barrier)
        thread = threading.Thread(target=serve, name="meshd-zap", daemon=True)
        thread.start()
        self._control, self._thread = control_tx, thread
        try:
            task_status.started()
            await stopped.wait()
            if failure:  # listeners refuse everyone meanwhile (ZAP_ENFORCE_DOMAIN): fail closed, and loudly
                self._failed = (f"the ZAP handler thread failed ({failure[0]!r}): no connection can be "
                                "admitted any more; restart the agent")
                raise ZapHandlerFailed(self._failed)
            await trio.sleep_forever()  # stopped on request (ZmqHost.close()): wait to be cancelled
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop the thread and wait for it (it closes its sockets); idempotent. Must come before
        the context is destroyed: a socket may only be closed by the thread that uses it."""
        with self._control_lock:
            control, self._control = self._control, None
            if control is not None:
                with contextlib.suppress(zmq.Again):  # the thread is gone already
                    control.send_multipart((b"stop",), zmq.NOBLOCK)
                control.close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    @staticmethod
    def monitor(server: zmq.Socket) -> str:
        """Start the monitor of listener ``server`` (before it binds, so no connection goes
        unseen); returns the endpoint to pass to :meth:`watch` once it is bound."""
        endpoint = f"inproc://meshd-zap-monitor-{next(_ids)}"
        server.monitor(endpoint, _MONITOR_EVENTS)
        return endpoint

    def watch(self, endpoint: str, where: str, domain: str) -> None:
        """Have the thread read the monitor at ``endpoint`` (from :meth:`monitor`) of the listener
        bound at ``where``, counting its failed handshakes as refusals."""
        with self._control_lock:
            if self._failed:
                raise ZapHandlerFailed(self._failed)
            if self._control is None:
                raise RuntimeError("ZapHandler.run() must be started before watching a listener")
            self._control.send_multipart((b"watch", endpoint.encode(), where.encode(), domain.encode()))

    def _serve(self, zap: zmq.Socket, control: zmq.Socket) -> None:
        """The thread: answer each ZAP request and read each monitor at once, until told to stop."""
        poller = zmq.Poller()
        poller.register(zap, zmq.POLLIN)
        poller.register(control, zmq.POLLIN)
        watches: dict[zmq.Socket, _Watch] = {}
        try:
            while True:
                for sock, _ in poller.poll():
                    if sock is control:
                        command = control.recv_multipart()
                        if command[0] == b"stop":
                            return
                        monitor = self._ctx.socket(zmq.PAIR)
                        monitor.setsockopt(zmq.LINGER, 0)
                        monitor.connect(command[1].decode())
                        poller.register(monitor, zmq.POLLIN)
                        watches[monitor] = _Watch(self._refusals, command[2].decode(), command[3].decode())
                    elif sock is zap:
                        self._answer_all(zap)
                    elif not self._read_monitor(sock, watches[sock]):
                        poller.unregister(sock)
                        del watches[sock]
                        sock.close()
        finally:
            for sock in (zap, control, *watches):
                sock.close()

    def _answer_all(self, zap: zmq.Socket) -> None:
        while True:
            try:
                frames = zap.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            reply = self._answer(frames)
            if reply is not None:
                zap.send_multipart(reply, zmq.NOBLOCK)

    @staticmethod
    def _read_monitor(monitor: zmq.Socket, watch: _Watch) -> bool:
        """Handle every queued event; False once the listener closed (its monitor stopped)."""
        while True:
            try:
                frames = monitor.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return True
            event, value = struct.unpack("=hI", frames[0][:6])
            if event == zmq.EVENT_MONITOR_STOPPED:
                return False
            watch.event(event, value)

    def _answer(self, frames: list[bytes]) -> list[bytes] | None:
        # [routing id, empty, version, request id, domain, address, identity, mechanism, key]
        if len(frames) < 8 or frames[2] != b"1.0":
            return None
        routing, _, _, request_id, domain, address, _, mechanism, *creds = frames
        peer = address.decode(errors="replace")
        ok = mechanism == b"CURVE" and len(creds) == 1 and self._admits(domain.decode(), creds[0])
        if ok:
            self._refusals.admit(domain.decode(errors="replace"))
            status, text = b"200", b"OK"
        else:
            zap_domain = domain.decode(errors="replace")
            self._refusals.refuse(peer, f"zap:{zap_domain}", UNKNOWN_CLIENT_KEY, zap_domain)
            status, text = b"400", b"not a member of this meshd cluster"
        return [routing, b"", b"1.0", request_id, status, text, b"", b""]

    def _admits(self, domain: str, raw_key: bytes) -> bool:
        keys = self._policies.get(domain)
        return keys is not None and len(raw_key) == 32 and z85.encode(raw_key) in keys


def _peer_of_fd(fd: int) -> str:
    """The remote IP of an accepted TCP connection (best effort, for logs)."""
    try:
        dup = os.dup(fd)
    except OSError:
        return "unknown"
    try:
        with socket.socket(fileno=dup) as s:
            return str(s.getpeername()[0])
    except OSError:
        return "unknown"

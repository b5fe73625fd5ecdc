"""ZmqHost: one ZeroMQ context with its ZAP handler and the socket rules.

Every inter-host socket is made here, so every one follows the rules:

* ``LINGER 0``: closing never waits for a dead peer;
* bounded ``SNDHWM``/``RCVHWM`` and ``MAXMSGSIZE``: memory per peer is bounded;
* dialers set ``IMMEDIATE``: nothing is queued for a peer that is not
  connected, so a dead peer costs nothing (sends to it fail at once);
* ``TCP_MAXRT`` (TCP_USER_TIMEOUT) on every socket that sends: a connection
  whose data goes unacknowledged for ``tcp_user_timeout_ms`` is dropped, and
  with IMMEDIATE its queue with it, so frames for a peer behind a partition
  are lost (as datagrams would be) instead of delivered late, in a burst,
  after the heal;
* bounded connect timeout and reconnect interval with backoff, so a peer is
  reached again within about a second of a partition healing;
* TCP keepalive on every accepted connection (a peer whose machine died sends
  no RST); a *receive-only* listener (the gossip and Raft inboxes) has no
  TCP_USER_TIMEOUT, under which the kernel resets an idle connection when a
  single probe goes unanswered, so its connections allow
  ``tcp_keepalive_probes`` lost probes. Dialers have no keepalive: what they
  send falls under TCP_USER_TIMEOUT, which notices a dead peer in a second;
* CURVE: listeners present the cluster *server* key and ask the ZAP handler
  (domain ``meshd``) to admit only the cluster *client* key; dialers present
  the client key and expect the server key. ``ZAP_ENFORCE_DOMAIN``: a
  listener whose handler is gone refuses everyone (libzmq's default admits).

Handshakes that fail before ZAP is consulted (a peer with another secret
cannot even decrypt our server's greeting) are seen through a socket monitor
and counted as refusals of that peer's address too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import trio
import zmq

from ._config import TransportConfig
from ._security import ClusterKeys, KeyPair
from ._socket import TrioSocket
from ._zap import Refusals, SecurityStats, ZapHandler

log = logging.getLogger("meshd.transport")

#: ZAP domain of inter-host sockets (gossip, Raft).
CLUSTER_DOMAIN = "meshd"

@dataclass(frozen=True, slots=True)
class HostStatus:
    """What the transport host has seen."""

    security: SecurityStats
    handshake_failures: int


class ZmqHost:
    """Owns a ZeroMQ context, its ZAP handler, and the sockets made from it.

    Use::

        host = ZmqHost(ClusterKeys.from_secret(secret), cfg.transport)
        async with trio.open_nursery() as nursery:
            await nursery.start(host.run)
            sock = host.listen(zmq.ROUTER, "tcp://0.0.0.0:7946")
            ...

    Server sockets may only be made after :meth:`run` has started (otherwise
    libzmq would admit every client while no ZAP handler is bound).
    """

    def __init__(self, keys: ClusterKeys | None, cfg: TransportConfig | None = None) -> None:
        self.keys = keys
        self.cfg = cfg or TransportConfig()
        self.ctx = zmq.Context()
        self.ctx.set(zmq.MAX_SOCKETS, self.cfg.max_sockets)  # before the first socket: fixed from then on
        self.refusals = Refusals()
        self.zap = ZapHandler(self.ctx, self.refusals)
        if keys is not None:
            self.zap.allow(CLUSTER_DOMAIN, {keys.client.public})
        self._nursery: trio.Nursery | None = None
        self._sockets: list[TrioSocket] = []

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Run the ZAP handler (its thread also reads the listeners' monitors) until cancelled,
        then close all."""
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(self.zap.run)
                self._nursery = nursery
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = None
            self.close()

    def status(self) -> HostStatus:
        return HostStatus(self.refusals.statistics(), self.refusals.handshake_failures)

    def listen(self, kind: int, endpoint: str, *, domain: str = CLUSTER_DOMAIN,
               server_keys: KeyPair | None = None, receive_only: bool = False) -> TrioSocket:
        """A bound server socket (ROUTER, PUB, SUB...) following the socket rules.

        Args:
          kind: ``zmq.ROUTER`` etc.
          endpoint: ``tcp://ADDR:PORT`` (port 0 picks a free port; read it
            back with :func:`bound_endpoint`).
          domain: ZAP domain whose policy admits clients.
          server_keys: the key pair to present; default the cluster server pair.
          receive_only: the socket never sends a frame (a :class:`Mesh` inbox):
            no TCP_USER_TIMEOUT, so its keepalive allows the configured number
            of lost probes. Other listeners (the API, which answers) keep it.

        Raises:
          RuntimeError: :meth:`run` has not started (no ZAP handler yet).
          zmq.ZMQError: the address cannot be bound (in use, not local).
        """
        if self._nursery is None:
            raise RuntimeError("ZmqHost.run() must be started before listening (ZAP handler first)")
        sock = self._socket(kind, keepalive=True, user_timeout=not receive_only)
        zs = sock.zmq_socket
        keys = server_keys or (self.keys.server if self.keys else None)
        monitor = None
        if keys is not None:
            zs.setsockopt(zmq.CURVE_SERVER, 1)
            zs.setsockopt(zmq.CURVE_SECRETKEY, keys.secret)
            zs.setsockopt(zmq.ZAP_DOMAIN, domain.encode())
            zs.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)  # no ZAP handler (it stopped): refuse, never admit
            monitor = self.zap.monitor(zs)  # before bind: no connection unseen
        zs.setsockopt(zmq.BACKLOG, self.cfg.listen_backlog)
        try:
            zs.bind(endpoint)
        except zmq.ZMQError:
            sock.close()
            raise
        if monitor is not None:
            self.zap.watch(monitor, bound_endpoint(sock), domain)
        return sock

    def dial(self, kind: int, endpoint: str, *, client_keys: KeyPair | None = None,
             server_public: bytes | None = None) -> TrioSocket:
        """A connecting socket (DEALER, SUB...) with IMMEDIATE and the CURVE client key."""
        sock = self._socket(kind, keepalive=False, user_timeout=True)
        zs = sock.zmq_socket
        zs.setsockopt(zmq.IMMEDIATE, 1)
        client = client_keys or (self.keys.client if self.keys else None)
        server = server_public or (self.keys.server.public if self.keys else None)
        if client is not None and server is not None:
            zs.setsockopt(zmq.CURVE_SERVERKEY, server)
            zs.setsockopt(zmq.CURVE_PUBLICKEY, client.public)
            zs.setsockopt(zmq.CURVE_SECRETKEY, client.secret)
        zs.connect(endpoint)
        return sock

    def close(self) -> None:
        """Close every socket made here and terminate the context."""
        self.zap.stop()
        for sock in self._sockets:
            sock.close()
        self._sockets.clear()
        self.ctx.destroy(linger=0)

    # --- internals ----------------------------------------------------------

    def _socket(self, kind: int, *, keepalive: bool, user_timeout: bool) -> TrioSocket:
        zs = self.ctx.socket(kind)
        c = self.cfg
        zs.setsockopt(zmq.LINGER, 0)
        zs.setsockopt(zmq.SNDHWM, c.send_hwm_msgs)
        zs.setsockopt(zmq.RCVHWM, c.recv_hwm_msgs)
        zs.setsockopt(zmq.RECONNECT_IVL, c.reconnect_ivl_ms)
        zs.setsockopt(zmq.RECONNECT_IVL_MAX, c.reconnect_ivl_max_ms)
        zs.setsockopt(zmq.CONNECT_TIMEOUT, c.connect_timeout_ms)
        zs.setsockopt(zmq.MAXMSGSIZE, c.max_message_bytes)
        if user_timeout:
            zs.setsockopt(zmq.TCP_MAXRT, c.tcp_user_timeout_ms)
        zs.setsockopt(zmq.TCP_KEEPALIVE, 1 if keepalive else 0)
        if keepalive:
            zs.setsockopt(zmq.TCP_KEEPALIVE_IDLE, c.tcp_keepalive_idle_s)
            zs.setsockopt(zmq.TCP_KEEPALIVE_INTVL, c.tcp_keepalive_interval_s)
            zs.setsockopt(zmq.TCP_KEEPALIVE_CNT, c.tcp_keepalive_probes)
        sock = TrioSocket(zs)
        self._sockets = [s for s in self._sockets if not s.closed]
        self._sockets.append(sock)
        return sock


def bound_endpoint(sock: TrioSocket) -> str:
    """The endpoint a socket is bound to (resolves port 0)."""
    return sock.zmq_socket.getsockopt_string(zmq.LAST_ENDPOINT)

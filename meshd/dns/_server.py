"""The DNS server's I/O: UDP sockets in tenant router namespaces around the pure core.

One :class:`DnsServer` per host serves any number of sockets; each socket
belongs to one network (it is bound to that network's gateway, port 53, in the
tenant's router netns: a worker thread enters the netns, makes the socket and
returns, the socket stays there).  A datagram is answered by
:func:`~meshd.dns._core.answer` with the network's current view.  Names
outside the zone are forwarded, when the view allows it, to the host's
resolvers from a fresh UDP socket in the agent's own netns (a random source
port per query), at most ``max_forwards`` at once and each bounded by
``forward_timeout_s``; a failed forward gets SERVFAIL.

Bounded memory whatever clients send: one receive buffer per socket, a fixed
number of forwards in flight, nothing queued.  The daemon never dies of a
packet: the core does not raise, and a socket error is counted.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import socket
from collections.abc import Callable, Sequence
from typing import Any

import trio

import netops

from ._core import View, answer, forward_reply_ok, servfail

log = logging.getLogger("meshd.dns")

DNS_PORT = 53
#: the largest UDP payload read (EDNS clients may send more than 512 bytes of query)
RECV_BYTES = 4096


@dataclasses.dataclass(frozen=True, slots=True)
class DnsStatus:
    sockets: int
    forwards_in_flight: int
    #: outcome kind -> count (answered, nxdomain, refused, formerr, forwarded, servfail, dropped, ...)
    counts: dict[str, int]


#: Linux's IP_FREEBIND: bind to an address the netns does not hold (yet)
IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)


def open_socket(netns: str | None, address: str, port: int = DNS_PORT, *, freebind: bool = False) -> socket.socket:
    """A UDP socket bound to ``address:port`` inside the netns at path ``netns`` (None: this one);
    ``freebind``: even before ``address`` is on an interface there."""
    sock = netops.udp_socket(netns)
    try:
        if freebind:
            sock.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def host_resolvers(path: str = "/etc/resolv.conf") -> tuple[str, ...]:
    """The IPv4 nameservers of the host's resolv.conf (loopback ones included: the agent runs there)."""
    found = []
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "nameserver" and parts[1].count(".") == 3:
                    found.append(parts[1])
    except OSError:
        return ()
    return tuple(found[:3])


def resolv_conf(nameserver: str, domain: str) -> str:
    """A container's resolv.conf pointing at meshd (``ndots:1``: ``web`` is tried as ``web.<domain>``)."""
    return f"# written by meshd (docs/dns.md)\nnameserver {nameserver}\nsearch {domain}\noptions ndots:1 timeout:2\n"


class DnsServer:
    """Answers queries on the sockets given to :meth:`serve`; see the module docstring.

    Args:
      view_of: the current :class:`View` of a network (called once per query; cache it).
      forwarders: the resolvers names outside the zone go to (empty: SERVFAIL).
    """

    def __init__(self, view_of: Callable[[str], View], *, forwarders: Sequence[str] = (),
                 forward_timeout_s: float = 2.0, max_forwards: int = 256, forward_port: int = DNS_PORT) -> None:
        self._view_of = view_of
        self.forwarders = tuple(forwarders)
        self.forward_timeout_s = forward_timeout_s
        self.max_forwards = max_forwards
        self.forward_port = forward_port
        self._in_flight = 0
        self._sockets = 0
        self._turn = 0
        self.counts: collections.Counter[str] = collections.Counter()

    def status(self) -> DnsStatus:
        return DnsStatus(self._sockets, self._in_flight, dict(self.counts))

    async def serve(self, sock: socket.socket, network: str, *,
                    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Answer on ``sock`` (owned from now on: closed on return) for ``network`` until cancelled."""
        tsock = trio.socket.from_stdlib_socket(sock)
        self._sockets += 1
        try:
            async with trio.open_nursery() as nursery:
                task_status.started()
                while True:
                    try:
                        data, peer = await tsock.recvfrom(RECV_BYTES)
                    except OSError as exc:
                        self.counts["recv_errors"] += 1
                        log.debug("dns recv failed network=%s error=%s", network, exc)
                        await trio.sleep(0.01)
                        continue
                    await self._one(tsock, nursery, network, data, peer)
        finally:
            self._sockets -= 1
            tsock.close()

    async def _one(self, tsock: trio.socket.SocketType, nursery: trio.Nursery, network: str, data: bytes,
                   peer: Any) -> None:
        self._turn += 1
        try:
            out = answer(self._view_of(network), data, turn=self._turn)
        except Exception:  # the core does not raise; a bad view must not stop the server either
            log.exception("dns view failed network=%s", network)
            out = None
        if out is None:
            self.counts["internal"] += 1
            reply = servfail(data)
        elif out.forward:
            if self._in_flight >= self.max_forwards or not self.forwarders:
                self.counts["servfail"] += 1
                reply = servfail(data)
            else:
                self.counts["forwarded"] += 1
                self._in_flight += 1
                nursery.start_soon(self._forward, tsock, data, peer)
                return
        else:
            self.counts[out.kind] += 1
            reply = out.reply
        if reply is not None:
            await self._send(tsock, reply, peer)

    async def _send(self, tsock: trio.socket.SocketType, reply: bytes, peer: Any) -> None:
        try:
            await tsock.sendto(reply, peer)
        except OSError as exc:
            self.counts["send_errors"] += 1
            log.debug("dns send failed to=%s error=%s", peer, exc)

    async def _forward(self, tsock: trio.socket.SocketType, query: bytes, peer: Any) -> None:
        try:
            reply = await self._ask_forwarders(query)
            if reply is None:
                self.counts["servfail"] += 1
                reply = servfail(query)
            if reply is not None:
                await self._send(tsock, reply, peer)
        finally:
            self._in_flight -= 1

    async def _ask_forwarders(self, query: bytes) -> bytes | None:
        with trio.move_on_after(self.forward_timeout_s):
            up = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            with up:
                for server in self.forwarders:
                    try:
                        await up.sendto(query, (server, self.forward_port))
                    except OSError:
                        continue
                while True:
                    try:
                        data = await up.recv(RECV_BYTES)
                    except OSError:
                        return None
                    if forward_reply_ok(query, data):
                        return data
        return None

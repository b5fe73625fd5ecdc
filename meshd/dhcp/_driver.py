"""The DHCP client's I/O: a UDP socket inside a container's netns, and the trio loop around the core.

Socket choice: a plain UDP socket on port 68, created inside the container's
netns (a worker thread enters it with setns, makes the socket, and returns;
the socket stays in that netns), bound to one interface with SO_BINDTODEVICE,
with SO_BROADCAST. Before the interface has an address, the kernel sends the
client's broadcasts from 0.0.0.0 and delivers the server's broadcast replies
(the client sets the BOOTP broadcast flag); once the address is there (renewal),
a unicast REQUEST goes out from it and the kernel resolves the server's MAC. So
no raw frames, no hand-made IP/UDP headers and no ARP code; the cost is that a
unicast to the server from an interface without an address has no route: such a
send (a RELEASE from a probe interface) goes to the broadcast address instead
(``addressed=False``), which servers accept (the RELEASE names its server).

:func:`drive` is the loop: it sends what the core's :class:`~._core.Outbox`
says, hands its events to a callback, and feeds the core received messages and
the passing of time (``trio.current_time``). Undecodable datagrams are dropped
and counted.
"""

from __future__ import annotations

import errno
import logging
import math
import random
import socket
from collections.abc import Callable
from dataclasses import dataclass

import trio

import netops

from . import _codec
from ._core import Bound, DhcpClient, DhcpTiming, Event, GaveUp, Lease, Outbox
from ._messages import BROADCAST, DhcpMessage, Send

log = logging.getLogger("meshd.dhcp")

CLIENT_PORT, SERVER_PORT = 68, 67


class DhcpError(Exception):
    """No lease: the server did not answer in time, the probe interface could not be made, or the
    socket failed. The message names the interface and the cause."""


@dataclass(slots=True)
class Counters:
    sent: int = 0
    received: int = 0
    undecodable: int = 0
    send_errors: int = 0


#: drops and traffic of every DHCP socket of this process
COUNTERS = Counters()


def _open_sync(netns: str | None, ifname: str) -> socket.socket:
    sock = netops.udp_socket(netns)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
        sock.bind(("0.0.0.0", CLIENT_PORT))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class DhcpSocket:
    """UDP port 68 on interface ``ifname`` inside the netns at ``netns`` (None: this process's)."""

    def __init__(self, sock: socket.socket, where: str, *, addressed: bool) -> None:
        self._sock = trio.socket.from_stdlib_socket(sock)
        self.where = where
        self.addressed = addressed

    @classmethod
    async def open(cls, netns: str | None, ifname: str, *, addressed: bool = True) -> DhcpSocket:
        """``addressed``: the interface has its leased address (else every message is broadcast)."""
        where = f"{ifname} in {netns or 'this netns'}"
        try:
            return cls(await trio.to_thread.run_sync(_open_sync, netns, ifname), where, addressed=addressed)
        except OSError as exc:
            raise DhcpError(f"cannot open a DHCP client socket on {where}: {exc.strerror or exc}") from None

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> DhcpSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def send(self, s: Send) -> None:
        data = _codec.encode(s.msg)
        to = s.to if self.addressed else BROADCAST  # no address yet: see the module docstring
        try:
            await self._sock.sendto(data, (to, SERVER_PORT))
            COUNTERS.sent += 1
        except OSError as exc:
            COUNTERS.send_errors += 1
            log.debug("dhcp send failed where=%s to=%s error=%s", self.where, s.to, exc)

    async def receive(self) -> DhcpMessage:
        """The next datagram that decodes as a DHCP message (others are counted and dropped)."""
        while True:
            data = await self._sock.recv(4096)
            COUNTERS.received += 1
            msg = _codec.decode(data)
            if msg is not None:
                return msg
            COUNTERS.undecodable += 1


async def drive(client: DhcpClient, sock: DhcpSocket, first: Outbox, on_event: Callable[[Event], bool]) -> None:
    """Run ``client`` on ``sock`` from ``first`` until ``on_event`` returns True for an event."""
    out = first
    while True:
        for s in out.sends:
            await sock.send(s)
        for note in out.notes:
            log.debug("dhcp %s mac=%s where=%s", note, client.mac, sock.where)
        for event in out.events:
            if on_event(event):
                return
        wake = client.wakeup
        msg: DhcpMessage | None = None
        with trio.move_on_at(math.inf if wake is None else wake):
            msg = await sock.receive()
        now = trio.current_time()
        out = client.step(msg, now) if msg is not None else client.tick(now)


async def acquire(*, netns: str, parent: str, probe: str, mac: str, timing: DhcpTiming | None = None,
                  rng: random.Random | None = None) -> Lease:
    """A new lease for ``mac``, asked for from inside the netns ``netns``.

    A temporary macvlan ``probe`` (bridge mode, MAC ``mac``, no address) on
    ``parent`` is made inside the netns, the client runs DISCOVER/OFFER/
    REQUEST/ACK on it, and the probe is deleted again whatever happens.

    Raises:
        DhcpError: no lease (the reason names the interface and the cause).
    """
    try:
        await trio.to_thread.run_sync(netops.add_probe_macvlan, netns, parent, probe, mac)
    except netops.NetopsError as exc:
        raise DhcpError(f"cannot make the DHCP probe interface: {exc}") from None
    try:
        with await DhcpSocket.open(netns, probe, addressed=False) as sock:
            client = DhcpClient(mac, rng=rng or random.Random(), timing=timing)
            got: list[Event] = []

            def first(event: Event) -> bool:
                got.append(event)
                return True

            await drive(client, sock, client.discover(trio.current_time()), first)
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(netops.del_probe_macvlan, netns, probe)
    event = got[0]
    if isinstance(event, GaveUp):
        raise DhcpError(f"{event.reason} (mac {mac} on {parent})")
    assert isinstance(event, Bound)
    return event.lease


async def _add_probe_when_free(netns: str, parent: str, ifname: str, mac: str, wait_s: float = 5.0) -> None:
    """The probe, once no other macvlan on ``parent`` has ``mac``: the kernel deletes a dead container's
    interfaces a moment after its netns died (EADDRINUSE until then)."""
    with trio.move_on_after(wait_s):
        while True:
            try:
                await trio.to_thread.run_sync(netops.add_probe_macvlan, netns, parent, ifname, mac)
                return
            except netops.NetopsError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
            await trio.sleep(0.1)
    await trio.to_thread.run_sync(netops.add_probe_macvlan, netns, parent, ifname, mac)  # the last try raises


async def release(*, netns: str | None, ifname: str, lease: Lease, mac: str, probe_parent: str | None = None) -> bool:
    """Send a RELEASE of ``lease`` from ``ifname`` in ``netns`` (True when it was sent).

    With ``probe_parent``, a temporary probe interface ``ifname`` is made on
    that parent first (the endpoint's own interface is gone: its container
    exited) and deleted afterwards.
    """
    client = DhcpClient(mac, rng=random.Random())
    client.resume(lease)
    out = client.release(trio.current_time())
    where = netns or "/proc/self/ns/net"
    try:
        if probe_parent is not None:
            await _add_probe_when_free(where, probe_parent, ifname, mac)
        with await DhcpSocket.open(netns, ifname, addressed=probe_parent is None) as sock:
            for s in out.sends:
                await sock.send(s)
        return bool(out.sends)
    except (DhcpError, netops.NetopsError) as exc:
        log.warning("dhcp release not sent ip=%s mac=%s where=%s error=%s", lease.ip, mac, where, exc)
        return False
    finally:
        if probe_parent is not None:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(netops.del_probe_macvlan, where, ifname)


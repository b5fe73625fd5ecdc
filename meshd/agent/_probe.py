"""The data-plane probe: ICMP echo to the VTEPs :class:`~meshd.agent._liveness.Liveness` asks about.

A thin trio driver: one raw ICMP socket in the agent's network namespace
(the host's underlay) and one loop. Each pass reads every echo reply that has
arrived (those carrying this agent's identifier are the core's answers), then
asks the core for its verdicts (:meth:`Liveness.tick`), then sends an echo
request to each VTEP whose probe is due (:meth:`Liveness.to_probe`), every
``interval_s`` while the core is busy. Reading the
answers first is what keeps a late loop honest: an agent that runs seconds
late finds the answers to its last probes waiting in the socket, and a host
is silent only if a probe sent ``timeout_s`` ago really has no answer. While
the core has nothing to probe or decide (:meth:`Liveness.busy`: every agent
answers gossip), the driver sleeps until :meth:`DataPlaneProbe.wake` (the agent
calls it after each gossip change), so an idle host spends no wakeups on it; a
wake also starts a pass at once, so a host gossip declares dead is judged
without waiting out the interval. The kernel of the probed host answers by
itself, so a host whose agent is dead but whose machine and network are up
answers.

Without CAP_NET_RAW the probe cannot run: the agent logs it once and the core
decides from gossip alone (a dead agent's host is withdrawn).
"""

from __future__ import annotations

import logging
import os
import socket
import struct
from collections.abc import Callable

import trio

from ._liveness import Liveness, Transition

log = logging.getLogger("meshd.agent")

ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY = 8, 0
SOL_RAW, ICMP_FILTER = 255, 1  #: <linux/icmp.h>: a raw ICMP socket's filter, a mask of the types it drops
_HEADER = struct.Struct("!BBHHH")


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo_request(ident: int, seq: int, payload: bytes = b"meshd-dataplane-probe") -> bytes:
    """An ICMP echo request (type 8) with ``ident`` and ``seq``."""
    body = _HEADER.pack(ICMP_ECHO_REQUEST, 0, 0, ident, seq) + payload
    return _HEADER.pack(ICMP_ECHO_REQUEST, 0, checksum(body), ident, seq) + payload


def echo_reply_ident(packet: bytes) -> int | None:
    """The identifier of an echo reply as a raw IPv4 socket receives it (with its IP header), else None."""
    if len(packet) < 20 or packet[0] >> 4 != 4:
        return None
    start = (packet[0] & 0x0F) * 4
    if len(packet) < start + _HEADER.size:
        return None
    kind, _code, _sum, ident, _seq = _HEADER.unpack_from(packet, start)
    return ident if kind == ICMP_ECHO_REPLY else None


def open_socket() -> socket.socket:
    """A non-blocking raw ICMP socket that receives echo replies only.

    Without the filter a raw ICMP socket gets a copy of every ICMP packet the host receives,
    among them the echo requests of every other agent probing this host (the kernel answers
    those itself): hundreds a second for a host all the others suspect, each read in Python
    by the agent that is late already (docs/scale.md).

    Raises:
      PermissionError: no CAP_NET_RAW.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    try:
        sock.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("=I", ~(1 << ICMP_ECHO_REPLY) & 0xFFFFFFFF))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def read_replies(sock: socket.socket, ident: int) -> list[str]:
    """The sources of the echo replies with ``ident`` waiting in ``sock`` (without blocking)."""
    out: list[str] = []
    while True:
        try:
            packet, (src, _port) = sock.recvfrom(2048)
        except BlockingIOError:
            return out
        if echo_reply_ident(packet) == ident:
            out.append(src)


class DataPlaneProbe:
    """Sends the probes the core asks for and feeds the answers back; see the module docstring.

    Args:
        liveness: the core.
        interval_s: probe (and time-verdict) period.
        on_transitions: called with what each answer or tick changed.
    """

    def __init__(self, liveness: Liveness, interval_s: float,
                 on_transitions: Callable[[list[Transition]], None]) -> None:
        self._liveness = liveness
        self._interval_s = interval_s
        self._on_transitions = on_transitions
        self._ident = os.getpid() & 0xFFFF
        self._wake = trio.Event()
        self.sent = self.answers = self.send_errors = 0

    def wake(self) -> None:
        """Gossip changed what the core knows: probe (or decide) now if it has work."""
        self._wake.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            sock = open_socket()
        except PermissionError:
            log.warning("data-plane probe disabled: no CAP_NET_RAW for ICMP; a host whose agent is down is "
                        "withdrawn as failed (run meshd as root to keep its containers reachable)")
            self._liveness.probing = False
            task_status.started()
            await self._passes(None)
            return
        with sock:
            task_status.started()
            await self._passes(sock)

    async def _passes(self, sock: socket.socket | None) -> None:
        seq = 0
        while True:
            if not self._liveness.busy():
                await self._wake.wait()
            self._wake = trio.Event()
            now = trio.current_time()
            if sock is not None:
                answered = read_replies(sock, self._ident)  # first: a late loop's answers are waiting
                self.answers += len(answered)
                if answered:
                    self._report(self._liveness.on_answers(set(answered), now))
            self._report(self._liveness.tick(now))
            if sock is not None:
                sent: set[str] = set()
                for vtep in self._liveness.to_probe(now):
                    seq = (seq + 1) & 0xFFFF
                    try:
                        sock.sendto(echo_request(self._ident, seq), (vtep, 0))
                        self.sent += 1
                    except BlockingIOError:  # our own send queue is full: no probe, no evidence
                        self.send_errors += 1
                        continue
                    except OSError:  # unreachable now (a cut): silence is the answer
                        self.send_errors += 1
                    sent.add(vtep)
                self._liveness.on_sent(sent, now)
            with trio.move_on_after(self._interval_s):
                await self._wake.wait()

    def _report(self, transitions: list[Transition]) -> None:
        if transitions:
            self._on_transitions(transitions)

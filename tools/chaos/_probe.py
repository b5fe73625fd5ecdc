"""Traffic between containers: ICMP echo and UDP, from sockets made inside the containers' netns.

A thread ``setns``es into a container's network namespace only to create a
socket (``netops.in_netns``); the socket stays in that namespace, so one
process sends and receives for every container, with exact timestamps and
without a ``ping`` process per pair.

* :class:`UdpResponders`: one UDP socket per container on :data:`UDP_PORT`,
  answering every datagram with ``token|container name``: a reply proves
  *which* container answered (tenants reuse each other's addresses);
* :func:`probe_all`: the isolation matrix (ICMP echo and UDP, all at once,
  expected-to-pass probes retried);
* :class:`PingStream`: continuous echo requests between pairs of containers
  every ``interval_s``, each recorded as answered or lost (no reply within
  ``timeout_s``, judged by the kernel's receive timestamp, so a stall of
  this process is never counted as loss).
"""

from __future__ import annotations

import select
import socket
import struct
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import netops
from tools.chaos._background import Background
from tools.chaos._checks import Answer
from tools.chaos._topology import ICMP, Probe

UDP_PORT = 7777
MATRIX_IDENT = 0x6D31  # ICMP identifier of matrix probes; pings use PING_IDENT_BASE + pair index
PING_IDENT_BASE = 0x7000
RECV_BYTES = 2048
SO_TIMESTAMPNS = 35  # Linux; the socket module does not name it


def socket_in(pid: int, kind: int, proto: int = 0) -> socket.socket:
    """An IPv4 socket in the network namespace of process ``pid``."""
    with netops.in_netns(f"/proc/{pid}/ns/net"):
        sock = socket.socket(socket.AF_INET, kind, proto)
    sock.setblocking(False)
    return sock


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo_request(ident: int, seq: int) -> bytes:
    payload = b"meshd-chaos"
    header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    return struct.pack("!BBHHH", 8, 0, _checksum(header + payload), ident, seq) + payload


def parse_echo_reply(packet: bytes) -> tuple[str, int, int] | None:
    """``(source IP, ident, seq)`` of an ICMP echo reply read from a raw socket (IP header included)."""
    if len(packet) < 28:
        return None
    ihl = (packet[0] & 0x0F) * 4
    icmp_type, _code, _sum, ident, seq = struct.unpack("!BBHHH", packet[ihl:ihl + 8])
    if icmp_type != 0:
        return None
    return socket.inet_ntoa(packet[12:16]), ident, seq


def _send(sock: socket.socket, data: bytes, addr: tuple[str, int]) -> bool:
    try:
        sock.sendto(data, addr)
        return True
    except OSError:  # e.g. EHOSTUNREACH after a failed neighbour lookup: the probe is lost
        return False


class UdpResponders(Background):
    """A UDP echo server in every container: replies carry the container's name."""

    thread_name = "chaos-udp-responders"

    def __init__(self, pids: Mapping[str, int]) -> None:
        self._socks = {}
        for name, pid in pids.items():
            sock = socket_in(pid, socket.SOCK_DGRAM)
            sock.bind(("0.0.0.0", UDP_PORT))
            self._socks[sock] = name.encode()

    def close(self) -> None:
        for sock in self._socks:
            sock.close()

    def loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            readable, _, _ = select.select(list(self._socks), [], [], 0.2)
            for sock in readable:
                try:
                    data, addr = sock.recvfrom(RECV_BYTES)
                    sock.sendto(data[:64] + b"|" + self._socks[sock], addr)
                except OSError:
                    continue  # the reply could not be sent (no route now): the prober sees it lost


def probe_all(probes: Sequence[Probe], pids: Mapping[str, int], *, timeout_s: float = 1.0,
              attempts: int = 3) -> list[Answer]:
    """Send every probe at once and wait ``timeout_s``; probes that must pass and did not are sent again
    (up to ``attempts`` rounds), so one lost packet is not a finding, while a leak needs one answer."""
    icmp = {name: socket_in(pid, socket.SOCK_RAW, socket.IPPROTO_ICMP) for name, pid in pids.items()}
    udp = {name: socket_in(pid, socket.SOCK_DGRAM) for name, pid in pids.items()}
    answers: list[Answer | None] = [None] * len(probes)
    try:
        todo = list(range(len(probes)))
        for _ in range(attempts):
            _probe_round(probes, todo, icmp, udp, answers, timeout_s)
            todo = [i for i in todo if answers[i] is None and probes[i].expect.passes]
            if not todo:
                break
    finally:
        for sock in [*icmp.values(), *udp.values()]:
            sock.close()
    return [a or Answer(False) for a in answers]


def _probe_round(probes: Sequence[Probe], todo: list[int], icmp: Mapping[str, socket.socket],
                 udp: Mapping[str, socket.socket], answers: list[Answer | None], timeout_s: float) -> None:
    by_sock: dict[socket.socket, str] = {}
    for i in todo:
        p = probes[i]
        if p.proto == ICMP:
            _send(icmp[p.src], echo_request(MATRIX_IDENT, i & 0xFFFF), (p.dst_ip, 0))
            by_sock[icmp[p.src]] = ICMP
        else:
            _send(udp[p.src], f"probe {i}".encode(), (p.dst_ip, UDP_PORT))
            by_sock[udp[p.src]] = "udp"
    wanted = set(todo)
    deadline = time.monotonic() + timeout_s
    while wanted and (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select(list(by_sock), [], [], left)
        for sock in readable:
            for i, answer in _drain(sock, by_sock[sock], probes):
                if i in wanted:
                    wanted.discard(i)
                    answers[i] = answer


def _drain(sock: socket.socket, kind: str, probes: Sequence[Probe]) -> list[tuple[int, Answer]]:
    out: list[tuple[int, Answer]] = []
    while True:
        try:
            data, (src_ip, _port) = sock.recvfrom(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return out
        except OSError:
            continue  # an ICMP error queued on the socket (port unreachable): not an answer
        if kind == ICMP:
            reply = parse_echo_reply(data)
            if reply and reply[1] == MATRIX_IDENT and reply[2] < len(probes) and probes[reply[2]].dst_ip == reply[0]:
                out.append((reply[2], Answer(True)))
        else:
            token, _, name = data.partition(b"|")
            if token.startswith(b"probe "):
                out.append((int(token[6:]), Answer(True, name.decode(errors="replace"))))


@dataclass
class _Pair:
    label: str
    sock: socket.socket
    dst_ip: str
    ident: int
    seq: int = 0
    pending: dict[int, tuple[float, float]] = field(default_factory=dict)  # seq -> (monotonic, wall) sent
    results: list[tuple[float, bool]] = field(default_factory=list)


class PingStream(Background):
    """Continuous pings between pairs: ``results(label)`` is ``[(sent at, answered), ...]`` (monotonic time)."""

    thread_name = "chaos-pings"

    def __init__(self, pairs: Sequence[tuple[str, int, str]], *, interval_s: float = 0.2,
                 timeout_s: float = 1.0) -> None:
        """``pairs``: ``(label, PID of the sender's container, target IP)``."""
        self.interval_s, self.timeout_s = interval_s, timeout_s
        self._pairs = [_Pair(label, socket_in(pid, socket.SOCK_RAW, socket.IPPROTO_ICMP), ip, PING_IDENT_BASE + n)
                       for n, (label, pid, ip) in enumerate(pairs)]
        for p in self._pairs:
            p.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self._lock = threading.Lock()

    def close(self) -> None:
        for p in self._pairs:
            p.sock.close()

    def results(self, label: str) -> list[tuple[float, bool]]:
        with self._lock:
            pair = next(p for p in self._pairs if p.label == label)
            return list(pair.results)

    def loop(self, stop: threading.Event) -> None:
        next_send = time.monotonic()
        while not stop.is_set():
            if time.monotonic() >= next_send:
                self._send_round()
                next_send += self.interval_s
            select.select([p.sock for p in self._pairs], [], [], max(0.0, min(next_send - time.monotonic(), 0.05)))
            drained = time.monotonic()
            for p in self._pairs:  # every socket, so that nothing that arrived before `drained` is left
                self._receive(p)
            self._expire(drained)

    def _send_round(self) -> None:
        now, wall = time.monotonic(), time.time()
        for p in self._pairs:
            p.seq = (p.seq + 1) & 0xFFFF
            if _send(p.sock, echo_request(p.ident, p.seq), (p.dst_ip, 0)):
                p.pending[p.seq] = (now, wall)
            else:
                with self._lock:
                    p.results.append((now, False))

    def _receive(self, p: _Pair) -> None:
        """Judge each reply by the kernel's receive timestamp, so a stall of this thread loses no ping."""
        while True:
            try:
                data, ancillary, _flags, _addr = p.sock.recvmsg(RECV_BYTES, socket.CMSG_SPACE(16))
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue
            reply = parse_echo_reply(data)
            if reply is None or reply[1] != p.ident or reply[0] != p.dst_ip:
                continue
            sent = p.pending.pop(reply[2], None)
            if sent is not None:
                received = _kernel_time(ancillary) or time.time()
                with self._lock:
                    p.results.append((sent[0], received - sent[1] <= self.timeout_s))

    def _expire(self, drained: float) -> None:
        for p in self._pairs:
            for seq, (sent_at, _wall) in list(p.pending.items()):
                if drained - sent_at > self.timeout_s:
                    del p.pending[seq]
                    with self._lock:
                        p.results.append((sent_at, False))


def _kernel_time(ancillary: list[tuple[int, int, bytes]]) -> float | None:
    """The SO_TIMESTAMPNS receive time (wall clock) from recvmsg's ancillary data."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            sec, nsec = struct.unpack("qq", data[:16])
            return sec + nsec / 1e9
    return None

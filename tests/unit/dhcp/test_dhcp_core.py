"""The DHCP client core against a simulated server: seeded runs in virtual time with loss, NAKs,
server restarts and outages, T1/T2/expiry (no sockets, no trio)."""

from __future__ import annotations

import heapq
import ipaddress
import random
from dataclasses import dataclass, field

import pytest

from meshd.dhcp import BROADCAST, Bound, DhcpClient, DhcpMessage, DhcpTiming, GaveUp, Kind, Lost, State

MAC = "02:6e:00:00:00:01"
OTHER_MAC = "02:6e:00:00:00:99"


@dataclass
class FakeServer:
    """An authoritative DHCP server (like the lab's dnsmasq) with a lease table in memory."""

    address: str = "10.78.0.2"
    lease_s: int = 120
    pool: list[str] = field(default_factory=lambda: [f"10.78.0.{i}" for i in range(100, 110)])
    leases: dict[str, tuple[str, float]] = field(default_factory=dict)  # ip -> (mac, expires)
    up: bool = True

    def holder(self, ip: str, now: float) -> str | None:
        mac, expires = self.leases.get(ip, (None, 0.0))
        return mac if expires > now else None

    def handle(self, msg: DhcpMessage, now: float) -> list[DhcpMessage]:
        if not self.up:
            return []
        if msg.kind is Kind.DISCOVER:
            mine = [ip for ip in self.pool if self.holder(ip, now) == msg.mac]
            free = [ip for ip in self.pool if self.holder(ip, now) is None]
            ip = (mine or free or [None])[0]
            return [] if ip is None else [self._reply(Kind.OFFER, msg, ip)]
        if msg.kind is Kind.RELEASE:
            if self.holder(msg.ciaddr, now) == msg.mac:
                del self.leases[msg.ciaddr]
            return []
        if msg.kind is Kind.REQUEST:
            if msg.server_id is not None and msg.server_id != self.address:
                return []
            ip = msg.requested_ip or msg.ciaddr
            if ip not in self.pool or self.holder(ip, now) not in (None, msg.mac):
                return [DhcpMessage(Kind.NAK, msg.xid, msg.mac, server_id=self.address, message="address in use")]
            self.leases[ip] = (msg.mac, now + self.lease_s)
            return [self._reply(Kind.ACK, msg, ip)]
        return []

    def _reply(self, kind: Kind, msg: DhcpMessage, ip: str) -> DhcpMessage:
        return DhcpMessage(kind, msg.xid, msg.mac, yiaddr=ip, server_id=self.address, lease_s=self.lease_s,
                           t1_s=self.lease_s // 2, t2_s=self.lease_s * 7 // 8, prefix_len=24, router="10.78.0.1")


@dataclass
class Sim:
    """Virtual time: the client, the server, a lossy LAN with delay, and scheduled actions."""

    seed: int
    loss: float = 0.0
    timing: DhcpTiming = field(default_factory=DhcpTiming)
    now: float = 0.0
    events: list = field(default_factory=list)
    sent: list[DhcpMessage] = field(default_factory=list)
    strict: bool = True  #: check the safety property (off where a test makes the server break it)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.server = FakeServer()
        self.client = DhcpClient(MAC, rng=random.Random(self.seed + 1), timing=self.timing)
        self._queue: list[tuple[float, int, object]] = []
        self._n = 0

    def at(self, t: float, action) -> None:
        self._push(t, action)

    def _push(self, t: float, item: object) -> None:
        self._n += 1
        heapq.heappush(self._queue, (t, self._n, item))

    def feed(self, out) -> None:
        for s in out.sends:
            self.sent.append(s.msg)
            assert s.to == BROADCAST or s.to == self.server.address
            if self.rng.random() < self.loss:
                continue
            arrive = self.now + self.rng.uniform(0.0005, 0.02)
            for reply in self.server.handle(s.msg, arrive):
                if self.rng.random() >= self.loss:
                    self._push(arrive + self.rng.uniform(0.0005, 0.02), reply)
        self.events += [(self.now, e) for e in out.events]
        self.check()

    def check(self) -> None:
        """Safety: the client never believes in a lease longer than the server keeps it."""
        lease = self.client.lease
        if self.strict and lease is not None and self.client.state in (State.BOUND, State.RENEWING, State.REBINDING):
            mac, expires = self.server.leases.get(lease.ip, (None, 0.0))
            if self.server.up and mac is not None:
                assert mac == MAC, f"seed={self.seed}: the client holds {lease.ip}, leased to {mac}"
                assert lease.expires_at <= expires + 1e-9, f"seed={self.seed}: client lease outlives the server's"

    def run_until(self, end: float) -> None:
        while True:
            wake = self.client.wakeup
            nxt = self._queue[0][0] if self._queue else None
            cands = [t for t in (wake, nxt) if t is not None]
            if not cands or min(cands) > end:
                self.now = end
                return
            if nxt is not None and (wake is None or nxt <= wake):
                self.now, _, item = heapq.heappop(self._queue)
                if callable(item):
                    item()
                    continue
                self.feed(self.client.step(item, self.now))
            else:
                self.now = max(self.now, wake)
                self.feed(self.client.tick(self.now))

    def of(self, kind: type) -> list:
        return [e for _, e in self.events if isinstance(e, kind)]


def test_acquires_then_renews_at_t1_forever_with_one_address() -> None:
    sim = Sim(seed=1)
    sim.feed(sim.client.discover(0.0))
    sim.run_until(3600)
    bound = sim.of(Bound)
    assert not sim.of(Lost) and not sim.of(GaveUp)
    assert {b.lease.ip for b in bound} == {"10.78.0.100"}
    assert not bound[0].renewed and all(b.renewed for b in bound[1:])
    assert len(bound) >= 3600 // 60 - 1  # one renewal per T1 (60 s)
    renewals = [m for m in sim.sent if m.kind is Kind.REQUEST and m.ciaddr != "0.0.0.0"]
    assert renewals and all(not m.broadcast for m in renewals)  # unicast from the leased address
    assert sim.client.state is State.BOUND


@pytest.mark.parametrize("seed", range(40))
def test_lossy_lan_never_a_lease_the_server_does_not_hold(seed: int) -> None:
    sim = Sim(seed=seed, loss=0.3)
    sim.feed(sim.client.discover(0.0))
    sim.run_until(1800)  # check() ran after every step
    first = next(e for _, e in sim.events if isinstance(e, (Bound, GaveUp)))
    assert isinstance(first, (Bound, GaveUp)), f"seed={seed}"
    for _, e in sim.events:
        if isinstance(e, Lost):  # only when it really expired, or the server said no
            assert "expired" in e.reason or "NAK" in e.reason or "confirmed" in e.reason, f"seed={seed} {e}"


def test_gives_up_when_no_server_answers() -> None:
    sim = Sim(seed=2)
    sim.server.up = False
    sim.feed(sim.client.discover(0.0))
    sim.run_until(100)
    (gave_up,) = sim.of(GaveUp)
    assert "20s" in gave_up.reason
    discovers = [m for m in sim.sent if m.kind is Kind.DISCOVER]
    assert 4 <= len(discovers) <= 6  # 1, 2, 4, 8 s ... backoff within 20 s
    assert sim.client.wakeup is None


def test_nak_at_renewal_fails_then_recovers_when_the_address_is_free_again() -> None:
    sim = Sim(seed=3, strict=False)
    sim.feed(sim.client.discover(0.0))
    sim.run_until(10)
    ip = sim.client.lease.ip

    def steal() -> None:  # the server lost its lease file and gave the address to someone else
        sim.server.leases = {ip: (OTHER_MAC, sim.now + 1000)}

    sim.at(30, steal)
    sim.run_until(61)
    (lost,) = sim.of(Lost)
    assert lost.ip == ip and "NAK" in lost.reason and sim.client.state is State.FAILED
    assert sim.client.lease is None
    sim.at(500, lambda: sim.server.leases.clear())
    sim.run_until(600)
    assert sim.client.state is State.BOUND and sim.client.lease.ip == ip
    assert sim.of(Bound)[-1].renewed


def test_outage_rebinds_at_t2_and_expires_exactly_at_the_lease_end() -> None:
    sim = Sim(seed=4)
    sim.feed(sim.client.discover(0.0))
    sim.run_until(5)
    lease = sim.client.lease
    sim.server.up = False
    sim.run_until(lease.renew_at + 1)
    assert sim.client.state is State.RENEWING
    sim.run_until(lease.rebind_at + 1)
    assert sim.client.state is State.REBINDING
    assert sim.sent[-1].kind is Kind.REQUEST and sim.sent[-1].ciaddr == lease.ip
    sim.run_until(lease.expires_at + 1)
    (lost,) = sim.of(Lost)
    when = next(t for t, e in sim.events if isinstance(e, Lost))
    assert when == pytest.approx(lease.expires_at) and "expired" in lost.reason


def test_server_restart_without_its_leases_keeps_the_address() -> None:
    sim = Sim(seed=5)
    sim.feed(sim.client.discover(0.0))
    sim.run_until(10)
    ip = sim.client.lease.ip
    sim.at(20, lambda: sim.server.leases.clear())  # restarted with an empty lease file: authoritative, ACKs
    sim.run_until(400)
    assert not sim.of(Lost) and sim.client.lease.ip == ip


def test_reboot_confirms_the_same_address_or_fails_on_nak() -> None:
    sim = Sim(seed=6)
    sim.server.leases["10.78.0.105"] = (MAC, 100.0)
    sim.feed(sim.client.reboot("10.78.0.105", 0.0))
    sim.run_until(5)
    (bound,) = sim.of(Bound)
    assert bound.lease.ip == "10.78.0.105" and bound.renewed
    assert sim.sent[0].requested_ip == "10.78.0.105" and sim.sent[0].server_id is None

    taken = Sim(seed=7)
    taken.server.leases["10.78.0.105"] = (OTHER_MAC, 1000.0)
    taken.feed(taken.client.reboot("10.78.0.105", 0.0))
    taken.run_until(5)
    (lost,) = taken.of(Lost)
    assert "refused 10.78.0.105" in lost.reason and taken.client.state is State.FAILED


def test_reboot_nobody_answers_is_reported() -> None:
    sim = Sim(seed=8)
    sim.server.up = False
    sim.feed(sim.client.reboot("10.78.0.105", 0.0))
    sim.run_until(25)
    (lost,) = sim.of(Lost)
    assert "no DHCP server confirmed" in lost.reason


def test_release_frees_the_lease_and_ends_the_client() -> None:
    sim = Sim(seed=9)
    sim.feed(sim.client.discover(0.0))
    sim.run_until(5)
    ip = sim.client.lease.ip
    out = sim.client.release(sim.now)
    (send,) = out.sends
    assert send.to == sim.server.address and send.msg.kind is Kind.RELEASE and send.msg.server_id == sim.server.address
    sim.feed(out)
    assert ip not in sim.server.leases and sim.client.state is State.RELEASED and sim.client.wakeup is None


def test_ignores_replies_for_other_transactions_or_macs() -> None:
    client = DhcpClient(MAC, rng=random.Random(1))
    out = client.discover(0.0)
    xid = out.sends[0].msg.xid
    offer = DhcpMessage(Kind.OFFER, xid ^ 1, MAC, yiaddr="10.78.0.100", server_id="10.78.0.2")
    assert not client.step(offer, 0.1).sends
    assert not client.step(DhcpMessage(Kind.OFFER, xid, OTHER_MAC, yiaddr="10.78.0.100", server_id="x"), 0.1).sends
    assert client.state is State.SELECTING


def test_lease_times_are_clamped_and_default_from_the_lease() -> None:
    client = DhcpClient(MAC, rng=random.Random(1))
    xid = client.discover(0.0).sends[0].msg.xid
    client.step(DhcpMessage(Kind.OFFER, xid, MAC, yiaddr="10.78.0.100", server_id="10.78.0.2"), 1.0)
    out = client.step(DhcpMessage(Kind.ACK, xid, MAC, yiaddr="10.78.0.100", server_id="10.78.0.2", lease_s=100), 2.0)
    (bound,) = out.events
    lease = bound.lease
    assert (lease.start, lease.t1_s, lease.t2_s, lease.lease_s) == (1.0, 50.0, 87.5, 100.0)  # from the REQUEST
    assert str(ipaddress.IPv4Address(lease.ip)) == "10.78.0.100"


def test_timing_is_validated() -> None:
    with pytest.raises(ValueError, match="first_retry_s"):
        DhcpTiming(first_retry_s=0)
    with pytest.raises(ValueError, match="jitter_s"):
        DhcpTiming(jitter_s=2.0)

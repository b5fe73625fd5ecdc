"""The DHCP client of one interface, as a pure state machine (RFC 2131 section 4.4).

Theory of operation
-------------------
:class:`DhcpClient` does no I/O: the driver feeds it received messages
(:meth:`~DhcpClient.step`) and the passing of time (:meth:`~DhcpClient.tick`),
and sends what the returned :class:`Outbox` says; clock and randomness are
parameters (``now`` in seconds on any monotonic clock; a ``random.Random``
for transaction ids and retransmission jitter), so seeded simulations drive it.

States (``State``) and what moves between them — every transition is here:

=============  =====================================  ==========================================
state          entered by                             leaves on
=============  =====================================  ==========================================
SELECTING      :meth:`discover` (sends DISCOVER)      OFFER: REQUEST the offered address
REQUESTING     an OFFER                               ACK: BOUND; NAK: SELECTING again
REBOOTING      :meth:`reboot` (INIT-REBOOT: REQUEST   ACK: BOUND; NAK: FAILED (event ``Lost``)
               the address the interface already has)
BOUND          an ACK                                 T1: RENEWING
RENEWING       T1 (unicast REQUEST to the server,     ACK: BOUND; NAK: FAILED; T2: REBINDING
               from the leased address)
REBINDING      T2 (broadcast REQUEST)                 ACK: BOUND; NAK or expiry: FAILED
FAILED         NAK, expiry, or no answer in time      with a known address: INIT-REBOOT again
                                                      every ``failed_retry_s`` (an ACK: BOUND)
BOUND          :meth:`resume` (a lease obtained       T1: RENEWING
               on another interface)
RELEASED       :meth:`release` (sends RELEASE)        nothing (final)
=============  =====================================  ==========================================

Acquisition (SELECTING/REQUESTING) and INIT-REBOOT retransmit with
exponential backoff (``first_retry_s`` doubling up to ``max_retry_s``, ±
``jitter_s``) and give up after ``acquire_timeout_s``: a lease that is never
obtained is a ``GaveUp`` (acquisition) or ``Lost`` (reboot) event, never a
silent wait. In RENEWING and REBINDING the client retransmits after half the
time left until T2 (resp. expiry), but not more often than
``renew_min_retry_s``. A lease starts when the REQUEST that got it was first
sent (RFC 2131 4.4.1), so T1, T2 and expiry are never later than the server's.

The client never declines an offer (no ARP probe): the server (dnsmasq pings
an address before offering it) is trusted to offer free addresses.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field

from ._messages import BROADCAST, DhcpMessage, Kind, Send

#: a lease time of 0xffffffff means "infinite" (RFC 2132 9.2)
INFINITE_S = 0xFFFF_FFFF


class State(enum.Enum):
    IDLE = "idle"
    SELECTING = "selecting"
    REQUESTING = "requesting"
    REBOOTING = "rebooting"
    BOUND = "bound"
    RENEWING = "renewing"
    REBINDING = "rebinding"
    FAILED = "failed"
    RELEASED = "released"


@dataclass(frozen=True, kw_only=True)
class DhcpTiming:
    """The client's timers (RFC 2131's values in brackets; a LAN answers in milliseconds)."""

    #: first retransmission of DISCOVER/REQUEST after this, doubling each time [4 s]
    first_retry_s: float = 1.0
    #: the doubling stops here [64 s]
    max_retry_s: float = 16.0
    #: each retransmission delay is randomised by ± this [1 s]
    jitter_s: float = 0.25
    #: acquisition (and INIT-REBOOT) gives up after this without an ACK
    acquire_timeout_s: float = 20.0
    #: RENEWING/REBINDING retransmit no more often than this [60 s; shorter so a 2-minute lease
    #: gets more than one try before T2]
    renew_min_retry_s: float = 10.0
    #: after a NAK or expiry, INIT-REBOOT for the same address again this often (the server may come back)
    failed_retry_s: float = 30.0

    def __post_init__(self) -> None:
        if not 0 < self.first_retry_s <= self.max_retry_s:
            raise ValueError("first_retry_s must be positive and at most max_retry_s")
        if not 0 <= self.jitter_s < self.first_retry_s:
            raise ValueError("jitter_s must be at least 0 and less than first_retry_s")
        if self.acquire_timeout_s <= 0 or self.renew_min_retry_s <= 0 or self.failed_retry_s <= 0:
            raise ValueError("acquire_timeout_s, renew_min_retry_s and failed_retry_s must be positive")


@dataclass(frozen=True, slots=True)
class Lease:
    """An address leased by ``server``; times on the caller's clock."""

    ip: str
    prefix_len: int
    server: str
    router: str | None
    start: float  #: when the REQUEST that got it was first sent
    lease_s: float
    t1_s: float
    t2_s: float

    @property
    def renew_at(self) -> float:
        return self.start + self.t1_s

    @property
    def rebind_at(self) -> float:
        return self.start + self.t2_s

    @property
    def expires_at(self) -> float:
        return self.start + self.lease_s


@dataclass(frozen=True, slots=True)
class Bound:
    """A lease was obtained, confirmed or renewed (``renewed``: it was bound already)."""

    lease: Lease
    renewed: bool


@dataclass(frozen=True, slots=True)
class Lost:
    """The address is no longer leased: NAK, expiry, or a reboot nobody confirmed."""

    ip: str
    reason: str


@dataclass(frozen=True, slots=True)
class GaveUp:
    """Acquisition found no lease within ``acquire_timeout_s``."""

    reason: str


Event = Bound | Lost | GaveUp


@dataclass(slots=True)
class Outbox:
    """What one call produced: messages to send, events, and log notes (``key=value`` lines)."""

    sends: list[Send] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class DhcpClient:
    """The DHCP client of one interface (MAC ``mac``); see the module docstring."""

    def __init__(self, mac: str, *, rng: random.Random, timing: DhcpTiming | None = None) -> None:
        self.mac = mac.lower()
        self.timing = timing or DhcpTiming()
        self.state = State.IDLE
        self.lease: Lease | None = None
        self._rng = rng
        self._ip: str | None = None  # the address asked for in REBOOTING / FAILED
        self._xid = 0
        self._tries = 0
        self._phase_start = 0.0  # when the current exchange was first sent
        self._retry_at: float | None = None
        self._offer: DhcpMessage | None = None

    # --- inputs -------------------------------------------------------------------

    def discover(self, now: float) -> Outbox:
        """Start acquiring a new address (INIT -> SELECTING)."""
        out = Outbox()
        self._begin(State.SELECTING, now)
        self._offer = None
        self._send_discover(out, now)
        return out

    def reboot(self, ip: str, now: float) -> Outbox:
        """Confirm ``ip``, which the interface already has (INIT-REBOOT: after an agent restart)."""
        out = Outbox()
        self._ip = ip
        self._begin(State.REBOOTING, now)
        self._send(out, now, self._reboot_request(), "rebooting")
        return out

    def resume(self, lease: Lease) -> None:
        """Go on from ``lease``, obtained elsewhere (by acquisition on a probe interface): BOUND."""
        self.lease, self._ip, self.state, self._retry_at = lease, lease.ip, State.BOUND, None

    def release(self, now: float) -> Outbox:
        """Give the lease back (RELEASE, unicast to its server); the client is done afterwards."""
        out = Outbox()
        lease = self.lease
        if lease is not None and self.state in (State.BOUND, State.RENEWING, State.REBINDING):
            msg = DhcpMessage(Kind.RELEASE, self._new_xid(), self.mac, ciaddr=lease.ip, server_id=lease.server)
            out.sends.append(Send(msg, lease.server))
            out.notes.append(f"release ip={lease.ip} server={lease.server}")
        self.state, self.lease, self._retry_at = State.RELEASED, None, None
        return out

    def step(self, msg: DhcpMessage, now: float) -> Outbox:
        """A message received on the interface (anything not for this client is ignored)."""
        out = Outbox()
        if msg.xid != self._xid or msg.mac.lower() != self.mac or msg.kind not in (Kind.OFFER, Kind.ACK, Kind.NAK):
            return out
        handler = _HANDLERS.get(self.state)
        if handler is not None:
            handler(self, msg, now, out)
        return out

    def tick(self, now: float) -> Outbox:
        """Time passed: retransmit, or move on at T1, T2 and expiry."""
        out = Outbox()
        lease, state = self.lease, self.state
        if state is State.BOUND and lease is not None and now >= lease.renew_at:
            self._begin(State.RENEWING, now)
            self._send(out, now, self._renew_request(lease), "renewing", to=lease.server)
        elif state in (State.RENEWING, State.REBINDING) and lease is not None:
            self._tick_renewal(out, now, lease)
        elif self._retry_at is not None and now >= self._retry_at:
            self._tick_retry(out, now)
        return out

    @property
    def wakeup(self) -> float | None:
        """The next time :meth:`tick` has something to do (None: only a message can change anything)."""
        lease = self.lease
        if self.state is State.BOUND and lease is not None:
            return lease.renew_at
        if self.state in (State.RENEWING, State.REBINDING) and lease is not None:
            edge = lease.rebind_at if self.state is State.RENEWING else lease.expires_at
            return min(edge, self._retry_at) if self._retry_at is not None else edge
        return self._retry_at

    # --- ticks --------------------------------------------------------------------

    def _tick_renewal(self, out: Outbox, now: float, lease: Lease) -> None:
        if now >= lease.expires_at:
            self._fail(out, now, lease.ip, f"lease of {lease.ip} expired: no DHCP server renewed it")
        elif self.state is State.RENEWING and now >= lease.rebind_at:
            self._begin(State.REBINDING, now, keep_start=True)
            self._send(out, now, self._renew_request(lease), "rebinding")
        elif self._retry_at is not None and now >= self._retry_at:
            to = lease.server if self.state is State.RENEWING else BROADCAST
            self._send(out, now, self._renew_request(lease), f"{self.state.value} retry", to=to)

    def _tick_retry(self, out: Outbox, now: float) -> None:
        t = self.timing
        if self.state in (State.SELECTING, State.REQUESTING) and now >= self._phase_start + t.acquire_timeout_s:
            self.state, self._retry_at = State.FAILED, None
            out.events.append(GaveUp(f"no DHCP server gave an address within {t.acquire_timeout_s:.0f}s"))
            out.notes.append(f"gave up mac={self.mac}")
        elif self.state is State.REBOOTING and now >= self._phase_start + t.acquire_timeout_s:
            ip = self._ip or "?"
            self._fail(out, now, ip, f"no DHCP server confirmed the lease of {ip} within {t.acquire_timeout_s:.0f}s")
        elif self.state is State.FAILED:
            self._send(out, now, self._reboot_request(), "failed retry")
            self._retry_at = now + t.failed_retry_s
        elif self.state is State.SELECTING:
            self._send_discover(out, now)
        elif self.state is State.REQUESTING and self._offer is not None:
            self._send(out, now, self._select_request(self._offer), "requesting retry")
        elif self.state is State.REBOOTING:
            self._send(out, now, self._reboot_request(), "rebooting retry")

    # --- message handlers (one per state) -----------------------------------------

    def _on_selecting(self, msg: DhcpMessage, now: float, out: Outbox) -> None:
        if msg.kind is Kind.OFFER and msg.server_id:
            self._offer = msg
            self._begin(State.REQUESTING, now, keep_xid=True)
            self._send(out, now, self._select_request(msg), f"offered ip={msg.yiaddr} server={msg.server_id}")

    def _on_requesting(self, msg: DhcpMessage, now: float, out: Outbox) -> None:
        if msg.kind is Kind.ACK:
            self._bind(out, msg, renewed=False)
        elif msg.kind is Kind.NAK:
            out.notes.append(f"nak while requesting mac={self.mac} message={msg.message!r}")
            self._begin(State.SELECTING, now, keep_start=True)
            self._offer = None
            self._send_discover(out, now)

    def _on_rebooting(self, msg: DhcpMessage, now: float, out: Outbox) -> None:
        if msg.kind is Kind.ACK and msg.yiaddr == self._ip:
            self._bind(out, msg, renewed=True)
        elif msg.kind is Kind.NAK:
            self._fail(out, now, self._ip or "?", f"the DHCP server refused {self._ip} (NAK {msg.message!r})")

    def _on_renewing(self, msg: DhcpMessage, now: float, out: Outbox) -> None:
        lease = self.lease
        assert lease is not None
        if msg.kind is Kind.ACK and msg.yiaddr == lease.ip:
            self._bind(out, msg, renewed=True)
        elif msg.kind is Kind.NAK:
            self._fail(out, now, lease.ip, f"the DHCP server refused to renew {lease.ip} (NAK {msg.message!r})")

    def _on_failed(self, msg: DhcpMessage, now: float, out: Outbox) -> None:
        if msg.kind is Kind.ACK and msg.yiaddr == self._ip:
            self._bind(out, msg, renewed=True)

    # --- helpers ------------------------------------------------------------------

    def _bind(self, out: Outbox, msg: DhcpMessage, *, renewed: bool) -> None:
        lease_s = float(msg.lease_s if msg.lease_s is not None else 3600)
        if msg.lease_s == INFINITE_S:
            lease_s = float("inf")
        t1 = float(msg.t1_s) if msg.t1_s is not None else lease_s * 0.5
        t2 = float(msg.t2_s) if msg.t2_s is not None else lease_s * 0.875
        server = msg.server_id or (self.lease.server if self.lease else "")
        lease = Lease(ip=msg.yiaddr, prefix_len=msg.prefix_len if msg.prefix_len is not None else 24,
                      server=server, router=msg.router, start=self._phase_start, lease_s=lease_s,
                      t1_s=min(t1, lease_s), t2_s=min(max(t2, t1), lease_s))
        self.lease, self._ip, self.state, self._retry_at = lease, lease.ip, State.BOUND, None
        out.events.append(Bound(lease, renewed))
        out.notes.append(f"bound ip={lease.ip} server={server} lease_s={lease_s:g} renewed={renewed}")

    def _fail(self, out: Outbox, now: float, ip: str, reason: str) -> None:
        self.state, self.lease, self._ip = State.FAILED, None, ip
        self._retry_at = now + self.timing.failed_retry_s
        out.events.append(Lost(ip, reason))
        out.notes.append(f"lost ip={ip} reason={reason!r}")

    def _begin(self, state: State, now: float, *, keep_xid: bool = False, keep_start: bool = False) -> None:
        self.state = state
        if not keep_xid:
            self._new_xid()
        if not keep_start:
            self._phase_start = now
        self._tries = 0

    def _new_xid(self) -> int:
        self._xid = self._rng.getrandbits(32)
        return self._xid

    def _send_discover(self, out: Outbox, now: float) -> None:
        self._send(out, now, DhcpMessage(Kind.DISCOVER, self._xid, self.mac, broadcast=True), "discover")

    def _send(self, out: Outbox, now: float, msg: DhcpMessage, why: str, to: str = BROADCAST) -> None:
        out.sends.append(Send(msg, to))
        out.notes.append(f"send {msg.kind.name} why={why} xid={msg.xid:#010x} to={to}")
        self._retry_at = now + self._retry_delay(now)
        if self.state in (State.SELECTING, State.REQUESTING, State.REBOOTING):  # give up on time
            self._retry_at = min(self._retry_at, self._phase_start + self.timing.acquire_timeout_s)
        self._tries += 1

    def _retry_delay(self, now: float) -> float:
        t, lease = self.timing, self.lease
        if self.state in (State.RENEWING, State.REBINDING) and lease is not None:
            edge = lease.rebind_at if self.state is State.RENEWING else lease.expires_at
            return max(t.renew_min_retry_s, (edge - now) / 2)
        base = min(t.first_retry_s * (1 << min(self._tries, 16)), t.max_retry_s)
        return base + self._rng.uniform(-t.jitter_s, t.jitter_s)

    def _select_request(self, offer: DhcpMessage) -> DhcpMessage:
        return DhcpMessage(Kind.REQUEST, self._xid, self.mac, server_id=offer.server_id,
                           requested_ip=offer.yiaddr, broadcast=True)

    def _reboot_request(self) -> DhcpMessage:
        return DhcpMessage(Kind.REQUEST, self._xid, self.mac, requested_ip=self._ip, broadcast=True)

    def _renew_request(self, lease: Lease) -> DhcpMessage:
        return DhcpMessage(Kind.REQUEST, self._xid, self.mac, ciaddr=lease.ip)


_HANDLERS = {
    State.SELECTING: DhcpClient._on_selecting,
    State.REQUESTING: DhcpClient._on_requesting,
    State.REBOOTING: DhcpClient._on_rebooting,
    State.RENEWING: DhcpClient._on_renewing,
    State.REBINDING: DhcpClient._on_renewing,
    State.FAILED: DhcpClient._on_failed,
}

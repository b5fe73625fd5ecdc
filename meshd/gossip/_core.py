"""The SWIM + Lifeguard protocol core: no I/O, no clock, no global randomness.

Theory of operation
-------------------
:class:`GossipCore` is a state machine.  Inputs are a received message
(:meth:`~GossipCore.step`), the passage of time (:meth:`~GossipCore.tick`)
and local commands (:meth:`~GossipCore.join`, :meth:`~GossipCore.leave`,
:meth:`~GossipCore.update_meta`).  Each returns an :class:`Outbox`: messages
to send (address, message), events for subscribers and log notes.  ``now`` is
a float of seconds on any monotonic clock; randomness comes from the
``random.Random`` given at construction.  A driver must call ``tick`` no
later than :meth:`~GossipCore.next_deadline`.

Failure detection (SWIM).  Every protocol period the core pings one member,
chosen by shuffled round-robin.  No ack within the probe timeout: it asks
``indirect_checks`` random members to ping the target (IndirectPing); each
relays the ack or, Lifeguard, answers Nack when the target is silent.  No ack
by the end of the period: the target becomes SUSPECT.  A suspicion turns into
DEAD when its timer runs out; a suspected member refutes by raising its
incarnation and gossiping ALIVE.

Lifeguard.  (1) The suspicion timeout starts long and shrinks with each
independent confirmation (``_suspicion``).  (2) This node's health score
(``_awareness``) rises when it misses acks, gets fewer nacks than it asked
for, or must refute; every probe interval and timeout is stretched by it.
(3) A ping to a suspected member carries the suspicion first, so the member
hears it at once and refutes.

Dissemination.  Each update is queued (``_broadcast``) and piggybacked on
pings, acks, nacks and a gossip fan-out (``gossip_nodes`` random members every
``gossip_interval_s``), each at most ``retransmit_mult * ceil(log10(n+1))``
times.  A periodic push-pull exchanges full tables with one random member
(and with the seeds at join), so nothing one-shot is lost.

State transitions (precedence, refutation, and the rules that let a partition
heal without failing live members) are all in ``_transitions.py``, the base
class of :class:`GossipCore`.  The core adds reconnection: every
``reconnect_interval_s`` it pings one random DEAD member, and a member held
DEAD that answers or speaks first gets a full-state push-pull, so each side
learns what the other holds against it and refutes.

Leave.  :meth:`leave` raises the incarnation, marks this node LEFT, queues
the fact and sends it to every live member directly; each replies LeaveAck.
:attr:`leave_confirmed` tells the driver when it may stop.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from ._awareness import Awareness
from ._broadcast import BroadcastQueue
from ._config import GossipConfig
from ._messages import (
    Ack,
    Gossip,
    IndirectPing,
    LeaveAck,
    Meta,
    Nack,
    Ping,
    PushPullReq,
    PushPullResp,
    State,
    Update,
)
from ._table import Peers, Record
from ._transitions import LIVE, Transitions
from ._types import Event, GossipStatus, Member, Outbox

#: Messages whose arrival from a member held DEAD starts a push-pull with it
#: (a push-pull carries full state already; a LeaveAck ends a conversation).
_CONTACT = (Ping, Ack, IndirectPing, Nack, Gossip)


@dataclass(slots=True)
class _Probe:
    seq: int
    target: str
    timeout_at: float
    end_at: float
    indirect_sent: bool = False
    expected_nacks: int = 0
    nacks: int = 0


@dataclass(frozen=True, slots=True)
class _Relay:
    seq: int  # the requester's sequence number
    requester_addr: str
    deadline: float


class GossipCore(Transitions):
    """One member's SWIM state machine.

    Args:
      name: this member's unique name (the host name, usually).
      addr: the gossip address other members reach it at.
      config: timing (validated by the caller: ``config.problems()``).
      rng: all randomness (target order, fan-out, relays).
      now: the clock at creation.
      meta: this member's metadata.
      incarnation: the starting incarnation (0 for a fresh process; a
        rejoining member refutes its old record automatically).
    """

    def __init__(
        self, *, name: str, addr: str, config: GossipConfig, rng: random.Random,
        now: float, meta: Meta = Meta(), incarnation: int = 0,
    ) -> None:
        self.name, self.addr, self.config, self._rng = name, addr, config, rng
        self._members: dict[str, Record | Member] = {name: Record(name, addr, incarnation, meta, now)}
        self._peers = Peers()  # live (ALIVE or SUSPECT) members other than us
        self._gone: dict[str, None] = {}  # DEAD and LEFT members, until reaped
        self._order: list[str] = []
        self._order_pos = 0
        self._probe: _Probe | None = None
        self._relays: dict[int, _Relay] = {}
        self._suspicions = {}
        self._queue: BroadcastQueue[Update] = BroadcastQueue(config.retransmit_mult)
        self._awareness = Awareness(config.awareness_max_multiplier)
        self._seq = 0
        self.joined = False
        self.leaving = False
        self._leave_waiting: set[str] = set()
        #: the seeds of the last join, and those a leave before any join answer still waits for
        self._seeds: tuple[str, ...] = ()
        self._leave_seeds: set[str] = set()
        self._counters = dict.fromkeys(
            ("probes", "indirect_probes", "probe_failures", "refutations",
             "messages_in", "messages_out", "dropped", "late_ticks"), 0)
        c = config
        self._next_probe = now + rng.uniform(0, c.probe_interval_s)
        self._next_gossip = now + c.gossip_interval_s
        self._next_push_pull = now + rng.uniform(0.5, 1.0) * c.push_pull_interval_s
        self._next_reconnect = now + rng.uniform(0.5, 1.0) * c.reconnect_interval_s
        self._next_reap = now + c.probe_interval_s
        self._now = now
        self._reply_to = ""
        self._from_gone = False  # the message being stepped comes from a member we hold DEAD/LEFT
        self._reconnected_at: dict[str, float] = {}  # DEAD member -> last push-pull on contact
        self._reset_out()

    # --- public API ------------------------------------------------------

    @property
    def incarnation(self) -> int:
        return self._members[self.name].incarnation

    @property
    def leave_confirmed(self) -> bool:
        """After :meth:`leave`: every member that was live has acknowledged it."""
        return self.leaving and not self._leave_waiting and not self._leave_seeds

    def members(self) -> tuple[Member, ...]:
        """Every member this node knows, including itself and the not-yet-reaped gone."""
        return tuple(self._snap(r) for r in self._members.values())

    def member(self, name: str) -> Member | None:
        rec = self._members.get(name)
        return self._snap(rec) if rec else None

    def status(self) -> GossipStatus:
        counts = dict.fromkeys(State, 0)
        for rec in self._members.values():
            counts[rec.state] += 1
        return GossipStatus(
            name=self.name, addr=self.addr, incarnation=self.incarnation, joined=self.joined,
            leaving=self.leaving, members_alive=counts[State.ALIVE],
            members_suspect=counts[State.SUSPECT], members_dead=counts[State.DEAD],
            members_left=counts[State.LEFT], health_score=self._awareness.score,
            queued_updates=len(self._queue), **self._counters,
        )

    def count_dropped(self, n: int = 1) -> None:
        """The driver reports frames it dropped (undecodable, oversized, queue full)."""
        self._counters["dropped"] += n

    def next_deadline(self) -> float:
        """The latest time the driver must call :meth:`tick` by."""
        due = min(self._next_push_pull, self._next_reconnect, self._next_reap)
        if not self.leaving and self._probe is None:
            due = min(due, self._next_probe)
        if len(self._queue):
            due = min(due, self._next_gossip)
        if self._probe is not None:
            p = self._probe
            due = min(due, p.end_at if p.indirect_sent else p.timeout_at)
        if self._relays:
            due = min(due, min(r.deadline for r in self._relays.values()))
        if self._suspicions:
            due = min(due, min(s.deadline for s in self._suspicions.values()))
        return due

    def join(self, addrs: Iterable[str], now: float) -> Outbox:
        """Exchange full state with every address in ``addrs`` (seeds).

        ``joined`` becomes True once any of them answers; the driver retries
        with backoff and reports when none does.
        """
        self._now = now
        addrs = list(addrs)
        self._seeds = tuple(a for a in addrs if a != self.addr)
        for addr in addrs:
            if addr != self.addr:
                self._send(addr, PushPullReq(src=self.name, src_addr=self.addr, join=True,
                                             members=self._full_state()))
        self._note(f"event=join_sent seeds={','.join(addrs)}")
        return self._flush()

    def preload(self, members: Iterable[Member], now: float) -> None:
        """Fill the table from a snapshot (a previous run, a simulation's start).

        Only ALIVE members are taken, silently: no events, nothing gossiped.
        The member itself and names already known are skipped.  The Member
        objects are kept (not copied) until they change, so many cores can
        share one snapshot.
        """
        self._now = now
        for m in members:
            if m.state == State.ALIVE and m.name not in self._members:
                self._members[m.name] = m  # shared until changed (copy on write in _apply)
                self._peers.add(m.name)
        # The table's size is known now: spread the first push-pull over the
        # interval scaled for it, as a member that grew the table would.
        self._next_push_pull = now + self._rng.uniform(0.5, 1.0) * self._push_pull_interval()
        self.joined = self.joined or len(self._peers) > 0

    def leave(self, now: float) -> Outbox:
        """Leave gracefully: announce LEFT to every live member and await their acks."""
        self._now = now
        if self.leaving:
            return self._flush()
        me = self._record(self.name)
        me.incarnation += 1
        me.state, me.since, self.leaving = State.LEFT, now, True
        fact = Update(name=self.name, state=State.LEFT, incarnation=me.incarnation, by=self.name)
        self._queue.push(self.name, fact)
        self._leave_waiting = set(self._peers.items)
        for name in self._leave_waiting:
            self._send(self._members[name].addr,
                       Gossip(src=self.name, src_addr=self.addr, updates=(fact,)))
        # A member whose join no seed has answered yet knows no peers, but the seeds that took
        # its join request spread it to everyone: they must hear the leave, or all report a failure.
        self._leave_seeds = set() if self.joined else set(self._seeds)
        for addr in self._leave_seeds:
            self._send(addr, Gossip(src=self.name, src_addr=self.addr, updates=(fact,)))
        self._probe = None
        self._note(f"event=leaving incarnation={me.incarnation} waiting={len(self._leave_waiting)}")
        return self._flush()

    def update_meta(self, meta: Meta, now: float) -> Outbox:
        """Publish new metadata under a fresh incarnation."""
        self._now = now
        me = self._record(self.name)
        me.meta = meta
        me.incarnation += 1
        self._queue.push(self.name, self._alive_fact())
        self._note(f"event=meta_updated incarnation={me.incarnation}")
        return self._flush()

    def step(self, msg: Any, now: float) -> Outbox:
        """Handle one received message (already decoded and validated)."""
        handler = self._HANDLERS.get(type(msg))
        if handler is None:
            self._counters["dropped"] += 1
            return self._flush()
        self._counters["messages_in"] += 1
        self._now = now
        sender = self._members.get(msg.src)
        self._reply_to, self._from_gone = msg.src_addr, not self._credible(msg.src)
        handler(self, msg)
        self._reply_to, self._from_gone = "", False
        if sender is not None and sender.state == State.DEAD and type(msg) in _CONTACT and not self.leaving:
            self._reconnect_with(msg.src)
        self._tell_suspect(msg.src, msg.src_addr)
        return self._flush()

    def tick(self, now: float) -> Outbox:
        """Run every timer that is due at ``now``.

        A tick that runs more than a probe timeout after :meth:`next_deadline` means this
        host's own loop was starved (CPU, a stop): Lifeguard's local-health evidence, so the
        awareness score rises and this host's timeouts lengthen.
        """
        self._now = now
        if now - self.next_deadline() > self.config.probe_timeout_s:
            self._counters["late_ticks"] += 1
            self._awareness.apply_delta(1)
        self._tick_probe(now)
        for seq in [s for s, r in self._relays.items() if r.deadline <= now]:
            relay = self._relays.pop(seq)
            self._send(relay.requester_addr, Nack(seq=relay.seq, src=self.name,
                                                  src_addr=self.addr, updates=self._piggyback()))
        for name in [n for n, s in self._suspicions.items() if s.deadline <= now]:
            rec = self._members[name]
            assert isinstance(rec, Record)  # a suspected member's record is ours
            self._note(f"event=suspicion_expired member={name} "
                       f"confirmations={self._suspicions[name].confirmations}")
            self._apply_gone(Update(name=name, state=State.DEAD, incarnation=rec.incarnation,
                                    by=self.name), rec)
        if now >= self._next_gossip:
            self._next_gossip = now + self.config.gossip_interval_s
            self._gossip_round()
        if now >= self._next_push_pull and not self.leaving:
            self._next_push_pull = now + self._push_pull_interval()
            self._push_pull_with(self._peers.sample(self._rng, 1))
        if now >= self._next_reconnect and not self.leaving:
            self._next_reconnect = now + self.config.reconnect_interval_s
            self._ping_a_dead_member()
        if now >= self._next_reap:
            self._next_reap = now + self.config.probe_interval_s
            self._reap(now)
        return self._flush()

    # --- probing -----------------------------------------------------------

    def _tick_probe(self, now: float) -> None:
        p = self._probe
        if p is not None and not p.indirect_sent and now >= p.timeout_at:
            # the helpers get their whole window from now, even when this tick ran late
            # (a starved prober must not send indirect pings and blame the target at once)
            p.end_at = max(p.end_at, now + (p.end_at - p.timeout_at))
            self._send_indirect(p)
        elif p is not None and now >= p.end_at:
            self._probe_failed(p)
        if not self.leaving and now >= self._next_probe and self._probe is None:  # one probe at a time
            self._next_probe = now + self._awareness.scale(self.config.probe_interval_s)
            self._start_probe(now)

    def _next_target(self) -> str | None:
        for _ in range(2):
            while self._order_pos < len(self._order):
                name = self._order[self._order_pos]
                self._order_pos += 1
                rec = self._members.get(name)
                if rec is not None and rec.state in LIVE:
                    return name
            self._order = list(self._peers.items)
            self._rng.shuffle(self._order)
            self._order_pos = 0
        return None

    def _start_probe(self, now: float) -> None:
        target = self._next_target()
        if target is None:
            return
        self._seq += 1
        c, aw = self.config, self._awareness
        self._probe = _Probe(self._seq, target, timeout_at=now + aw.scale(c.probe_timeout_s),
                             end_at=now + aw.scale(c.probe_interval_s))
        self._counters["probes"] += 1
        rec = self._members[target]
        first = None
        if rec.state == State.SUSPECT:  # Lifeguard: let the suspect hear it and refute
            first = Update(name=target, state=State.SUSPECT, incarnation=rec.incarnation,
                           by=self.name)
        self._send(rec.addr, Ping(seq=self._seq, target=target, src=self.name,
                                  src_addr=self.addr, updates=self._piggyback(first)))

    def _send_indirect(self, p: _Probe) -> None:
        p.indirect_sent = True
        rec = self._members.get(p.target)
        if rec is None or rec.state not in LIVE:
            return
        helpers = self._peers.sample(self._rng, self.config.indirect_checks, exclude=p.target)
        p.expected_nacks = len(helpers)
        for name in helpers:
            self._counters["indirect_probes"] += 1
            self._send(self._members[name].addr, IndirectPing(
                seq=p.seq, target=p.target, target_addr=rec.addr, src=self.name,
                src_addr=self.addr, updates=self._piggyback()))

    def _probe_failed(self, p: _Probe) -> None:
        self._probe = None
        self._counters["probe_failures"] += 1
        missing = p.expected_nacks - p.nacks if p.expected_nacks else 1
        self._awareness.apply_delta(missing)
        rec = self._members.get(p.target)
        if rec is None or rec.state not in LIVE:
            return
        self._note(f"event=probe_failed member={p.target} nacks={p.nacks}/{p.expected_nacks} "
                   f"health={self._awareness.score}")
        self._apply(Update(name=p.target, state=State.SUSPECT, incarnation=rec.incarnation,
                           by=self.name))

    # --- message handlers --------------------------------------------------

    def _on_ping(self, msg: Ping) -> None:
        self._merge(msg.updates)
        if msg.target != self.name:
            self._counters["dropped"] += 1  # meant for a previous owner of this address
            return
        self._send(msg.src_addr, Ack(seq=msg.seq, src=self.name, src_addr=self.addr,
                                     updates=self._piggyback()))

    def _on_ack(self, msg: Ack) -> None:
        self._merge(msg.updates)
        p = self._probe
        if p is not None and p.seq == msg.seq:
            self._probe = None
            self._awareness.apply_delta(-1)
            return
        relay = self._relays.pop(msg.seq, None)
        if relay is not None:
            self._send(relay.requester_addr, Ack(seq=relay.seq, src=msg.src, src_addr=msg.src_addr,
                                                 updates=self._piggyback()))

    def _on_indirect_ping(self, msg: IndirectPing) -> None:
        self._merge(msg.updates)
        self._seq += 1
        # Nack within 80 % of the base probe timeout: the requester gives its
        # helpers (probe_interval - probe_timeout) >= that, so a helper's nack
        # lands before the probe ends and the requester does not blame itself.
        timeout = 0.8 * self.config.probe_timeout_s
        self._relays[self._seq] = _Relay(msg.seq, msg.src_addr, self._now + timeout)
        self._send(msg.target_addr, Ping(seq=self._seq, target=msg.target, src=self.name,
                                         src_addr=self.addr, updates=self._piggyback()))

    def _on_nack(self, msg: Nack) -> None:
        self._merge(msg.updates)
        if self._probe is not None and self._probe.seq == msg.seq:
            self._probe.nacks += 1

    def _on_gossip(self, msg: Gossip) -> None:
        self._merge(msg.updates)
        for u in msg.updates:
            if u.state == State.LEFT and u.name == msg.src:
                self._send(msg.src_addr, LeaveAck(src=self.name, src_addr=self.addr,
                                                  incarnation=u.incarnation))

    def _on_push_pull_req(self, msg: PushPullReq) -> None:
        self._merge(msg.members, push_pull=True)
        self._send(msg.src_addr, PushPullResp(src=self.name, src_addr=self.addr,
                                              members=self._full_state()))

    def _on_push_pull_resp(self, msg: PushPullResp) -> None:
        self._merge(msg.members, push_pull=True)
        if not self.joined:
            self.joined = True
            self._note(f"event=joined via={msg.src} members={len(self._peers) + 1}")

    def _on_leave_ack(self, msg: LeaveAck) -> None:
        if self.leaving and msg.incarnation == self.incarnation:
            self._leave_waiting.discard(msg.src)
            self._leave_seeds.clear()  # a member took the leave: it gossips it to everyone

    # each handler takes the message type of its key (hence Any)
    _HANDLERS: ClassVar[dict[type, Callable[[GossipCore, Any], None]]] = {
        Ping: _on_ping, Ack: _on_ack, IndirectPing: _on_indirect_ping, Nack: _on_nack,
        Gossip: _on_gossip, PushPullReq: _on_push_pull_req, PushPullResp: _on_push_pull_resp,
        LeaveAck: _on_leave_ack,
    }

    # --- helpers -------------------------------------------------------------

    def _full_state(self) -> tuple[Update, ...]:
        return tuple(
            Update(name=r.name, state=r.state, incarnation=r.incarnation,
                   by=r.name if r.state in (State.ALIVE, State.LEFT) else self.name,
                   addr=r.addr, meta=r.meta)
            for r in self._members.values()
        )

    def _piggyback(self, first: Update | None = None) -> tuple[Update, ...]:
        n = len(self._peers) + 1
        taken = self._queue.take(self.config.piggyback_max, n) if len(self._queue) else []
        if first is not None and first not in taken:
            taken = [first, *taken[: self.config.piggyback_max - 1]]
        return tuple(taken)

    def _gossip_round(self) -> None:
        if not len(self._queue):
            return
        for name in self._peers.sample(self._rng, self.config.gossip_nodes):
            updates = self._piggyback()
            if not updates:
                break
            self._send(self._members[name].addr,
                       Gossip(src=self.name, src_addr=self.addr, updates=updates))

    def _push_pull_interval(self) -> float:
        n = len(self._peers) + 1
        scale = 1 if n <= 32 else math.ceil(math.log2(n) - math.log2(32)) + 1
        return self.config.push_pull_interval_s * scale

    def _push_pull_with(self, names: list[str]) -> None:
        for name in names:
            self._send(self._members[name].addr, PushPullReq(
                src=self.name, src_addr=self.addr, join=False, members=self._full_state()))

    def _ping_a_dead_member(self) -> None:
        """Partition heal, part 1: ping one random DEAD member (cheap; over TCP
        it is not even sent while the member is unreachable)."""
        dead = [n for n in self._gone if self._members[n].state == State.DEAD]
        for name in self._rng.sample(dead, min(1, len(dead))):
            self._seq += 1
            self._send(self._members[name].addr, Ping(seq=self._seq, target=name, src=self.name,
                                                      src_addr=self.addr))

    def _reconnect_with(self, name: str) -> None:
        """Partition heal, part 2: a member we hold DEAD reached us (its ping, its
        ack to ours, its gossip): exchange full state with it, at most once per
        reconnect interval, so each side hears what the other holds against it
        and refutes."""
        if self._now - self._reconnected_at.get(name, -math.inf) < self.config.reconnect_interval_s:
            return
        self._reconnected_at[name] = self._now
        self._note(f"event=reconnect member={name}")
        self._push_pull_with([name])

    def _reap(self, now: float) -> None:
        c = self.config
        for name in list(self._gone):
            rec = self._record(name)
            keep = c.dead_reap_s if rec.state == State.LEFT else c.reconnect_timeout_s
            if now - rec.since >= keep:
                del self._members[name], self._gone[name]
                self._reconnected_at.pop(name, None)
                if all(m.addr != rec.addr for m in self._members.values()):
                    self._forgotten.append(rec.addr)
                self._note(f"event=reaped member={name} state={rec.state.name}")

    @staticmethod
    def _snap(rec: Record | Member) -> Member:
        return rec if type(rec) is Member else rec.snapshot()

    def _send(self, addr: str, msg: Any) -> None:
        self._counters["messages_out"] += 1
        self._msgs.append((addr, msg))

    def _reset_out(self) -> None:
        self._msgs: list[tuple[str, Any]] = []
        self._events: list[Event] = []
        self._notes: list[str] = []
        self._forgotten: list[str] = []

    def _flush(self) -> Outbox:
        out = Outbox(tuple(self._msgs), tuple(self._events), tuple(self._notes),
                     tuple(self._forgotten))
        self._reset_out()
        return out

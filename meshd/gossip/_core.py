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
(and with the seeds at join), so nothing one-shot is lost; a periodic
push-pull with one random *failed* member heals partitions.

Precedence (the transitions, all in :meth:`GossipCore._apply`): for a member
at incarnation ``i``, ALIVE(j) wins if ``j > i``; SUSPECT(j) wins over ALIVE
if ``j >= i``; DEAD/LEFT(j) win over ALIVE and SUSPECT if ``j >= i``; LEFT
also upgrades DEAD.  DEAD and LEFT are never un-done except by a higher ALIVE.
Facts about unknown members are ignored unless they are ALIVE.  Facts about
this node that contradict it (SUSPECT, DEAD, or a higher ALIVE) are refuted.

Leave.  :meth:`leave` raises the incarnation, marks this node LEFT, queues
the fact and sends it to every live member directly; each replies LeaveAck.
:attr:`leave_confirmed` tells the driver when it may stop.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, Iterable

from ._awareness import Awareness
from ._broadcast import BroadcastQueue
from ._config import GossipConfig
from ._messages import (
    Ack, Gossip, IndirectPing, LeaveAck, Meta, Nack, Ping, PushPullReq, PushPullResp,
    State, Update,
)
from ._suspicion import Suspicion
from ._table import Peers, Record
from ._types import Event, EventKind, GossipStatus, Member, Outbox

_LIVE = (State.ALIVE, State.SUSPECT)


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


class GossipCore:
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
        self._members: dict[str, Record] = {name: Record(name, addr, incarnation, meta, now)}
        self._peers = Peers()  # live (ALIVE or SUSPECT) members other than us
        self._gone: dict[str, None] = {}  # DEAD and LEFT members, until reaped
        self._order: list[str] = []
        self._order_pos = 0
        self._probe: _Probe | None = None
        self._relays: dict[int, _Relay] = {}
        self._suspicions: dict[str, Suspicion] = {}
        self._queue: BroadcastQueue[Update] = BroadcastQueue(config.retransmit_mult)
        self._awareness = Awareness(config.awareness_max_multiplier)
        self._seq = 0
        self.joined = False
        self.leaving = False
        self._leave_waiting: set[str] = set()
        self._counters = dict.fromkeys(
            ("probes", "indirect_probes", "probe_failures", "refutations",
             "messages_in", "messages_out", "dropped"), 0)
        c = config
        self._next_probe = now + rng.uniform(0, c.probe_interval_s)
        self._next_gossip = now + c.gossip_interval_s
        self._next_push_pull = now + rng.uniform(0.5, 1.0) * c.push_pull_interval_s
        self._next_reconnect = now + rng.uniform(0.5, 1.0) * c.reconnect_interval_s
        self._next_reap = now + c.probe_interval_s
        self._now = now
        self._reply_to = ""
        self._reset_out()

    # --- public API ------------------------------------------------------

    @property
    def incarnation(self) -> int:
        return self._members[self.name].incarnation

    @property
    def leave_confirmed(self) -> bool:
        """After :meth:`leave`: every member that was live has acknowledged it."""
        return self.leaving and not self._leave_waiting

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
        if not self.leaving:
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
        me = self._members[self.name]
        me.incarnation += 1
        me.state, me.since, self.leaving = State.LEFT, now, True
        fact = Update(name=self.name, state=State.LEFT, incarnation=me.incarnation, by=self.name)
        self._queue.push(self.name, fact)
        self._leave_waiting = set(self._peers.items)
        for name in self._leave_waiting:
            self._send(self._members[name].addr,
                       Gossip(src=self.name, src_addr=self.addr, updates=(fact,)))
        self._probe = None
        self._note(f"event=leaving incarnation={me.incarnation} waiting={len(self._leave_waiting)}")
        return self._flush()

    def update_meta(self, meta: Meta, now: float) -> Outbox:
        """Publish new metadata under a fresh incarnation."""
        self._now = now
        me = self._members[self.name]
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
        self._reply_to = msg.src_addr
        handler(self, msg)
        self._reply_to = ""
        self._tell_suspect(msg.src, msg.src_addr)
        return self._flush()

    def tick(self, now: float) -> Outbox:
        """Run every timer that is due at ``now``."""
        self._now = now
        self._tick_probe(now)
        for seq in [s for s, r in self._relays.items() if r.deadline <= now]:
            relay = self._relays.pop(seq)
            self._send(relay.requester_addr, Nack(seq=relay.seq, src=self.name,
                                                  src_addr=self.addr, updates=self._piggyback()))
        for name in [n for n, s in self._suspicions.items() if s.deadline <= now]:
            rec = self._members[name]
            self._note(f"event=suspicion_expired member={name} "
                       f"confirmations={self._suspicions[name].confirmations}")
            self._apply(Update(name=name, state=State.DEAD, incarnation=rec.incarnation, by=self.name))
        if now >= self._next_gossip:
            self._next_gossip = now + self.config.gossip_interval_s
            self._gossip_round()
        if now >= self._next_push_pull and not self.leaving:
            self._next_push_pull = now + self._push_pull_interval()
            self._push_pull_with(self._peers.sample(self._rng, 1))
        if now >= self._next_reconnect and not self.leaving:
            self._next_reconnect = now + self.config.reconnect_interval_s
            dead = [n for n in self._gone if self._members[n].state == State.DEAD]
            self._push_pull_with(self._rng.sample(dead, min(1, len(dead))))
        if now >= self._next_reap:
            self._next_reap = now + self.config.probe_interval_s
            self._reap(now)
        return self._flush()

    # --- probing -----------------------------------------------------------

    def _tick_probe(self, now: float) -> None:
        p = self._probe
        if p is not None and not p.indirect_sent and now >= p.timeout_at:
            self._send_indirect(p)
        if p is not None and now >= p.end_at:
            self._probe_failed(p)
        if not self.leaving and now >= self._next_probe:
            self._next_probe = now + self._awareness.scale(self.config.probe_interval_s)
            self._start_probe(now)

    def _next_target(self) -> str | None:
        for _ in range(2):
            while self._order_pos < len(self._order):
                name = self._order[self._order_pos]
                self._order_pos += 1
                rec = self._members.get(name)
                if rec is not None and rec.state in _LIVE:
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
        if rec is None or rec.state not in _LIVE:
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
        if rec is None or rec.state not in _LIVE:
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

    _HANDLERS = {
        Ping: _on_ping, Ack: _on_ack, IndirectPing: _on_indirect_ping, Nack: _on_nack,
        Gossip: _on_gossip, PushPullReq: _on_push_pull_req, PushPullResp: _on_push_pull_resp,
        LeaveAck: _on_leave_ack,
    }

    # --- state transitions ---------------------------------------------------

    def _merge(self, updates: Iterable[Update], *, push_pull: bool = False) -> None:
        members = self._members
        for u in updates:
            if push_pull:
                rec = members.get(u.name)
                if rec is not None and rec.incarnation == u.incarnation and rec.state == u.state:
                    continue  # nothing new (most of a full table, most of the time)
                if u.state in (State.SUSPECT, State.DEAD):
                    # memberlist's mergeState: a remote DEAD is only a suspicion
                    # here, so a member healed from a partition can refute it.
                    if u.name not in self._members and u.state == State.SUSPECT:
                        self._apply(Update(name=u.name, state=State.ALIVE, incarnation=u.incarnation,
                                           by=u.name, addr=u.addr, meta=u.meta))
                    u = Update(name=u.name, state=State.SUSPECT, incarnation=u.incarnation, by=u.by)
            self._apply(u)

    def _apply(self, u: Update) -> None:
        """The only place member state changes (the precedence rules above)."""
        if u.name == self.name:
            self._about_me(u)
            return
        rec = self._members.get(u.name)
        if type(rec) is Member:
            if rec.incarnation > u.incarnation or (
                    rec.incarnation == u.incarnation and u.state == State.ALIVE):
                return  # old news about an untouched preloaded member
            rec = self._members[u.name] = Record.of(rec, self._now)
        if u.state == State.ALIVE:
            self._apply_alive(u, rec)
        elif rec is None or u.incarnation < rec.incarnation:
            return  # unknown members are only learnt from ALIVE; stale facts are old news
        elif u.state == State.SUSPECT:
            self._apply_suspect(u, rec)
        else:
            self._apply_gone(u, rec)

    def _about_me(self, u: Update) -> None:
        me = self._members[self.name]
        if self.leaving:
            return
        contradicts = (u.state == State.ALIVE and u.incarnation > me.incarnation) or (
            u.state != State.ALIVE and u.incarnation >= me.incarnation)
        if not contradicts:
            if u.state != State.ALIVE and self._reply_to:
                # An accusation I already refuted: its messenger missed my
                # refutation, so hand it over directly.
                self._send(self._reply_to, Gossip(src=self.name, src_addr=self.addr,
                                                  updates=(self._alive_fact(),)))
            return
        me.incarnation = u.incarnation + 1
        self._counters["refutations"] += 1
        self._awareness.apply_delta(1)
        self._queue.push(self.name, self._alive_fact())
        if self._reply_to:  # the accusation's messenger hears the answer first-hand
            self._send(self._reply_to, Gossip(src=self.name, src_addr=self.addr,
                                              updates=(self._alive_fact(),)))
        self._note(f"event=refute claim={u.state.name} by={u.by} incarnation={me.incarnation}")

    def _apply_alive(self, u: Update, rec: Record | None) -> None:
        meta = u.meta if u.meta is not None else Meta()
        if rec is None:
            rec = self._members[u.name] = Record(u.name, u.addr, u.incarnation, meta, self._now)
            self._peers.add(u.name)
            self._insert_in_order(u.name)
            self._queue.push(u.name, u)
            self.joined = True
            self._event(EventKind.JOIN, rec)
            return
        if u.incarnation <= rec.incarnation:
            return
        old_state, changed = rec.state, (rec.addr, rec.meta) != (u.addr, meta)
        rec.incarnation, rec.addr, rec.meta, rec.state = u.incarnation, u.addr, meta, State.ALIVE
        self._suspicions.pop(u.name, None)
        self._queue.push(u.name, u)
        if old_state in _LIVE:
            if old_state == State.SUSPECT:
                self._event(EventKind.ALIVE, rec)
            if changed:
                self._event(EventKind.UPDATE, rec)
            return
        rec.since = self._now
        self._gone.pop(u.name, None)
        self._peers.add(u.name)
        self._insert_in_order(u.name)
        self._event(EventKind.JOIN, rec)

    def _apply_suspect(self, u: Update, rec: Record) -> None:
        if rec.state == State.SUSPECT:
            sus = self._suspicions.get(u.name)
            if sus is not None and sus.confirm(u.by):
                self._queue.push(u.name, u)
            return
        if rec.state != State.ALIVE:
            return
        rec.state, rec.incarnation, rec.since = State.SUSPECT, u.incarnation, self._now
        self._suspicions[u.name] = self._new_suspicion(u.by)
        self._queue.push(u.name, u)
        self._event(EventKind.SUSPECT, rec)

    def _apply_gone(self, u: Update, rec: Record) -> None:
        left = u.state == State.LEFT
        if rec.state == State.LEFT or (rec.state == State.DEAD and not left):
            return
        rec.state = State.LEFT if left else State.DEAD
        rec.incarnation, rec.since = u.incarnation, self._now
        self._suspicions.pop(u.name, None)
        self._peers.discard(u.name)
        self._gone[u.name] = None
        self._queue.push(u.name, u)
        self._event(EventKind.LEAVE if left else EventKind.FAIL, rec)

    def _tell_suspect(self, name: str, addr: str) -> None:
        """A member we suspect just spoke to us: tell it (at most once per
        probe interval) so it refutes now.

        Lifeguard carries suspicions to the suspect on probes; this also does
        it when the suspect is the one talking, so a refutation lost on the
        way is asked for again before the suspicion can expire.
        """
        sus = self._suspicions.get(name)
        if sus is None or self._now - sus.told_at < self.config.probe_interval_s:
            return
        sus.told_at = self._now
        rec = self._members[name]
        fact = Update(name=name, state=State.SUSPECT, incarnation=rec.incarnation, by=self.name)
        self._send(addr, Gossip(src=self.name, src_addr=self.addr, updates=(fact,)))

    def _new_suspicion(self, by: str) -> Suspicion:
        c, n = self.config, len(self._peers) + 1
        k = c.suspicion_mult - 2
        if n - 2 < k:
            k = 0
        min_s = c.suspicion_mult * max(1.0, math.log10(max(1, n))) * c.probe_interval_s
        return Suspicion(by=by, k=k, min_s=min_s, max_s=c.suspicion_max_timeout_mult * min_s,
                         start=self._now)

    # --- helpers -------------------------------------------------------------

    def _insert_in_order(self, name: str) -> None:
        """New members go to a random place in the probe round (as memberlist does)."""
        lo = self._order_pos
        self._order.insert(self._rng.randint(lo, len(self._order)), name)

    def _alive_fact(self) -> Update:
        me = self._members[self.name]
        return Update(name=self.name, state=State.ALIVE, incarnation=me.incarnation,
                      by=self.name, addr=me.addr, meta=me.meta)

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

    def _reap(self, now: float) -> None:
        c = self.config
        for name in list(self._gone):
            rec = self._members[name]
            keep = c.dead_reap_s if rec.state == State.LEFT else c.reconnect_timeout_s
            if now - rec.since >= keep:
                del self._members[name], self._gone[name]
                self._note(f"event=reaped member={name} state={rec.state.name}")

    @staticmethod
    def _snap(rec: Record | Member) -> Member:
        return rec if type(rec) is Member else rec.snapshot()

    def _event(self, kind: EventKind, rec: Record) -> None:
        self._events.append(Event(kind, rec.snapshot(), self._now))
        self._note(f"event={kind.value} member={rec.name} incarnation={rec.incarnation}")

    def _note(self, text: str) -> None:
        self._notes.append(f"node={self.name} {text}")

    def _send(self, addr: str, msg: Any) -> None:
        self._counters["messages_out"] += 1
        self._msgs.append((addr, msg))

    def _reset_out(self) -> None:
        self._msgs: list[tuple[str, Any]] = []
        self._events: list[Event] = []
        self._notes: list[str] = []

    def _flush(self) -> Outbox:
        out = Outbox(tuple(self._msgs), tuple(self._events), tuple(self._notes))
        self._reset_out()
        return out

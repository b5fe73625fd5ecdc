"""Every change of a member's state, in one place: the rules of GossipCore.

:class:`Transitions` is the half of :class:`~meshd.gossip.GossipCore` that
turns membership facts (:class:`Update`) into state, events and refutations;
the core (``_core.py``) decides when to probe, what to send and when timers
fire, and feeds every fact it receives or concludes through here.

Precedence, for a member at incarnation ``i``: ALIVE(j) wins if ``j > i``;
SUSPECT(j) wins over ALIVE if ``j >= i``; DEAD/LEFT(j) win over ALIVE and
SUSPECT if ``j >= i``; LEFT also upgrades DEAD.  DEAD and LEFT are never
undone except by a higher ALIVE.  Facts about unknown members are ignored
unless they are ALIVE.  Facts about this node that contradict it (SUSPECT,
DEAD, or a higher ALIVE) are refuted: incarnation + 1, ALIVE queued and sent
straight back to the messenger.

Partition heal.  A partition makes both sides declare each other DEAD, and
the side that could reach nobody declares everyone DEAD.  Its claims must not
act when the partition heals, however they arrive (its push-pull, its queued
gossip, a late TCP backlog), while a real failure still spreads at once:

1. A DEAD that another member concluded is checked here first
   (:meth:`Transitions._apply_remote_dead`): the accused is told directly and
   has one probe interval, counted from when this node began to doubt it, to
   refute.  A member already suspected here that long fails at once (a real
   failure is suspected everywhere from its first failed probe on); one held
   ALIVE is doubted quietly (no event, nothing gossiped).
2. What a member held DEAD or LEFT says about others (SUSPECT, DEAD), or what
   anyone relays that such a member declared, is not taken: it could not
   reach us, so what it saw was not seen from here.  Its ALIVE facts are
   taken, and a claim about this node is refuted all the same (without
   raising the Lifeguard health score: an isolated accuser is no evidence
   that we are slow).
3. A member that must refute a DEAD about itself knows it was cut off (or
   stalled): it abandons its probe in flight, ends the suspicions it started
   and drops its queued accusations (:meth:`Transitions._withdraw_own_accusations`).

The core adds the reconnect half: dead members are pinged every
``reconnect_interval_s``, and one that answers or speaks first gets a
full-state push-pull, so each side learns what the other holds against it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable
from typing import Any

from ._awareness import Awareness
from ._broadcast import BroadcastQueue
from ._config import GossipConfig
from ._messages import Gossip, Meta, State, Update
from ._suspicion import Suspicion
from ._table import Peers, Record
from ._types import Event, EventKind, Member

LIVE = (State.ALIVE, State.SUSPECT)
ACCUSATIONS = (State.SUSPECT, State.DEAD)


class Transitions:
    """The state-changing half of GossipCore (see the module docstring).

    The attributes below are the core's state, set up by ``GossipCore.__init__``.
    """

    name: str
    addr: str
    config: GossipConfig
    joined: bool
    leaving: bool
    _rng: random.Random
    _now: float
    _members: dict[str, Record | Member]
    _peers: Peers
    _gone: dict[str, None]  # DEAD and LEFT members, until reaped
    _order: list[str]
    _order_pos: int
    _suspicions: dict[str, Suspicion]  # also the quiet doubts of members held ALIVE
    _queue: BroadcastQueue[Update]
    _awareness: Awareness
    _counters: dict[str, int]
    _reply_to: str  # the messenger's address while a message is stepped
    _from_gone: bool  # the messenger is held DEAD or LEFT
    _reconnected_at: dict[str, float]
    _probe: Any
    _events: list[Event]
    _notes: list[str]
    _send: Callable[[str, Any], None]

    def _merge(self, updates: Iterable[Update], *, push_pull: bool = False) -> None:
        members = self._members
        for u in updates:
            if push_pull:
                rec = members.get(u.name)
                if rec is not None and rec.incarnation == u.incarnation and rec.state == u.state:
                    continue  # nothing new (most of a full table, most of the time)
            if u.state in ACCUSATIONS and u.name != self.name and (
                    self._from_gone or not self._credible(u.by)):
                continue  # said by (or through) a member cut off from us: not seen from here
            if push_pull and u.state == State.SUSPECT and u.name not in members:
                self._apply(Update(name=u.name, state=State.ALIVE, incarnation=u.incarnation,
                                   by=u.name, addr=u.addr, meta=u.meta))
            self._apply(u)

    def _record(self, name: str) -> Record:
        """The table's entry of a member that changed since it was preloaded (this node, a
        suspect, a gone member): a Record, since only untouched ALIVE members are shared Members."""
        rec = self._members[name]
        assert type(rec) is Record
        return rec

    def _credible(self, name: str) -> bool:
        """False for a member we hold DEAD or LEFT: what it says about others was
        not seen from where we stand (it could not reach us, so maybe nobody)."""
        rec = self._members.get(name)
        return rec is None or rec.state in LIVE

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
        elif u.state == State.DEAD:
            self._apply_remote_dead(u, rec)
        else:
            self._apply_gone(u, rec)

    def _about_me(self, u: Update) -> None:
        me = self._record(self.name)
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
        if not self._from_gone:  # Lifeguard: others doubt us, maybe we are the slow one
            self._awareness.apply_delta(1)
        self._queue.push(self.name, self._alive_fact())
        if self._reply_to:  # the accusation's messenger hears the answer first-hand
            self._send(self._reply_to, Gossip(src=self.name, src_addr=self.addr,
                                              updates=(self._alive_fact(),)))
        self._note(f"event=refute claim={u.state.name} by={u.by} incarnation={me.incarnation}")
        if u.state == State.DEAD:
            self._withdraw_own_accusations()

    def _withdraw_own_accusations(self) -> None:
        """Declared dead, this node was cut off (or stalled): what it suspected
        meanwhile was most likely its own isolation.  The probe in flight is
        abandoned, the suspicions it started end (an ALIVE event here, nothing
        sent) and its queued accusations are not spread; members it declared
        dead come back by refuting (reconnect)."""
        self._probe = None
        mine = [n for n, sus in self._suspicions.items() if sus.by == self.name]
        for name in mine:
            del self._suspicions[name]
            rec = self._record(name)
            if rec.state == State.SUSPECT:
                rec.state, rec.since = State.ALIVE, self._now
                self._event(EventKind.ALIVE, rec)
        dropped = self._queue.drop(lambda f: f.by == self.name and f.state in ACCUSATIONS)
        self._note(f"event=withdrawn suspicions={len(mine)} queued_accusations={dropped}")

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
        if old_state in LIVE:
            if old_state == State.SUSPECT:
                self._event(EventKind.ALIVE, rec)
            if changed:
                self._event(EventKind.UPDATE, rec)
            return
        rec.since = self._now
        self._gone.pop(u.name, None)
        self._reconnected_at.pop(u.name, None)
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
        doubt = self._suspicions.get(u.name)  # a quiet doubt keeps its deadline
        self._suspicions[u.name] = sus = self._new_suspicion(u.by)
        if doubt is not None:
            sus.expire_by(doubt.deadline)
        self._queue.push(u.name, u)
        self._event(EventKind.SUSPECT, rec)

    def _apply_remote_dead(self, u: Update, rec: Record) -> None:
        """A DEAD that another member concluded is checked here before it is applied.

        The accused is told at once and has one (health-scaled) probe interval
        to refute, counted from when this node began to doubt it.  A member
        this node already suspects (a real failure is suspected here from the
        first failed probe gossiped) fails as soon as that interval is over;
        one it holds ALIVE is doubted *quietly* — no event, nothing gossiped —
        so a declaration nobody here saw coming (made inside a partition,
        delivered late) costs a live member one direct message, not a failure.
        """
        if rec.state not in LIVE:
            return
        rec.incarnation = max(rec.incarnation, u.incarnation)
        sus = self._suspicions.get(u.name)
        if sus is None:
            sus = self._suspicions[u.name] = self._new_suspicion(u.by)
            sus.expire_by(self._now + self._grace_s())
            self._note(f"event=doubt member={u.name} declared_dead_by={u.by}")
        else:
            sus.confirm(u.by)
        if rec.state == State.SUSPECT:
            if self._now >= rec.since + self._grace_s():
                self._apply_gone(u, rec)
                return
            sus.expire_by(rec.since + self._grace_s())
        self._tell_suspect(u.name, rec.addr)

    def _grace_s(self) -> float:
        """How long a member accused by others has to refute before it fails here."""
        return self._awareness.scale(self.config.probe_interval_s)

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
        """Tell a member we suspect or doubt (at most once per probe interval)
        so it refutes now: when another member declared it dead, and when it
        speaks to us.

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

    # --- helpers of the transitions ----------------------------------------------

    def _insert_in_order(self, name: str) -> None:
        """New members go to a random place in the probe round (as memberlist does)."""
        lo = self._order_pos
        self._order.insert(self._rng.randint(lo, len(self._order)), name)

    def _alive_fact(self) -> Update:
        me = self._members[self.name]
        return Update(name=self.name, state=State.ALIVE, incarnation=me.incarnation,
                      by=self.name, addr=me.addr, meta=me.meta)

    def _event(self, kind: EventKind, rec: Record) -> None:
        self._events.append(Event(kind, rec.snapshot(), self._now))
        self._note(f"event={kind.value} member={rec.name} incarnation={rec.incarnation}")

    def _note(self, text: str) -> None:
        self._notes.append(f"node={self.name} {text}")


"""Deterministic SWIM simulator: many GossipCores in one process, virtual time.

A heap of timed events (message deliveries and core ticks) drives the cores
directly; nothing sleeps.  The network is seeded: per-message loss, a delay
drawn between ``delay_s``, partitions (``cut``/``heal``), members that freeze
for part of every period (like SIGSTOP/SIGCONT: input waits, timers fire
late), and crashes.  Every event each member reports is recorded with its
virtual time so a run can be measured in protocol periods.

Run ``python tests/sim/gossip/run_gossip_sim.py --help`` for the command line.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field
from typing import Any

from meshd.gossip import EventKind, GossipConfig, GossipCore, Member, Meta, State


@dataclass
class Freeze:
    """The member is stopped for ``stop_s`` at the start of every ``every_s``."""

    every_s: float
    stop_s: float
    offset_s: float = 0.0

    def wake_time(self, t: float) -> float:
        phase = (t - self.offset_s) % self.every_s
        return t if phase >= self.stop_s else t + (self.stop_s - phase)


@dataclass
class Sim:
    config: GossipConfig
    seed: int = 1
    loss: float = 0.0
    delay_s: tuple[float, float] = (0.001, 0.010)
    now: float = 0.0
    cores: dict[str, GossipCore] = field(default_factory=dict)
    crashed: set[str] = field(default_factory=set)
    frozen: dict[str, Freeze] = field(default_factory=dict)
    #: (time, observer, kind, member name, member incarnation)
    events: list[tuple[float, str, EventKind, str, int]] = field(default_factory=list)
    sent: dict[str, int] = field(default_factory=dict)
    delivered: int = 0

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._heap: list[tuple[float, int, str, str, Any]] = []
        self._seq = 0
        self._next_tick: dict[str, float] = {}
        self._side: dict[str, int] = {}
        self._blocked: set[tuple[str, str]] = set()  # directed (src, dst) pairs
        self._hold = False
        self._held: dict[tuple[str, str], list[Any]] = {}
        self._flush_at: dict[tuple[str, str], float] = {}  # link -> when its backlog lands

    # --- building ---------------------------------------------------------

    def add(self, name: str, *, preload: list[Member] | None = None) -> GossipCore:
        core = GossipCore(name=name, addr=name, config=self.config,
                          rng=random.Random(f"{self.seed}/{name}/{self.now}"), now=self.now,
                          meta=Meta(vtep=name))
        if preload:
            core.preload(preload, self.now)
        self.cores[name] = core
        self.crashed.discard(name)
        self.sent.setdefault(name, 0)
        self._schedule_tick(name)
        return core

    def converged(self, n: int) -> list[str]:
        """``n`` members that already know each other (a cluster in steady state)."""
        names = [f"n{i:05d}" for i in range(n)]
        everyone = [Member(nm, nm, State.ALIVE, 0, Meta(vtep=nm)) for nm in names]
        for nm in names:
            self.add(nm, preload=everyone)
        return names

    def join(self, name: str, seeds: list[str]) -> None:
        self._handle(name, self.cores[name].join(seeds, self.now))

    # --- faults -----------------------------------------------------------

    def crash(self, name: str) -> None:
        self.crashed.add(name)

    def cut(self, *groups: set[str], hold: bool = False) -> None:
        """Partition: members in different groups (those in none form one more
        group) cannot reach each other; ``hold`` queues instead of dropping."""
        self._side = {name: i for i, g in enumerate(groups) for name in g}
        self._hold = hold

    def block(self, a: str, b: str, *, oneway: bool = False, hold: bool = False) -> None:
        """Cut the link between ``a`` and ``b`` (only ``a`` -> ``b`` if ``oneway``)."""
        self._blocked |= {(a, b)} if oneway else {(a, b), (b, a)}
        self._hold = hold

    def heal(self, flush_within_s: float = 0.0) -> None:
        """Remove every cut; held backlogs land within ``flush_within_s``, each link in order."""
        self._side, self._blocked = {}, set()
        for link, msgs in self._held.items():
            t = self.now + self._rng.uniform(0.0, flush_within_s)
            for msg in msgs:
                t += 1e-6
                self._push(t, "msg", link[1], msg)
            self._flush_at[link] = t
        self._held = {}

    def _is_cut(self, src: str, dst: str) -> bool:
        if self._side and self._side.get(src, -1) != self._side.get(dst, -1):
            return True
        return (src, dst) in self._blocked

    def freeze(self, name: str, every_s: float, stop_s: float) -> None:
        self.frozen[name] = Freeze(every_s, stop_s, self._rng.uniform(0, every_s))

    # --- running ----------------------------------------------------------

    def run_until(self, t_end: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= t_end:
            t, _, kind, name, payload = heapq.heappop(heap)
            if name in self.crashed or name not in self.cores:
                continue
            if kind == "tick" and self._next_tick.get(name) != t:
                continue  # superseded by an earlier tick
            fr = self.frozen.get(name)
            if fr is not None and fr.wake_time(t) > t:
                self._push(fr.wake_time(t), kind, name, payload)
                if kind == "tick":
                    self._next_tick[name] = fr.wake_time(t)
                continue
            self.now = t
            core = self.cores[name]
            if kind == "tick":
                self._next_tick.pop(name, None)
                out = core.tick(t)
            else:
                self.delivered += 1
                out = core.step(payload, t)
            self._handle(name, out)
        self.now = t_end

    def _handle(self, src: str, out: Any) -> None:
        for dst, msg in out.messages:
            self.sent[src] += 1
            if self.loss and self._rng.random() < self.loss:
                continue
            if self._is_cut(src, dst):
                if self._hold:
                    self._held.setdefault((src, dst), []).append(msg)
                continue
            at = self.now + self._rng.uniform(*self.delay_s)
            flush = self._flush_at.get((src, dst))
            if flush is not None:  # behind the link's backlog, as on one TCP stream
                if flush <= self.now:
                    del self._flush_at[(src, dst)]
                else:
                    at = max(at, flush + 1e-6)
            self._push(at, "msg", dst, msg)
        for ev in out.events:
            self.events.append((self.now, src, ev.kind, ev.member.name, ev.member.incarnation))
        self._schedule_tick(src)

    def _schedule_tick(self, name: str) -> None:
        due = max(self.cores[name].next_deadline(), self.now + 1e-6)
        current = self._next_tick.get(name)
        if current is None or due < current:
            self._next_tick[name] = due
            self._push(due, "tick", name, None)

    def _push(self, t: float, kind: str, name: str, payload: Any) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, kind, name, payload))

    # --- measuring ----------------------------------------------------------

    def live(self) -> list[str]:
        return [n for n in self.cores if n not in self.crashed]

    def first(self, kind: EventKind, member: str, since: float = 0.0) -> dict[str, float]:
        """observer -> time it first reported ``kind`` about ``member`` (after ``since``)."""
        seen: dict[str, float] = {}
        for t, obs, k, m, _ in self.events:
            if k == kind and m == member and t >= since and obs not in seen:
                seen[obs] = t
        return seen

    def false_failures(self) -> list[tuple[float, str, str]]:
        """FAIL events about members that never crashed: (time, observer, member)."""
        return [(t, o, m) for t, o, k, m, _ in self.events
                if k == EventKind.FAIL and m not in self.crashed]

    def reports(self, kind: EventKind, *, among: set[str], since: float = 0.0) -> list[tuple[float, str, str]]:
        """``kind`` events one member of ``among`` reported about another: (time, observer, member)."""
        return [(t, o, m) for t, o, k, m, _ in self.events
                if k == kind and t >= since and o in among and m in among]

    def state_of(self, observer: str, member: str) -> State | None:
        m = self.cores[observer].member(member)
        return m.state if m else None

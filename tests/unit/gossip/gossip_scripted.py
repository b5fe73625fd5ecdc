"""A scripted in-memory network of GossipCores for unit tests.

Time moves in fixed steps; a message sent during one step is delivered at the
next unless a drop rule says otherwise.  Every event and note is recorded so
tests can assert on what each member reported.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from meshd.gossip import Event, EventKind, GossipConfig, GossipCore, Meta, Outbox

DropRule = Callable[[str, str, Any], bool]  # (src addr, dst addr, msg) -> drop?


@dataclass
class Net:
    config: GossipConfig = field(default_factory=GossipConfig.local)
    seed: int = 1
    step_s: float = 0.01
    now: float = 0.0
    cores: dict[str, GossipCore] = field(default_factory=dict)
    down: set[str] = field(default_factory=set)
    drops: list[DropRule] = field(default_factory=list)
    events: list[tuple[str, Event]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sent: list[tuple[str, str, Any]] = field(default_factory=list)
    _pending: list[tuple[str, str, Any]] = field(default_factory=list)

    def add(self, name: str, meta: Meta = Meta(), incarnation: int = 0) -> GossipCore:
        rng = random.Random(f"{self.seed}-{name}-{len(self.cores)}")
        core = GossipCore(name=name, addr=name, config=self.config, rng=rng, now=self.now,
                          meta=meta, incarnation=incarnation)
        self.cores[name] = core
        self.down.discard(name)
        return core

    def handle(self, src: str, out: Outbox) -> None:
        for dst, msg in out.messages:
            self._pending.append((src, dst, msg))
            self.sent.append((src, dst, msg))
        self.events.extend((src, e) for e in out.events)
        self.notes.extend(out.notes)

    def cluster(self, names: list[str]) -> None:
        """Start ``names``; all join through the first and the net settles."""
        for name in names:
            self.add(name)
        for name in names[1:]:
            self.handle(name, self.cores[name].join([names[0]], self.now))
        self.run(3.0)

    def run(self, seconds: float) -> None:
        end = self.now + seconds
        while self.now < end - 1e-9:
            self.now = round(self.now + self.step_s, 9)
            pending, self._pending = self._pending, []
            for src, dst, msg in pending:
                if dst in self.down or src in self.down or dst not in self.cores:
                    continue
                if any(rule(src, dst, msg) for rule in self.drops):
                    continue
                self.handle(dst, self.cores[dst].step(msg, self.now))
            for name, core in self.cores.items():
                if name not in self.down and core.next_deadline() <= self.now:
                    self.handle(name, core.tick(self.now))

    def seen(self, observer: str, kind: EventKind, member: str) -> list[Event]:
        return [e for o, e in self.events if o == observer and e.kind == kind
                and e.member.name == member]

    def kinds_about(self, member: str) -> set[EventKind]:
        return {e.kind for _, e in self.events if e.member.name == member}

    def live(self) -> list[str]:
        return [n for n in self.cores if n not in self.down]

"""Small containers of the gossip core: a member record and a sampleable name set."""

from __future__ import annotations

import random

from ._messages import Meta, State
from ._types import Member


class Record:
    """Mutable internal view of one member (snapshotted as :class:`Member`)."""

    __slots__ = ("name", "addr", "state", "incarnation", "meta", "since")

    def __init__(self, name: str, addr: str, incarnation: int, meta: Meta, since: float) -> None:
        self.name = name
        self.addr = addr
        self.state = State.ALIVE
        self.incarnation = incarnation
        self.meta = meta
        self.since = since

    def snapshot(self) -> Member:
        return Member(self.name, self.addr, self.state, self.incarnation, self.meta)


class IndexedSet:
    """Names with O(1) add, remove and uniform random sampling."""

    __slots__ = ("items", "_pos")

    def __init__(self) -> None:
        self.items: list[str] = []
        self._pos: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, name: object) -> bool:
        return name in self._pos

    def add(self, name: str) -> None:
        if name not in self._pos:
            self._pos[name] = len(self.items)
            self.items.append(name)

    def discard(self, name: str) -> None:
        i = self._pos.pop(name, None)
        if i is None:
            return
        last = self.items.pop()
        if last != name:
            self.items[i] = last
            self._pos[last] = i

    def sample(self, rng: random.Random, k: int, exclude: str = "") -> list[str]:
        pool = self.items
        picks = rng.sample(pool, min(k + 1, len(pool)))
        return [p for p in picks if p != exclude][:k]

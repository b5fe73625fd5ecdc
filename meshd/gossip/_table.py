"""Small containers of the gossip core: a member record and the live-peer list.

A member table entry is either a :class:`Record` (mutable, ours) or, after
``GossipCore.preload``, the caller's frozen :class:`Member` shared between
tables until the first change copies it into a Record (copy on write).  A
simulation of 10,000 members thus holds one Member per member, not 10**8.
"""

from __future__ import annotations

import random

from ._messages import Meta, State
from ._types import Member


class Record:
    """Mutable internal view of one member (snapshotted as :class:`Member`)."""

    __slots__ = ("name", "addr", "state", "incarnation", "meta", "since", "_snapshot")

    def __init__(self, name: str, addr: str, incarnation: int, meta: Meta, since: float) -> None:
        self.name = name
        self.addr = addr
        self.state = State.ALIVE
        self.incarnation = incarnation
        self.meta = meta
        self.since = since
        self._snapshot: Member | None = None

    def snapshot(self) -> Member:
        """The record as a frozen :class:`Member`; the last one is reused while nothing it shows
        changed (an agent snapshots every member on each membership burst: a frozen dataclass
        per member per burst was 9 % of a starved agent's CPU in a 200-agent join)."""
        m = self._snapshot
        if (m is None or m.state is not self.state or m.incarnation != self.incarnation
                or m.meta is not self.meta or m.addr != self.addr):
            m = self._snapshot = Member(self.name, self.addr, self.state, self.incarnation, self.meta)
        return m

    @classmethod
    def of(cls, m: Member, since: float) -> Record:
        rec = cls(m.name, m.addr, m.incarnation, m.meta, since)
        rec.state = m.state
        return rec


class Peers:
    """Live member names (not ours) with uniform random sampling.

    A plain list: adding is O(1); removal is O(n) but happens only when a
    member fails or leaves.  No per-name index, so a 10,000-member table costs
    one pointer per member here.
    """

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[str] = []

    def __len__(self) -> int:
        return len(self.items)

    def add(self, name: str) -> None:
        """Add ``name``; the caller knows it is not already live."""
        self.items.append(name)

    def discard(self, name: str) -> None:
        try:
            self.items.remove(name)
        except ValueError:
            pass  # not a live peer: nothing to remove

    def sample(self, rng: random.Random, k: int, exclude: str = "") -> list[str]:
        pool = self.items
        picks = rng.sample(pool, min(k + 1, len(pool)))
        return [p for p in picks if p != exclude][:k]

"""Transmit-limited broadcast queue (pure): what to piggyback next.

Each queued update is keyed by member name: a newer update about a member
replaces the older one, so stale facts are never re-sent.  ``take`` returns
the least-transmitted updates first (new rumours spread before old ones) and
drops each after ``retransmit_mult * ceil(log10(n + 1))`` transmissions,
memberlist's ``TransmitLimitedQueue`` rule.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


def retransmit_limit(mult: int, n: int) -> int:
    """How many times each update is sent in a cluster of ``n`` members."""
    return mult * max(1, math.ceil(math.log10(n + 1)))


class BroadcastQueue(Generic[T]):
    """Updates waiting to be piggybacked, bucketed by transmit count."""

    def __init__(self, retransmit_mult: int) -> None:
        self.retransmit_mult = retransmit_mult
        self._count: dict[str, int] = {}  # key -> transmits so far
        self._item: dict[str, T] = {}
        self._buckets: dict[int, dict[str, None]] = {}  # transmits -> ordered keys

    def __len__(self) -> int:
        return len(self._item)

    def push(self, key: str, item: T) -> None:
        """Queue ``item`` as the newest fact about ``key`` (replacing any older one)."""
        self._discard(key)
        self._item[key] = item
        self._count[key] = 0
        self._buckets.setdefault(0, {})[key] = None

    def take(self, limit: int, n: int) -> list[T]:
        """Up to ``limit`` items, least-sent first; each counts one transmission."""
        out: list[tuple[str, int]] = []
        for transmits in sorted(self._buckets):
            for key in self._buckets[transmits]:
                out.append((key, transmits))
                if len(out) >= limit:
                    break
            if len(out) >= limit:
                break
        cap = retransmit_limit(self.retransmit_mult, n)
        items = []
        for key, transmits in out:
            items.append(self._item[key])
            self._discard(key)
            if transmits + 1 < cap:
                self._item[key] = items[-1]
                self._count[key] = transmits + 1
                self._buckets.setdefault(transmits + 1, {})[key] = None
        return items

    def get(self, key: str) -> T | None:
        """The queued item about ``key``, if any."""
        return self._item.get(key)

    def drop(self, unwanted: Callable[[T], bool]) -> int:
        """Forget every queued item for which ``unwanted(item)`` is true; returns how many."""
        keys = [key for key, item in self._item.items() if unwanted(item)]
        for key in keys:
            self._discard(key)
        return len(keys)

    def _discard(self, key: str) -> None:
        transmits = self._count.pop(key, None)
        if transmits is None:
            return
        del self._item[key]
        bucket = self._buckets[transmits]
        del bucket[key]
        if not bucket:
            del self._buckets[transmits]

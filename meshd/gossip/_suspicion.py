"""Lifeguard's dynamic suspicion timeout (pure: no clock, the caller passes time).

A suspicion starts with the longest timeout, ``max_s``.  Each *independent*
confirmation (a suspect message about the same member from a member not seen
before) shrinks it on a log scale, reaching ``min_s`` once ``k`` confirmations
arrived::

    timeout(c) = max(min_s, max_s - (max_s - min_s) * log(c + 1) / log(k + 1))

A lone slow or partitioned suspecter therefore waits long enough for the
suspected member to hear the rumour and refute it, while a member that many
others cannot reach is declared dead quickly.  (Same rule as memberlist's
``remainingSuspicionTime``; here the deadline is just a number the core's
``tick`` compares with ``now``.)
"""

from __future__ import annotations

import math


def suspicion_timeout_s(confirmations: int, k: int, min_s: float, max_s: float) -> float:
    """The suspicion timeout after ``confirmations`` of the ``k`` expected ones."""
    if k <= 0 or max_s <= min_s:
        return min_s
    frac = math.log(confirmations + 1) / math.log(k + 1)
    return max(min_s, max_s - (max_s - min_s) * frac)


class Suspicion:
    """The suspicion of one member at one incarnation.

    Args:
      by: the member whose suspect message started it (not counted again).
      k: confirmations that bring the timeout down to ``min_s``.
      min_s, max_s: the timeout bounds, seconds.
      start: when the suspicion started (the caller's clock).
    """

    __slots__ = ("by", "k", "min_s", "max_s", "start", "told_at", "_seen", "_deadline", "_cap")

    def __init__(self, *, by: str, k: int, min_s: float, max_s: float, start: float) -> None:
        #: The member that started it (its probe failed, or it declared the member dead).
        self.by = by
        self.k = k
        self.min_s = min_s
        self.max_s = max_s
        self.start = start
        #: When the suspected member was last sent this suspicion directly.
        self.told_at = -math.inf
        self._seen = {by}
        self._deadline = start + suspicion_timeout_s(0, k, min_s, max_s)
        self._cap = math.inf  # expire_by(): another member already declared it dead

    @property
    def confirmations(self) -> int:
        return len(self._seen) - 1

    @property
    def deadline(self) -> float:
        """When the member is declared dead unless it refutes first."""
        return min(self._deadline, self._cap)

    def expire_by(self, at: float) -> None:
        """Expire no later than ``at`` (confirmations never push it back)."""
        self._cap = min(self._cap, at)

    def confirm(self, by: str) -> bool:
        """Count an independent confirmation; True if ``by`` was new (re-gossip it)."""
        if by in self._seen or self.confirmations >= self.k:
            return False
        self._seen.add(by)
        self._deadline = self.start + suspicion_timeout_s(
            self.confirmations, self.k, self.min_s, self.max_s
        )
        return True

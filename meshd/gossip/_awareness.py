"""Lifeguard local health awareness (pure).

A node that misses acks, hears no nacks from its indirect helpers, or has to
refute a suspicion of itself is probably the slow one.  Its *score* rises
(capped at ``max_multiplier - 1``) and every probe interval and timeout it uses
is multiplied by ``score + 1``, so a starved node stops accusing healthy
members.  Each successful probe lowers the score by one.
"""

from __future__ import annotations


class Awareness:
    """Health score of this node: 0 is healthy."""

    __slots__ = ("max_multiplier", "score")

    def __init__(self, max_multiplier: int) -> None:
        if max_multiplier < 1:
            raise ValueError(f"awareness max_multiplier ({max_multiplier}) must be at least 1")
        self.max_multiplier = max_multiplier
        self.score = 0

    def apply_delta(self, delta: int) -> None:
        """Raise (bad news) or lower (good news) the score, within bounds."""
        self.score = min(max(self.score + delta, 0), self.max_multiplier - 1)

    def scale(self, seconds: float) -> float:
        """``seconds`` stretched by the current score."""
        return seconds * (self.score + 1)

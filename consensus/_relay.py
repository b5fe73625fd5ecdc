"""The relay tree: which learner forwards the committed log to which (pure).

Theory of operation
-------------------
With ``RaftConfig.relay_fanout = k > 0`` the leader replicates directly to
every voter and to at most ``k`` learners, the *first tier*.  Every other
learner gets its log from a *relay*, its parent learner, in a k-ary tree laid
over the learners sorted by id: positions ``0 .. k-1`` are the first tier and
the learner at position ``i >= k`` hangs under position ``(i - k) // k``.
Every node computes the same tree from the membership in its own log
(:func:`relay_tree` is a pure function of the learner set), so no message
announces it; with at most ``k`` learners every learner is first tier and
nothing changes.  ``k = 0`` turns relaying off (the leader sends to everyone).

A relay forwards only entries up to its commit index, i.e. committed
entries, with the leader's term and id (``RelayAppend``, ``RelayHeartbeat``,
``RelaySnapshot``), through the same Progress tracking, log-matching check,
backtracking and snapshot transfer as the leader's own replication.  So a
relayed learner only ever holds a prefix of the committed log, and
membership changes, restarts or two nodes disagreeing about the tree can
delay it but never give it a wrong entry.  Learners never vote, so elections
are untouched.  Relayed learners report their commit index to the leader
(``MatchReport``) every ``relay_report_ticks``, which is what the leader's
``status()`` shows for them (state ``"relayed"``).

A relay that stops answering must not stall its subtree until the autopilot
removes it.  The leader watches every relay at its cadence (a first-tier
relay answers the leader's learner heartbeats, a deeper one sends its
``MatchReport``); when one has been silent for longer than twice its
cadence, the leader *adopts* its children: it replicates to them itself,
as to the first tier, until the relay answers again.  An adopted child
still relays to its own children, so the subtree below keeps its shape.
Every relay gets that grace again after an election and after each
membership change (the tree may have moved).  An adopted child can hear
the same entries from the leader and from a relay that was only slow: both
are the committed log, and the log-matching check makes the second copy a
no-op.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True, slots=True)
class RelayTree:
    """A learner tree of fan-out ``fanout`` over ``order`` (the learners, sorted)."""

    order: tuple[str, ...]
    fanout: int
    position: dict[str, int]

    @property
    def first_tier(self) -> tuple[str, ...]:
        """The learners the leader replicates to itself."""
        return self.order if self.fanout == 0 else self.order[: self.fanout]

    def parent(self, learner: str) -> str | None:
        """The learner that relays to ``learner``; None when the leader does (or it is no learner)."""
        i = self.position.get(learner)
        if i is None or self.fanout == 0 or i < self.fanout:
            return None
        return self.order[(i - self.fanout) // self.fanout]

    def children(self, learner: str) -> tuple[str, ...]:
        """The learners ``learner`` relays to (empty for a non-learner or a leaf)."""
        i = self.position.get(learner)
        if i is None or self.fanout == 0:
            return ()
        lo = self.fanout + i * self.fanout
        return self.order[lo : lo + self.fanout]

    def relays(self) -> tuple[str, ...]:
        """The learners with at least one child, in tree order."""
        if self.fanout == 0:
            return ()
        count = max(0, -(-(len(self.order) - self.fanout) // self.fanout))
        return self.order[:count]

    def depth(self) -> int:
        """Relay hops from the leader to the deepest learner (1 = all first tier, 0 = none)."""
        if not self.order:
            return 0
        if self.fanout == 0:
            return 1
        d, i = 1, len(self.order) - 1
        while i >= self.fanout:
            i = (i - self.fanout) // self.fanout
            d += 1
        return d


def relay_tree(learners: Collection[str], fanout: int) -> RelayTree:
    """The relay tree of ``learners`` (any order) with ``fanout`` children per node.

    Raises:
      ValueError: ``fanout`` is negative.
    """
    if fanout < 0:
        raise ValueError(f"relay fanout {fanout} must be 0 (off) or positive")
    return _tree(frozenset(learners), fanout)


@lru_cache(maxsize=16)
def _tree(learners: frozenset[str], fanout: int) -> RelayTree:
    order = tuple(sorted(learners))
    return RelayTree(order, fanout, {x: i for i, x in enumerate(order)})

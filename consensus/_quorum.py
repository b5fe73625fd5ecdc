"""Majority arithmetic (pure): commit index and election results.

Only voters count; learners never do.  A leader that has removed itself is
not a voter of the latest membership and therefore does not count itself.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping


def majority(n: int) -> int:
    """Smallest number of voters that is more than half of ``n``."""
    return n // 2 + 1


def committed_index(voters: Collection[str], match: Mapping[str, int]) -> int:
    """The highest index durable on a majority of ``voters`` (0 with no voters)."""
    if not voters:
        return 0
    acked = sorted((match.get(v, 0) for v in voters), reverse=True)
    return acked[majority(len(acked)) - 1]


def vote_result(voters: Collection[str], votes: Mapping[str, bool]) -> bool | None:
    """True when won, False when lost, None while undecided."""
    granted = sum(1 for v in voters if votes.get(v) is True)
    rejected = sum(1 for v in voters if votes.get(v) is False)
    need = majority(len(voters))
    if granted >= need:
        return True
    if rejected > len(voters) - need:
        return False
    return None


def has_quorum(voters: Collection[str], active: Collection[str]) -> bool:
    """Is a majority of ``voters`` among ``active``?"""
    return bool(voters) and sum(1 for v in voters if v in active) >= majority(len(voters))

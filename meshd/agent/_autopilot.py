"""Autopilot: which Raft membership change to make next, from gossip's view.

Theory of operation
-------------------
Every host keeps a full replica; at most five are *voters*, the rest
*learners*.  The Raft leader runs :func:`decide` whenever gossip or Raft
changes (and on a timer) and carries out the one change it returns; Raft
allows one membership change in flight, so one step at a time is natural.

Target voter count, from the number of members that have not left
(``n``: alive, suspected and failed ones — a failed host may come back, and
shrinking the voters when one fails only makes the next failure fatal)::

    n >= 5 -> 5,   3 <= n < 5 -> 3,   n < 3 -> 1

(even counts never help: two voters fail when either fails).

The steps, in priority order:

1. a member that *left* gracefully is removed (voter or learner) at once;
2. a live member that is not in the configuration is added as a learner;
3. a voter that has been failed for ``fail_grace_s`` is replaced: first a
   healthy learner is promoted (if the voters still alive would be a
   majority of the bigger set), then the failed voter is removed; without a
   learner to replace it, it is removed only while at least three voters
   stay (a 3-voter cluster keeps it: going to 2 and 1 voters would not
   tolerate any more failures, and the host may come back);
4. while voters < target, the healthiest learner (alive at least
   ``stable_s``, answering the leader at its cadence and caught up within
   ``max_lag`` entries; oldest first) is promoted — but the first step from
   one voter waits until two learners qualify: two voters are a quorum of
   two, stalled by either, so the cluster passes through that state only
   with the third voter ready to follow at once;
5. while voters > target (the cluster shrank), a voter that is not the
   leader is demoted (removed, then re-added as a learner by step 2);
6. a learner failed for ``fail_grace_s`` is removed (it is added again when
   it returns).

Never: removing the leader (it transfers leadership first, outside this
function), removing the last voter, or a change that would leave the alive
voters short of a majority.  Pure: no clock, no I/O; ``now`` is a parameter.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass


class Health(enum.Enum):
    ALIVE = "alive"
    SUSPECT = "suspect"
    FAILED = "failed"
    LEFT = "left"


@dataclass(frozen=True, slots=True)
class MemberView:
    """One gossip member as the leader sees it."""

    name: str
    health: Health
    since: float          #: when it entered this health state (driver clock, seconds)
    joined_at: float      #: when it was first seen (older members are preferred as voters)
    #: Raft entries behind the leader; None if not a Raft member yet, or if the leader
    #: has not heard from it at its cadence lately (a starved or cut-off learner)
    lag: int | None = None


class Op(enum.Enum):
    ADD_LEARNER = "add-learner"
    PROMOTE = "promote"
    REMOVE = "remove"


@dataclass(frozen=True, slots=True)
class Action:
    op: Op
    node: str
    reason: str


@dataclass(frozen=True, slots=True)
class AutopilotConfig:
    #: a failed voter (or learner) is replaced (removed) after this long, seconds
    fail_grace_s: float = 30.0
    #: a learner must be alive this long before it may be promoted, seconds
    stable_s: float = 5.0
    #: a learner must be at most this many entries behind to be promoted
    max_lag: int = 1000
    #: most voters ever
    max_voters: int = 5


def target_voters(alive: int, max_voters: int = 5) -> int:
    """5 from five live members up, 3 from three, else 1 (never even)."""
    if alive >= 5:
        return min(5, max_voters)
    return 3 if alive >= 3 else 1


def decide(*, leader: str, voters: Iterable[str], learners: Iterable[str], members: Iterable[MemberView],
           now: float, cfg: AutopilotConfig = AutopilotConfig()) -> Action | None:
    """The next membership change, or None when the configuration is right."""
    voters, learners = set(voters), set(learners)
    by_name = {m.name: m for m in members}
    in_config = voters | learners
    alive = {n for n, m in by_name.items() if m.health in (Health.ALIVE, Health.SUSPECT)} | {leader}

    for name in sorted(in_config - {leader}):
        if _health(by_name, name) is Health.LEFT and _safe_to_remove(name, voters, alive):
            return Action(Op.REMOVE, name, "left the cluster")
    for m in sorted(by_name.values(), key=lambda m: (m.joined_at, m.name)):
        if m.name not in in_config and m.health is Health.ALIVE:
            return Action(Op.ADD_LEARNER, m.name, "new live member")
    candidates = [m for m in by_name.values() if m.name in learners and _promotable(m, now, cfg)]
    candidates.sort(key=lambda m: (m.joined_at, m.name))
    failed_voters = sorted(v for v in voters - {leader} if _failed_for(by_name, v, now) >= cfg.fail_grace_s)
    staying = {n for n, m in by_name.items() if m.health is not Health.LEFT} | {leader}
    target = target_voters(len(staying), cfg.max_voters)
    if failed_voters:
        alive_voters = len(voters & alive)
        # promote the replacement first while that keeps the alive voters a majority of the bigger set
        if (candidates and alive_voters < target and len(voters) <= cfg.max_voters
                and alive_voters + 1 > (len(voters) + 1) // 2):
            return Action(Op.PROMOTE, candidates[0].name, f"replaces failed voter {failed_voters[0]}")
        # remove it once replaced, or while at least 3 voters stay (5 with 2 failed tolerate no
        # further failure, the 3 alive ones alone tolerate one); never 3 -> 2 -> 1
        if (alive_voters >= target or len(voters) > 3) and _safe_to_remove(failed_voters[0], voters, alive):
            return Action(Op.REMOVE, failed_voters[0], f"voter failed for {cfg.fail_grace_s:.0f}s or more")
    if len(voters) < target and candidates and (len(voters) != 1 or len(candidates) >= 2):
        return Action(Op.PROMOTE, candidates[0].name, f"{len(voters)} voters, want {target}")
    if len(voters) > target and not voters - alive:
        # the cluster shrank: demote the newest live voter (step 2 re-adds it as a learner)
        spare = sorted(voters - {leader}, key=lambda v: (-_joined(by_name, v), v))
        if spare and _safe_to_remove(spare[0], voters, alive):
            return Action(Op.REMOVE, spare[0], f"{len(voters)} voters, want {target}")
    for name in sorted(learners):
        if _failed_for(by_name, name, now) >= cfg.fail_grace_s:
            return Action(Op.REMOVE, name, f"learner failed for {cfg.fail_grace_s:.0f}s or more")
    return None


def _health(by_name: dict[str, MemberView], name: str) -> Health:
    m = by_name.get(name)
    return m.health if m else Health.FAILED


def _failed_for(by_name: dict[str, MemberView], name: str, now: float) -> float:
    m = by_name.get(name)
    if m is None:
        return float("inf")  # reaped by gossip: failed long ago
    return now - m.since if m.health is Health.FAILED else -1.0


def _joined(by_name: dict[str, MemberView], name: str) -> float:
    m = by_name.get(name)
    return m.joined_at if m else 0.0


def _promotable(m: MemberView, now: float, cfg: AutopilotConfig) -> bool:
    return (m.health is Health.ALIVE and now - m.since >= cfg.stable_s
            and m.lag is not None and m.lag <= cfg.max_lag)


def _safe_to_remove(name: str, voters: set[str], alive: set[str]) -> bool:
    """Removing ``name`` keeps at least one voter and leaves alive voters a majority."""
    if name not in voters:
        return True
    rest = voters - {name}
    return bool(rest) and len(rest & alive) > len(rest) // 2

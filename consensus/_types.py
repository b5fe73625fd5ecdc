"""Value types the core hands out: roles, Ready batches, snapshots, status."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ._messages import ConfState, Entry, HardState, Message


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A state-machine snapshot covering the log up to (index, term)."""

    index: int
    term: int
    conf: ConfState
    data: bytes


@dataclass(frozen=True, slots=True)
class PendingRead:
    round: int
    index: int
    requester: str
    ctx: int


class Role(str, Enum):
    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre-candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


@dataclass(frozen=True, slots=True)
class ReadState:
    """A read with context ``ctx`` is linearizable once applied >= ``index``."""

    ctx: int
    index: int


@dataclass(frozen=True, slots=True)
class SoftState:
    role: Role
    leader: str | None
    term: int


@dataclass(frozen=True, slots=True)
class Ready:
    """One batch of work for the application; see the module docstring for order."""

    hard_state: HardState | None
    entries: tuple[Entry, ...]
    snapshot: Snapshot | None
    committed: tuple[Entry, ...]
    messages: tuple[Message, ...]
    read_states: tuple[ReadState, ...]
    soft_state: SoftState | None
    notes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PeerStatus:
    """The leader's view of one follower (empty on followers)."""

    id: str
    match: int
    next: int
    state: str
    voter: bool
    #: Entries the follower is behind the leader's last index.
    lag: int
    #: Ticks since the leader last heard from it (an answer, or for a relayed
    #: learner a MatchReport); None if it never has in this leader's term.
    silent_ticks: int | None = None
    #: Heard within twice the cadence it is expected to answer at (a voter every
    #: ``heartbeat_ticks``, a learner the leader feeds every
    #: ``learner_heartbeat_ticks``, a relayed learner every ``relay_report_ticks``).
    #: A learner that is not is starved or cut off: it is no voter candidate,
    #: however small its lag (the lag of a learner that never answered is small
    #: while the log is).
    responsive: bool = False
    #: A relayed learner the leader feeds itself because its relay stopped answering
    #: (docs/consensus.md, "Relay tree").
    adopted: bool = False


@dataclass(frozen=True, slots=True)
class CoreStatus:
    id: str
    role: Role
    term: int
    leader: str | None
    commit: int
    applied: int
    last_index: int
    snapshot_index: int
    voters: tuple[str, ...]
    learners: tuple[str, ...]
    peers: tuple[PeerStatus, ...]

"""Raft's data types and wire messages: msgspec Structs, ``[tag, version, *fields]`` msgpack.

Every message is a frozen ``msgspec.Struct`` (array-like, tagged with its
number in the class keyword ``tag=N``).  On the wire a message is one msgpack
array ``[tag, version, term, frm, to, field, ...]`` with the fields in
declaration order; a log :class:`Entry` inside a message is the array
``[term, index, kind, data]``.  Messages are built with keywords
(``Heartbeat(term=3, frm="a", to="b", commit=7)``).

:func:`decode` is a typed msgspec decoder of exactly these messages: a
bounded frame, exact types, every integer non-negative, ``Entry`` checked by
its own ``__post_init__``; anything else raises :class:`DecodeError`, which
the driver counts and drops, so nothing undecodable reaches the core.  An
older peer's message with fewer trailing fields takes the defaults; a newer
peer's appended fields are ignored.

This module does not import meshd (meshd.wire declares the same two base
classes for its own messages): consensus stands alone, and the shared part
is msgspec itself plus a dozen lines of configuration, kept here on purpose.

Tags are part of the protocol: ONLY APPEND (``tag=17`` next), never renumber.
All messages carry ``term``, ``frm`` (sender id) and ``to`` (receiver id).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Annotated, Union

import msgspec

#: Protocol version written into every frame (bump when appending fields).
VERSION = 1
#: Largest frame :func:`decode` accepts, bytes (a snapshot chunk plus headers).
MAX_FRAME_BYTES = 64 << 20

#: Terms, indexes, counters: never negative on the wire.
NonNeg = Annotated[int, msgspec.Meta(ge=0)]


class DecodeError(ValueError):
    """A frame is not a valid Raft message (the peer's fault; count and drop it)."""


class EntryKind(IntEnum):
    """What a log entry carries."""

    #: An application command (a session envelope, see ``_sessions``).
    COMMAND = 0
    #: A membership change (:class:`ConfChange`, msgpack).
    CONF = 1
    #: An empty entry a new leader appends to commit entries of older terms.
    NOOP = 2


class Entry(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One log entry (``[term, index, kind, data]`` inside an Append)."""

    term: int
    index: int
    kind: int
    data: bytes

    def __post_init__(self) -> None:
        if self.term < 0 or self.index < 1 or self.kind not in (0, 1, 2):
            raise ValueError(f"bad entry term={self.term} index={self.index} kind={self.kind}")


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be durable before a node answers anyone: term and vote (commit rides along)."""

    term: int = 0
    vote: str | None = None
    commit: int = 0


@dataclass(frozen=True, slots=True)
class ConfState:
    """A cluster membership: who votes and who only follows (learners)."""

    voters: frozenset[str] = frozenset()
    learners: frozenset[str] = frozenset()

    def members(self) -> frozenset[str]:
        return self.voters | self.learners


class ConfOp(IntEnum):
    """Single-server membership operations."""

    ADD_VOTER = 0
    ADD_LEARNER = 1
    PROMOTE = 2
    REMOVE = 3
    #: Sets the whole voter list; only the very first entry of a new cluster.
    BOOTSTRAP = 4


class ConfChange(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """The payload of a CONF entry: ``[op, node, voters]`` msgpack."""

    op: ConfOp
    node: str = ""
    voters: tuple[str, ...] = ()

    def encode(self) -> bytes:
        return _ENCODER.encode(self)

    @classmethod
    def decode(cls, data: bytes) -> ConfChange:
        """Raises:
        DecodeError: not a conf change (unknown op, wrong types)."""
        try:
            return _CONF_DECODER.decode(data)
        except msgspec.DecodeError as exc:
            raise DecodeError(f"not a conf change: {exc}") from None

    def applied_to(self, conf: ConfState) -> ConfState:
        """The membership after this change (pure, deterministic)."""
        voters, learners = set(conf.voters), set(conf.learners)
        if self.op == ConfOp.BOOTSTRAP:
            return ConfState(frozenset(self.voters), frozenset())
        if self.op == ConfOp.ADD_VOTER or self.op == ConfOp.PROMOTE:
            learners.discard(self.node)
            voters.add(self.node)
        elif self.op == ConfOp.ADD_LEARNER:
            if self.node not in voters:
                learners.add(self.node)
        elif self.op == ConfOp.REMOVE:
            voters.discard(self.node)
            learners.discard(self.node)
        return ConfState(frozenset(voters), frozenset(learners))


class _Message(msgspec.Struct, frozen=True, array_like=True, gc=False, repr_omit_defaults=True):
    """Base of every message: ``[tag, version, term, frm, to, ...]``."""

    #: the protocol version the sender wrote
    version: Annotated[int, msgspec.Meta(ge=1)] = VERSION


class _Header(_Message, kw_only=True, frozen=True):
    term: NonNeg
    frm: str
    to: str


class Append(_Header, tag=1, kw_only=True, frozen=True):
    """Leader -> follower: entries after (prev_index, prev_term); commit index."""

    prev_index: NonNeg
    prev_term: NonNeg
    entries: tuple[Entry, ...]
    commit: NonNeg


class AppendResp(_Header, tag=2, kw_only=True, frozen=True):
    """Follower -> leader.  On success ``index`` is the last matching index.

    On reject ``index`` is the rejected prev_index and (hint_index, hint_term)
    is the follower's best guess of the last index that could match (etcd's
    fast backtracking: one round trip per term instead of per entry).
    """

    index: NonNeg
    reject: bool = False
    hint_index: NonNeg = 0
    hint_term: NonNeg = 0


class Vote(_Header, tag=3, kw_only=True, frozen=True):
    """Candidate -> voter.  ``pre`` marks a pre-vote (no term change yet);
    ``transfer`` marks an election started by leadership transfer, which
    voters grant even while they still hear from a leader."""

    last_index: NonNeg
    last_term: NonNeg
    pre: bool = False
    transfer: bool = False


class VoteResp(_Header, tag=4, kw_only=True, frozen=True):
    granted: bool
    pre: bool = False


class Heartbeat(_Header, tag=5, kw_only=True, frozen=True):
    """Leader -> follower: leadership claim, commit, and a read-round number."""

    commit: NonNeg
    read_round: NonNeg = 0


class HeartbeatResp(_Header, tag=6, kw_only=True, frozen=True):
    read_round: NonNeg = 0


class _SnapshotChunk(_Header, kw_only=True, frozen=True):
    """One chunk of the snapshot at (index, snap_term) with its membership."""

    index: NonNeg
    snap_term: NonNeg
    voters: tuple[str, ...]
    learners: tuple[str, ...]
    offset: NonNeg
    chunk: bytes
    done: bool


class InstallSnapshot(_SnapshotChunk, tag=7, kw_only=True, frozen=True):
    """Leader -> follower: one chunk of the snapshot at (index, snap_term)."""


class SnapshotResp(_Header, tag=8, kw_only=True, frozen=True):
    """Follower -> leader: bytes of snapshot ``index`` received so far."""

    index: NonNeg
    received: NonNeg


class TimeoutNow(_Header, tag=9, kw_only=True, frozen=True):
    """Leader -> transfer target: start an election right now."""


class Propose(_Header, tag=10, kw_only=True, frozen=True):
    """Follower -> leader: forwarded command entries (term/index unset: 0/1)."""

    commands: tuple[bytes, ...]


class ReadIndex(_Header, tag=11, kw_only=True, frozen=True):
    """Follower -> leader: ask for a linearizable read index (``ctx`` is the asker's)."""

    ctx: NonNeg


class ReadIndexResp(_Header, tag=12, kw_only=True, frozen=True):
    ctx: NonNeg
    index: NonNeg


class RelayAppend(_Header, tag=13, kw_only=True, frozen=True):
    """Relay -> child learner: committed entries after (prev_index, prev_term).

    ``term`` and ``leader`` are the leader's; ``frm`` is the relay, which the
    child answers with :class:`AppendResp` (see ``_relay``).
    """

    leader: str
    prev_index: NonNeg
    prev_term: NonNeg
    entries: tuple[Entry, ...]
    commit: NonNeg


class RelayHeartbeat(_Header, tag=14, kw_only=True, frozen=True):
    """Relay -> child learner: the leader's id and a commit index the child can match.

    Answered with :class:`HeartbeatResp` to the relay."""

    leader: str
    commit: NonNeg


class RelaySnapshot(_SnapshotChunk, tag=15, kw_only=True, frozen=True):
    """Relay -> child learner: one chunk of the relay's snapshot (answered with
    :class:`SnapshotResp`, then :class:`AppendResp`, to the relay); ``leader``
    comes last, after the chunk fields."""

    leader: str


class MatchReport(_Header, tag=16, kw_only=True, frozen=True):
    """Relayed learner -> leader, every ``relay_report_ticks``: its commit index."""

    index: NonNeg


Message = Union[  # noqa: UP007 (one long union reads better as a list)
    Append, AppendResp, Vote, VoteResp, Heartbeat, HeartbeatResp, InstallSnapshot,
    SnapshotResp, TimeoutNow, Propose, ReadIndex, ReadIndexResp, RelayAppend,
    RelayHeartbeat, RelaySnapshot, MatchReport,
]

_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(Message)
_CONF_DECODER = msgspec.msgpack.Decoder(ConfChange)


def encode(msg: Message) -> bytes:
    """One frame ``[tag, version, fields...]``."""
    return _ENCODER.encode(msg)


def decode(frame: bytes) -> Message:
    """The message in ``frame``.

    Raises:
      DecodeError: oversized, not msgpack, unknown tag, or bad fields.
    """
    if len(frame) > MAX_FRAME_BYTES:
        raise DecodeError(f"frame of {len(frame)} bytes exceeds {MAX_FRAME_BYTES}")
    try:
        return _DECODER.decode(frame)
    except msgspec.DecodeError as exc:  # ValidationError included
        raise DecodeError(f"not a raft message: {exc}") from None

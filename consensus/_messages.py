"""Raft's data types and wire messages, with their own msgpack codec.

Every message is a frozen, slotted dataclass registered under a numeric tag.
On the wire a message is one msgpack array ``[tag, version, field, ...]``
with the fields in declaration order; a log :class:`Entry` inside a message
is the array ``[term, index, kind, data]``.  Decoding is strict (raw=False,
strict_map_key=True, a bounded frame size, exact field types); anything that
fails raises :class:`DecodeError`, which the driver counts and drops, so
nothing undecodable reaches the core.

Tags are part of the protocol: ONLY APPEND to ``_TAGS``, never renumber.
All messages carry ``term``, ``frm`` (sender id) and ``to`` (receiver id).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Callable, Union

import msgpack

#: Protocol version written into every frame.
VERSION = 1
#: Largest frame :func:`decode` accepts, bytes (a snapshot chunk plus headers).
MAX_FRAME_BYTES = 64 << 20


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


@dataclass(frozen=True, slots=True)
class Entry:
    """One log entry."""

    term: int
    index: int
    kind: int
    data: bytes

    def __post_init__(self) -> None:
        if self.term < 0 or self.index < 1 or self.kind not in (0, 1, 2):
            raise ValueError(f"bad entry term={self.term} index={self.index} kind={self.kind}")


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be durable before a node answers anyone: term, vote, commit."""

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

    def to_wire(self) -> list[list[str]]:
        return [sorted(self.voters), sorted(self.learners)]

    @classmethod
    def from_wire(cls, obj: Any) -> "ConfState":
        if not (isinstance(obj, list) and len(obj) == 2):
            raise DecodeError("conf state must be [voters, learners]")
        voters, learners = (_str_list(x, "conf state") for x in obj)
        return cls(frozenset(voters), frozenset(learners))


class ConfOp(IntEnum):
    """Single-server membership operations."""

    ADD_VOTER = 0
    ADD_LEARNER = 1
    PROMOTE = 2
    REMOVE = 3
    #: Sets the whole voter list; only the very first entry of a new cluster.
    BOOTSTRAP = 4


@dataclass(frozen=True, slots=True)
class ConfChange:
    """The payload of a CONF entry."""

    op: ConfOp
    node: str = ""
    voters: tuple[str, ...] = ()

    def encode(self) -> bytes:
        return msgpack.packb([int(self.op), self.node, list(self.voters)], use_bin_type=True)

    @classmethod
    def decode(cls, data: bytes) -> "ConfChange":
        obj = _unpack(data)
        if not (isinstance(obj, list) and len(obj) == 3 and type(obj[0]) is int):
            raise DecodeError("conf change must be [op, node, voters]")
        try:
            op = ConfOp(obj[0])
        except ValueError:
            raise DecodeError(f"unknown conf op {obj[0]}") from None
        if type(obj[1]) is not str:
            raise DecodeError("conf change node must be a string")
        return cls(op, obj[1], tuple(_str_list(obj[2], "conf change voters")))

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


# --- messages -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Append:
    """Leader -> follower: entries after (prev_index, prev_term); commit index."""

    term: int
    frm: str
    to: str
    prev_index: int
    prev_term: int
    entries: tuple[Entry, ...]
    commit: int


@dataclass(frozen=True, slots=True)
class AppendResp:
    """Follower -> leader.  On success ``index`` is the last matching index.

    On reject ``index`` is the rejected prev_index and (hint_index, hint_term)
    is the follower's best guess of the last index that could match (etcd's
    fast backtracking: one round trip per term instead of per entry).
    """

    term: int
    frm: str
    to: str
    index: int
    reject: bool = False
    hint_index: int = 0
    hint_term: int = 0


@dataclass(frozen=True, slots=True)
class Vote:
    """Candidate -> voter.  ``pre`` marks a pre-vote (no term change yet);
    ``transfer`` marks an election started by leadership transfer, which
    voters grant even while they still hear from a leader."""

    term: int
    frm: str
    to: str
    last_index: int
    last_term: int
    pre: bool = False
    transfer: bool = False


@dataclass(frozen=True, slots=True)
class VoteResp:
    term: int
    frm: str
    to: str
    granted: bool
    pre: bool = False


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Leader -> follower: leadership claim, commit, and a read-round number."""

    term: int
    frm: str
    to: str
    commit: int
    read_round: int = 0


@dataclass(frozen=True, slots=True)
class HeartbeatResp:
    term: int
    frm: str
    to: str
    read_round: int = 0


@dataclass(frozen=True, slots=True)
class InstallSnapshot:
    """Leader -> follower: one chunk of the snapshot at (index, snap_term)."""

    term: int
    frm: str
    to: str
    index: int
    snap_term: int
    voters: tuple[str, ...]
    learners: tuple[str, ...]
    offset: int
    chunk: bytes
    done: bool


@dataclass(frozen=True, slots=True)
class SnapshotResp:
    """Follower -> leader: bytes of snapshot ``index`` received so far."""

    term: int
    frm: str
    to: str
    index: int
    received: int


@dataclass(frozen=True, slots=True)
class TimeoutNow:
    """Leader -> transfer target: start an election right now."""

    term: int
    frm: str
    to: str


@dataclass(frozen=True, slots=True)
class Propose:
    """Follower -> leader: forwarded command entries (term/index unset: 0/1)."""

    term: int
    frm: str
    to: str
    commands: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class ReadIndex:
    """Follower -> leader: ask for a linearizable read index (``ctx`` is the asker's)."""

    term: int
    frm: str
    to: str
    ctx: int


@dataclass(frozen=True, slots=True)
class ReadIndexResp:
    term: int
    frm: str
    to: str
    ctx: int
    index: int


Message = Union[
    Append, AppendResp, Vote, VoteResp, Heartbeat, HeartbeatResp, InstallSnapshot,
    SnapshotResp, TimeoutNow, Propose, ReadIndex, ReadIndexResp,
]

#: tag -> class.  ONLY APPEND; the numbers are part of the protocol.
_TAGS: dict[int, type] = {
    1: Append, 2: AppendResp, 3: Vote, 4: VoteResp, 5: Heartbeat, 6: HeartbeatResp,
    7: InstallSnapshot, 8: SnapshotResp, 9: TimeoutNow, 10: Propose, 11: ReadIndex,
    12: ReadIndexResp,
}
_TAG_OF = {cls: tag for tag, cls in _TAGS.items()}


# --- codec --------------------------------------------------------------------


def encode(msg: Message) -> bytes:
    """One frame ``[tag, version, fields...]``."""
    out: list[Any] = [_TAG_OF[type(msg)], VERSION]
    for f in dataclasses.fields(msg):
        value = getattr(msg, f.name)
        if f.name == "entries":
            value = [[e.term, e.index, e.kind, e.data] for e in value]
        elif isinstance(value, tuple):
            value = list(value)
        out.append(value)
    return msgpack.packb(out, use_bin_type=True)


def decode(frame: bytes) -> Message:
    """The message in ``frame``.

    Raises:
      DecodeError: oversized, not msgpack, unknown tag, or bad fields.
    """
    obj = _unpack(frame)
    if not (isinstance(obj, list) and len(obj) >= 2):
        raise DecodeError("a raft frame is an array [tag, version, fields...]")
    tag, version, *values = obj
    cls = _TAGS.get(tag) if type(tag) is int else None
    if cls is None or type(version) is not int or version < 1:
        raise DecodeError(f"unknown raft message tag {tag!r} version {version!r}")
    specs = dataclasses.fields(cls)
    required = sum(1 for f in specs if f.default is dataclasses.MISSING)
    if len(values) < required:
        raise DecodeError(f"{cls.__name__}: {len(values)} fields, need {required}")
    kwargs = {}
    for f, value in zip(specs, values):  # extra trailing fields (newer peer) ignored
        check = _CHECKS[f.type]
        kwargs[f.name] = check(value, f"{cls.__name__}.{f.name}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise DecodeError(f"{cls.__name__}: {exc}") from None


def _unpack(data: bytes) -> Any:
    if len(data) > MAX_FRAME_BYTES:
        raise DecodeError(f"frame of {len(data)} bytes exceeds {MAX_FRAME_BYTES}")
    try:
        unpacker = msgpack.Unpacker(
            raw=False, strict_map_key=True, max_buffer_size=MAX_FRAME_BYTES
        )
        unpacker.feed(data)
        obj = unpacker.unpack()
        trailing = len(data) - unpacker.tell()
    except Exception as exc:  # msgpack raises many types on garbage
        raise DecodeError(f"not msgpack: {type(exc).__name__}: {exc}") from None
    if trailing:
        raise DecodeError(f"{trailing} bytes after the message")
    return obj


def _typed(kind: type) -> Callable[[Any, str], Any]:
    def check(value: Any, where: str) -> Any:
        if type(value) is not kind:
            raise DecodeError(f"{where}: expected {kind.__name__}, got {type(value).__name__}")
        if kind is int and value < 0:
            raise DecodeError(f"{where}: negative ({value})")
        return value

    return check


def _str_list(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or any(type(v) is not str for v in value):
        raise DecodeError(f"{where}: expected a list of strings")
    return value


def _bytes_tuple(value: Any, where: str) -> tuple[bytes, ...]:
    if not isinstance(value, list) or any(type(v) is not bytes for v in value):
        raise DecodeError(f"{where}: expected a list of bytes")
    return tuple(value)


def _entries(value: Any, where: str) -> tuple[Entry, ...]:
    if not isinstance(value, list):
        raise DecodeError(f"{where}: expected a list of entries")
    out = []
    for item in value:
        if not (isinstance(item, list) and len(item) == 4):
            raise DecodeError(f"{where}: an entry is [term, index, kind, data]")
        term, index, kind, data = item
        if type(term) is not int or type(index) is not int or type(kind) is not int:
            raise DecodeError(f"{where}: entry term/index/kind must be integers")
        if type(data) is not bytes:
            raise DecodeError(f"{where}: entry data must be bytes")
        try:
            out.append(Entry(term, index, kind, data))
        except ValueError as exc:
            raise DecodeError(f"{where}: {exc}") from None
    return tuple(out)


_CHECKS: dict[str, Callable[[Any, str], Any]] = {
    "int": _typed(int),
    "str": _typed(str),
    "bool": _typed(bool),
    "bytes": _typed(bytes),
    "tuple[str, ...]": lambda v, w: tuple(_str_list(v, w)),
    "tuple[bytes, ...]": _bytes_tuple,
    "tuple[Entry, ...]": _entries,
}

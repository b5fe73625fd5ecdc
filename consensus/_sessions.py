"""Client sessions: exactly-once application of retried commands (pure).

Every COMMAND entry carries an envelope ``[client_id, seq, acked_below,
command]`` (msgpack).  A client first *registers* (Ongaro's thesis §6.3):
it commits an envelope with an empty client id and a random nonce as
``seq``; the result is its client id, the log index of that entry as
decimal text.  It then numbers its commands 1, 2, 3, ...; ``acked_below`` is
its lowest sequence number still waiting for a result, so every result below
it can be forgotten.  :class:`Applier` sits between the log and the
application's :class:`StateMachine`:

* a (client, seq) seen before returns the stored result without applying
  again -- so a proposal retried after a timeout or a leader change is
  applied once and gets the original result;
* sessions are kept in least-recently-used order, at most ``max_sessions``;
  a command from an unknown (forgotten) client gets :data:`SESSION_EXPIRED`
  instead of being applied (it might be a duplicate); because every session
  starts with a registration entry, "unknown" can only mean "forgotten";
* the session table is part of the snapshot, so every replica deduplicates
  identically.

Everything here is deterministic: the same entries give the same table and
the same results on every node.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Protocol

import msgpack
import msgspec

from ._errors import RaftError
from ._messages import DecodeError, Entry, EntryKind

#: Snapshot format version written by :meth:`Applier.snapshot`.
SNAPSHOT_VERSION = 1


class StateMachine(Protocol):
    """The replicated application.  ``apply`` must be deterministic: the same
    commands in the same order give the same results and state on every node
    (no clocks, randomness, I/O or iteration over unordered sets)."""

    def apply(self, index: int, command: bytes) -> bytes: ...

    def snapshot(self) -> bytes: ...

    def restore(self, data: bytes) -> None: ...

    # Optional: ``warm_steps(self) -> Iterator[None]``.  When the state machine has it, the driver runs
    # it once when the node starts, before its first apply, on its event loop with a checkpoint after
    # each step: a state machine whose restore leaves indexes to first use builds them there, in steps
    # of a few milliseconds, while the node waits for an election.


class SessionExpired(RaftError):
    """The command's client session was forgotten, so it was not applied (it
    may already have been).  Raised to the proposer; start a new client."""


#: Result marker stored for commands refused because their session expired.
SESSION_EXPIRED = object()


class Envelope(msgspec.Struct, frozen=True, array_like=True, gc=False, forbid_unknown_fields=True):
    """A COMMAND entry's payload: exactly ``[client_id, seq, acked_below, command]`` msgpack
    (as every meshd version wrote and read it: no field is ever appended here)."""

    client_id: str
    seq: int
    acked_below: int
    command: bytes


_ENVELOPE = msgspec.msgpack.Decoder(Envelope)
_ENCODER = msgspec.msgpack.Encoder()


def encode_command(client_id: str, seq: int, acked_below: int, command: bytes) -> bytes:
    """The envelope of one command (client_id "" and seq=nonce: a registration)."""
    return _ENCODER.encode(Envelope(client_id, seq, acked_below, command))


def decode_command(data: bytes) -> tuple[str, int, int, bytes]:
    """(client_id, seq, acked_below, command) of an envelope.

    Raises:
      DecodeError: not an envelope (the entry is skipped on every replica alike).
    """
    try:
        env = _ENVELOPE.decode(data)
    except msgspec.DecodeError as exc:
        raise DecodeError(f"not a command envelope [client_id, seq, acked_below, command]: {exc}") from None
    return env.client_id, env.seq, env.acked_below, env.command


class _Session:
    __slots__ = ("floor", "results")

    def __init__(self, floor: int) -> None:
        self.floor = floor
        self.results: dict[int, bytes | None] = {}


class Applier:
    """Applies committed entries to a :class:`StateMachine` through sessions."""

    def __init__(self, sm: StateMachine, max_sessions: int = 10_000) -> None:
        self.sm = sm
        self.max_sessions = max_sessions
        self.sessions: OrderedDict[str, _Session] = OrderedDict()
        self.applied = 0
        #: Commands applied to the state machine / answered from the session table.
        self.applied_commands = 0
        self.deduplicated = 0
        self.malformed = 0

    def apply(self, entry: Entry) -> tuple[str, int, object] | None:
        """Apply one committed entry.

        Returns (client_id, seq, result) for a command -- the result is bytes,
        None (an old duplicate whose result was already acknowledged) or
        :data:`SESSION_EXPIRED` -- and None for membership and no-op entries
        and for commands without a valid envelope (skipped, counted).
        """
        if entry.index <= self.applied:
            raise AssertionError(f"entry {entry.index} applied twice (applied {self.applied})")
        self.applied = entry.index
        if entry.kind != EntryKind.COMMAND:
            return None
        try:
            cid, seq, below, cmd = decode_command(entry.data)
        except DecodeError:
            self.malformed += 1  # same bytes on every node: skipped everywhere
            return None
        if cid == "":
            new_id = str(entry.index)
            self._new_session(new_id)
            return cid, seq, new_id.encode()
        s = self.sessions.get(cid)
        if s is None:
            return cid, seq, SESSION_EXPIRED
        self.sessions.move_to_end(cid)
        if below > s.floor:
            s.floor = below
            for old in [q for q in s.results if q < below]:
                del s.results[old]
        if seq in s.results or seq < s.floor:
            self.deduplicated += 1
            return cid, seq, s.results.get(seq)
        result = self.sm.apply(entry.index, cmd)
        self.applied_commands += 1
        s.results[seq] = result
        return cid, seq, result

    def _new_session(self, cid: str) -> _Session:
        s = _Session(1)
        self.sessions[cid] = s
        while len(self.sessions) > self.max_sessions:
            self.sessions.popitem(last=False)
        return s

    def snapshot(self) -> bytes:
        """The state machine plus the session table, as one deterministic blob."""
        table = [
            [cid, s.floor, sorted(s.results.items())] for cid, s in self.sessions.items()
        ]
        blob: bytes = msgpack.packb([SNAPSHOT_VERSION, table, self.sm.snapshot()], use_bin_type=True)
        return blob

    def restore(self, data: bytes, index: int) -> None:
        version, table, inner = msgpack.unpackb(data, raw=False, strict_map_key=True)
        if version != SNAPSHOT_VERSION:
            raise ValueError(f"snapshot format {version} is not supported (want {SNAPSHOT_VERSION})")
        self.sessions = OrderedDict()
        for cid, floor, results in table:
            s = _Session(floor)
            s.results = {seq: res for seq, res in results}
            self.sessions[cid] = s
        self.sm.restore(inner)
        self.applied = index

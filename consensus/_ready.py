"""One :class:`Ready`, as the ordered I/O actions that carry it out (pure).

Theory of operation
-------------------
:func:`plan_ready` is the only place that decides what a Ready means for the
disk, the network and the state machine, and in which order.  The trio
driver (``RaftNode``) and the deterministic simulation (``tests/sim/raft``)
both call it and only *perform* the actions it returns, in order -- so the
simulation's thousands of seeds check the driver's real ordering, not a copy
of it.

Order (etcd's ``rawnode`` contract, see ``_core``):

1. :class:`Persist` the snapshot (if any), the entries and the hard state;
2. :class:`Send` the messages -- *after* the persist, because a message may
   reveal a vote or acknowledge entries.  One exception (thesis §10.2.1, as
   in etcd): a leader whose term and vote are already durable sends first,
   overlapping its own disk write with the followers'; its own entries count
   toward commit only once ``advance`` marks them stable;
3. :class:`Apply` the snapshot, then the committed entries, to the state
   machine; :class:`AnswerReads` (linearizable once applied reaches them);
4. :class:`Report` log notes and the new role;
5. :class:`Advance` the core.

Durability: term and vote must be durable before anything that depends on
them leaves the node (a node that forgot its vote could vote twice in one
term), and entries before they are acknowledged.  The commit index need not
be durable: it is volatile state in Raft (after a restart the leader tells
it again, and the state machine is rebuilt from the snapshot and the log).
So a Ready whose only durable change would be the commit index is persisted
with ``sync=False``: it may be lost in a crash, and costs no fsync.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._messages import Entry, HardState, Message
from ._types import ReadState, Ready, Snapshot, SoftState


@dataclass(frozen=True, slots=True)
class Persist:
    """Write ``snapshot`` (replacing the log), then ``entries`` (replacing any
    stored at or after the first one's index), then ``hard_state``.

    ``sync``: make it durable (fsync) before the next action.  False only
    for a change of the commit index alone, which may be lost in a crash.
    """

    hard_state: HardState | None
    entries: tuple[Entry, ...]
    snapshot: Snapshot | None
    sync: bool


@dataclass(frozen=True, slots=True)
class Send:
    """Hand ``messages`` to the transport (best effort)."""

    messages: tuple[Message, ...]


@dataclass(frozen=True, slots=True)
class Apply:
    """Restore ``snapshot`` into the state machine (if any), then apply ``entries`` in order."""

    snapshot: Snapshot | None
    entries: tuple[Entry, ...]


@dataclass(frozen=True, slots=True)
class AnswerReads:
    """Each read is linearizable once the state machine has applied its index."""

    read_states: tuple[ReadState, ...]


@dataclass(frozen=True, slots=True)
class Report:
    """Log ``notes``; announce ``soft_state`` (role, leader, term) when not None."""

    notes: tuple[str, ...]
    soft_state: SoftState | None


@dataclass(frozen=True, slots=True)
class Advance:
    """Tell the core the Ready is handled: ``core.advance(ready)``."""

    ready: Ready


Action = Persist | Send | Apply | AnswerReads | Report | Advance


def plan_ready(rd: Ready, *, leader: bool, saved: HardState) -> tuple[Action, ...]:
    """The actions that carry out ``rd``, in the order they must run.

    Args:
      rd: what ``core.ready()`` returned.
      leader: the core's role is leader now.
      saved: the hard state last persisted (its term and vote are durable).

    Returns:
      The actions; only :class:`Persist` with ``sync`` must finish (be
      durable) before the next one starts.  The last is always :class:`Advance`.
    """
    hs = rd.hard_state
    new_term_or_vote = hs is not None and (hs.term, hs.vote) != (saved.term, saved.vote)
    send_first = leader and not new_term_or_vote
    actions: list[Action] = []
    if rd.messages and send_first:
        actions.append(Send(rd.messages))
    if rd.snapshot is not None or rd.entries or hs is not None:
        sync = rd.snapshot is not None or bool(rd.entries) or new_term_or_vote
        actions.append(Persist(hs, rd.entries, rd.snapshot, sync))
    if rd.messages and not send_first:
        actions.append(Send(rd.messages))
    if rd.snapshot is not None or rd.committed:
        actions.append(Apply(rd.snapshot, rd.committed))
    if rd.read_states:
        actions.append(AnswerReads(rd.read_states))
    if rd.notes or rd.soft_state is not None:
        actions.append(Report(rd.notes, rd.soft_state))
    actions.append(Advance(rd))
    return tuple(actions)

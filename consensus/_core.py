"""The Raft core: a pure state machine in the shape of etcd's ``rawnode``.

Theory of operation
-------------------
:class:`RaftCore` does no I/O, reads no clock and owns no randomness: the
application feeds it inputs and collects outputs.

Inputs: ``step(msg)`` for every message received from a peer, ``tick()``
once per ``RaftConfig.tick_interval_s``, and the requests ``propose``,
``propose_conf``, ``read_index``, ``transfer_leadership`` and ``campaign``.

Outputs: ``ready()`` returns a :class:`Ready` batch. The application must
handle it in this order, then call ``advance(ready)`` --
:func:`consensus.plan_ready` turns a Ready into exactly these steps, and the
driver and the simulation only carry them out:

1. persist ``snapshot`` (if any), then ``entries`` (replacing any stored
   entries at or after the first index) and ``hard_state`` -- one fsync for
   the whole batch, none when only the commit index changed (it need not
   be durable; term and vote must);
2. only then send ``messages`` (a message may reveal a vote or entries, so
   they must be durable first).  One exception, as in etcd and the thesis
   (§10.2.1): a leader whose term and vote are already durable may send
   before persisting, because its own entries count toward commit only
   once ``advance`` marks them stable;
3. apply ``committed`` entries to the state machine in order (restore
   ``snapshot`` first), answer ``read_states`` once applied reaches their
   index;
4. ``advance(ready)``.  Nothing may be stepped between ``ready()`` and
   ``advance()``.

Algorithm: Raft (Ongaro's thesis) with pre-vote and check-quorum (so a
rejoining or partitioned node cannot depose a healthy leader), leader leases
for vote rejection, a no-op entry at the start of each term (only entries of
the current term are committed by counting), pipelined AppendEntries with
fast backtracking (``_leader``), ReadIndex, single-server membership
changes effective when appended, learners, leadership transfer and chunked
snapshots.  Beyond ``RaftConfig.relay_fanout`` learners, learners get the
committed log through a relay tree of learners (``_relay``).
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable
from typing import Any

from ._config import RaftConfig
from ._errors import ConfChangeInProgress, NotLeader, ProposalDropped
from ._leader import LeaderMixin
from ._log import RaftLog, SafetyError
from ._messages import (
    Append,
    AppendResp,
    ConfChange,
    ConfOp,
    ConfState,
    Entry,
    EntryKind,
    HardState,
    Heartbeat,
    HeartbeatResp,
    InstallSnapshot,
    MatchReport,
    Message,
    Propose,
    ReadIndex,
    ReadIndexResp,
    RelayAppend,
    RelayHeartbeat,
    RelaySnapshot,
    SnapshotResp,
    TimeoutNow,
    Vote,
    VoteResp,
)
from ._quorum import vote_result
from ._types import (
    CoreStatus,
    PendingRead,
    ReadState,
    Ready,
    Role,
    Snapshot,
    SoftState,
)

__all__ = ["RaftCore", "Ready", "ReadState", "Role", "Snapshot", "SoftState", "CoreStatus"]


class RaftCore(LeaderMixin):
    """One Raft node's protocol state (see module docstring)."""

    def __init__(
        self,
        node_id: str,
        config: RaftConfig,
        rng: random.Random,
        *,
        hard_state: HardState = HardState(),
        snapshot: Snapshot | None = None,
        entries: list[Entry] | tuple[Entry, ...] = (),
    ) -> None:
        self.id, self.cfg, self.rng = node_id, config, rng
        self.term, self.vote = hard_state.term, hard_state.vote
        base = snapshot or Snapshot(0, 0, ConfState(), b"")
        self.log = RaftLog(
            offset=base.index, offset_term=base.term, base_conf=base.conf,
            entries=[e for e in entries if e.index > base.index], commit=hard_state.commit,
        )
        self.snapshot: Snapshot | None = snapshot
        self.role, self.leader = Role.FOLLOWER, None
        self.election_elapsed = self.heartbeat_elapsed = self.learner_heartbeat_elapsed = 0
        #: ticks since this core was made (stamps when a peer was last heard from)
        self.ticks = 0
        self.randomized_timeout = 0
        self.votes: dict[str, bool] = {}
        self._init_leader_state()
        #: ticks counted towards the next MatchReport; starts at a phase taken from the
        #: id, so thousands of learners do not all report in the same tick
        self.report_elapsed = zlib.crc32(node_id.encode())
        self._outbox: list[Message] = []
        self._notes: list[str] = []
        self._read_states: list[ReadState] = []
        self._incoming: tuple[int, int, bytearray] | None = None
        self._pending_snapshot: Snapshot | None = None
        self._prev_hs = HardState(self.term, self.vote, self.log.commit)
        self._prev_soft = self._soft()
        self._reset_timeout()

    # --- public inputs -------------------------------------------------------

    def bootstrap(self, voters: list[str] | tuple[str, ...]) -> None:
        """Start a brand-new cluster: entry 1 (term 1) names the first voters.

        Every founding member must bootstrap with the same list; a node that
        joins later starts empty and learns everything from the leader.
        """
        if self.log.last_index() or self.term:
            raise SafetyError(f"raft node {self.id} already has state; bootstrap only empty nodes")
        data = ConfChange(ConfOp.BOOTSTRAP, voters=tuple(sorted(voters))).encode()
        self.term = 1
        self.log.append([Entry(1, 1, EntryKind.CONF, data)])

    def advance_election_clock(self) -> None:
        """Count a fresh start's election clock forward to ``election_ticks - 1``, so the first
        election comes 1..election_ticks ticks from now (``RaftConfig.initial_election_advance``).

        Only a follower that has heard no leader yet moves: a node that knows its leader keeps
        its lease.
        """
        if self.role == Role.FOLLOWER and self.leader is None:
            self.election_elapsed = max(self.election_elapsed, self.cfg.election_ticks - 1)

    def tick_stride(self) -> int:
        """How many ticks the driver may deliver together, once every that many intervals.

        1 for a leader, a voter and a relay with children: their timers count single ticks.
        ``learner_heartbeat_ticks`` for any other node (a leaf learner, or a node outside the
        configuration): its ticks only count towards its MatchReport and an election clock it
        does not use, so a stride delays nothing it does by more than the learner heartbeat.
        """
        if self.role == Role.LEADER or self.relay_progress or self._promotable():
            return 1
        return self.cfg.learner_heartbeat_ticks

    def tick(self) -> None:
        self.ticks += 1
        if self.role == Role.LEADER:
            self._tick_leader()
            return
        self.election_elapsed += 1
        self._tick_relay()
        if self._promotable() and self.election_elapsed >= self.randomized_timeout:
            self.campaign()

    def campaign(self, transfer: bool = False) -> None:
        """Start an election now (pre-vote first unless it is a transfer)."""
        if not self._promotable() or self.role == Role.LEADER:
            return
        self._reset_timeout()
        self.leader = None
        if transfer:
            self._start_election(pre=False, transfer=True)
        else:
            self._start_election(pre=True, transfer=False)

    def propose(self, commands: list[bytes]) -> None:
        """Append commands (leader) or forward them to the leader (follower).

        Raises:
          NotLeader: no leader is known.
          ProposalDropped: a leadership transfer is under way.
        """
        if self.role == Role.LEADER:
            if self.transferee is not None:
                raise ProposalDropped(
                    f"raft node {self.id} is handing leadership to {self.transferee}; retry shortly"
                )
            self._append([(EntryKind.COMMAND, c) for c in commands])
        elif self.leader is not None and self.role == Role.FOLLOWER:
            self._send(Propose(term=self.term, frm=self.id, to=self.leader, commands=tuple(commands)))
        else:
            raise NotLeader(self.id, None, "proposal")

    def propose_conf(self, change: ConfChange) -> int:
        """Append one membership change (leader only); returns its log index.

        Raises:
          NotLeader: this node does not lead.
          ConfChangeInProgress: the previous change (or this term's first
            entry) is not committed yet.
        """
        if self.role != Role.LEADER:
            raise NotLeader(self.id, self.leader, "membership change")
        if self.log.last_conf_index() > self.log.commit or (
            self.log.term(self.log.commit) != self.term
        ):
            raise ConfChangeInProgress(
                f"raft node {self.id}: a membership change or the new term's first entry is "
                "not committed yet; wait for it and retry"
            )
        if change.op == ConfOp.BOOTSTRAP:
            raise ValueError("BOOTSTRAP is only for a brand-new cluster (RaftCore.bootstrap)")
        if self.transferee is not None:
            raise ProposalDropped(f"raft node {self.id}: leadership transfer under way; retry")
        self._append([(EntryKind.CONF, change.encode())])
        return self.log.last_index()

    def read_index(self, ctx: int) -> None:
        """Ask for a linearizable read point; answered as a ReadState(ctx, index).

        Raises:
          NotLeader: no leader is known to forward the request to.
        """
        if self.role == Role.LEADER:
            self._queue_read(PendingRead(0, 0, self.id, ctx))
        elif self.leader is not None and self.role == Role.FOLLOWER:
            self._send(ReadIndex(term=self.term, frm=self.id, to=self.leader, ctx=ctx))
        else:
            raise NotLeader(self.id, None, "read")

    def step(self, m: Message) -> None:
        """Feed one message received from a peer."""
        if m.to != self.id:
            return
        if not self._check_term(m):
            return
        handler = _HANDLERS[type(m)]
        handler(self, m)

    # --- term and role ---------------------------------------------------------

    def _check_term(self, m: Message) -> bool:
        """Term rules shared by every message; False when ``m`` is to be dropped."""
        if m.term > self.term:
            if isinstance(m, Vote) and not m.transfer and self._in_lease():
                self._note(f"{self.id} ignored {'pre-' if m.pre else ''}vote from {m.frm}: leader lease")
                return False
            if (isinstance(m, Vote) and m.pre) or (isinstance(m, VoteResp) and m.pre and m.granted):
                return True
            lead = (m.leader if isinstance(m, _RELAYED) else
                    m.frm if isinstance(m, (Append, Heartbeat, InstallSnapshot)) else None)
            self._become_follower(m.term, lead)
            return True
        if m.term < self.term:
            if isinstance(m, (Append, Heartbeat, RelayAppend, RelayHeartbeat)):
                # A stale leader (or relay): tell it our term so it steps down.
                self._send(AppendResp(term=self.term, frm=self.id, to=m.frm, index=0, reject=True))
            elif isinstance(m, Vote) and m.pre:
                self._send(VoteResp(term=self.term, frm=self.id, to=m.frm, granted=False, pre=True))
            return False
        return True

    def _in_lease(self) -> bool:
        return self.leader is not None and self.election_elapsed < self.cfg.election_ticks

    def _promotable(self) -> bool:
        return self.id in self.log.conf().voters

    def _reset_timeout(self) -> None:
        self.election_elapsed = 0
        et = self.cfg.election_ticks
        self.randomized_timeout = self.rng.randrange(et, 2 * et)

    def _become_follower(self, term: int, leader: str | None) -> None:
        if term != self.term:
            self.term, self.vote = term, None
        was = self.role
        self.role, self.leader = Role.FOLLOWER, leader
        self._reset_leader_state()
        self._reset_timeout()
        if was != Role.FOLLOWER:
            self._note(f"{self.id} became follower at term {self.term}")

    def _start_election(self, *, pre: bool, transfer: bool) -> None:
        if pre:
            self.role = Role.PRE_CANDIDATE
            term = self.term + 1
            self._note(f"{self.id} became pre-candidate at term {self.term}")
        else:
            self.role = Role.CANDIDATE
            self.term += 1
            self.vote = self.id
            term = self.term
            self._note(f"{self.id} became candidate at term {self.term}")
        self.votes = {self.id: True}
        voters = self.log.conf().voters
        if vote_result(voters, self.votes):
            self._won(pre)
            return
        for v in sorted(voters - {self.id}):
            self._send(Vote(
                term=term, frm=self.id, to=v, last_index=self.log.last_index(), last_term=self.log.last_term(),
                pre=pre, transfer=transfer,
            ))

    def _won(self, pre: bool) -> None:
        if pre:
            self._start_election(pre=False, transfer=False)
        else:
            self._become_leader()

    # --- handlers (any role) ---------------------------------------------------

    def _on_vote(self, m: Vote) -> None:
        can_vote = (
            self.vote == m.frm
            or (self.vote is None and self.leader is None)
            or (m.pre and m.term > self.term)
        )
        if can_vote and self.log.is_up_to_date(m.last_index, m.last_term):
            self._send(VoteResp(term=m.term, frm=self.id, to=m.frm, granted=True, pre=m.pre))
            if not m.pre:
                self.vote = m.frm
                self.election_elapsed = 0
            self._note(f"{self.id} granted {'pre-' if m.pre else ''}vote to {m.frm} at term {m.term}")
        else:
            self._send(VoteResp(term=self.term, frm=self.id, to=m.frm, granted=False, pre=m.pre))

    def _on_vote_resp(self, m: VoteResp) -> None:
        if m.pre != (self.role == Role.PRE_CANDIDATE) or self.role not in (
            Role.PRE_CANDIDATE, Role.CANDIDATE,
        ):
            return
        self.votes[m.frm] = m.granted
        result = vote_result(self.log.conf().voters, self.votes)
        if result is True:
            self._won(m.pre)
        elif result is False:
            self._become_follower(self.term, None)

    def _accept_leader(self, m: Message, leader: str) -> bool:
        """``leader`` leads ``m.term`` (``m`` comes from it or from a relay of it).

        False when ``m`` is to be ignored: a relay whose older membership
        still counts this node, now the leader, as a learner."""
        if self.role == Role.LEADER:
            if leader == self.id and m.frm != self.id:
                return False
            raise SafetyError(f"two leaders in term {self.term}: {self.id} and {leader}")
        if self.role != Role.FOLLOWER:
            self._become_follower(m.term, leader)
        if self.leader != leader:
            self._note(f"{self.id} follows leader {leader} at term {m.term}")
        self.leader = leader
        if m.frm == leader or not self._promotable():
            # A voter's election timer is reset by the leader only: a relay
            # with an older membership may still be talking of a dead leader.
            self.election_elapsed = 0
        return True

    def _on_append(self, m: Append) -> None:
        self._accept_leader(m, m.frm)
        self._append_from(m)

    def _on_relay_append(self, m: RelayAppend) -> None:
        if self._accept_leader(m, m.leader):
            self._append_from(m)

    def _append_from(self, m: Append | RelayAppend) -> None:
        if m.prev_index < self.log.commit:
            self._send(AppendResp(term=self.term, frm=self.id, to=m.frm, index=self.log.commit))
            return
        last_new = self.log.maybe_append(m.prev_index, m.prev_term, m.commit, m.entries)
        if last_new is not None:
            self._send(AppendResp(term=self.term, frm=self.id, to=m.frm, index=last_new))
            return
        hint_index, hint_term = self.log.find_conflict_by_term(
            min(m.prev_index, self.log.last_index()), m.prev_term
        )
        self._send(AppendResp(
            term=self.term, frm=self.id, to=m.frm, index=m.prev_index, reject=True,
            hint_index=hint_index, hint_term=hint_term,
        ))

    def _on_heartbeat(self, m: Heartbeat) -> None:
        self._accept_leader(m, m.frm)
        self.log.commit_to(m.commit)
        self._send(HeartbeatResp(term=self.term, frm=self.id, to=m.frm, read_round=m.read_round))

    def _on_relay_heartbeat(self, m: RelayHeartbeat) -> None:
        if self._accept_leader(m, m.leader):
            self.log.commit_to(m.commit)
            self._send(HeartbeatResp(term=self.term, frm=self.id, to=m.frm))

    def _on_install_snapshot(self, m: InstallSnapshot) -> None:
        self._accept_leader(m, m.frm)
        self._snapshot_from(m)

    def _on_relay_snapshot(self, m: RelaySnapshot) -> None:
        if self._accept_leader(m, m.leader):
            self._snapshot_from(m)

    def _snapshot_from(self, m: InstallSnapshot | RelaySnapshot) -> None:
        if m.index <= self.log.commit:  # already have it (or a later one)
            self._incoming = None
            self._send(AppendResp(term=self.term, frm=self.id, to=m.frm, index=self.log.commit))
            return
        if m.offset == 0:
            self._incoming = (m.index, m.snap_term, bytearray())
        inc = self._incoming
        if inc is None or inc[0] != m.index or len(inc[2]) != m.offset:
            have = len(inc[2]) if inc is not None and inc[0] == m.index else 0
            self._send(SnapshotResp(term=self.term, frm=self.id, to=m.frm, index=m.index, received=have))
            return
        inc[2].extend(m.chunk)
        if not m.done:
            received = len(inc[2])
            self._send(SnapshotResp(term=self.term, frm=self.id, to=m.frm, index=m.index, received=received))
            return
        self._incoming = None
        conf = ConfState(frozenset(m.voters), frozenset(m.learners))
        self._restore(Snapshot(m.index, m.snap_term, conf, bytes(inc[2])))
        self._send(AppendResp(term=self.term, frm=self.id, to=m.frm, index=self.log.commit))

    def _restore(self, snap: Snapshot) -> None:
        if snap.index <= self.log.commit:
            return
        if self.log.term(snap.index) == snap.term:
            self.log.commit_to(snap.index)  # we have the entries; just fast-forward
            return
        self.log.restore(snap.index, snap.term, snap.conf)
        self.snapshot = self._pending_snapshot = snap
        self._note(f"{self.id} restored snapshot at index {snap.index} term {snap.term}")

    def _on_timeout_now(self, m: TimeoutNow) -> None:
        self._note(f"{self.id} received TimeoutNow from {m.frm}")
        self.campaign(transfer=True)

    def _on_propose(self, m: Propose) -> None:
        if self.role == Role.LEADER and self.transferee is None:
            self._append([(EntryKind.COMMAND, c) for c in m.commands])

    def _on_read_index(self, m: ReadIndex) -> None:
        if self.role == Role.LEADER:
            self._queue_read(PendingRead(0, 0, m.frm, m.ctx))

    def _on_read_index_resp(self, m: ReadIndexResp) -> None:
        self._read_states.append(ReadState(m.ctx, m.index))

    # --- outputs ---------------------------------------------------------------

    def _send(self, m: Message) -> None:
        self._outbox.append(m)

    def _note(self, line: str) -> None:
        self._notes.append(line)

    def _soft(self) -> SoftState:
        return SoftState(self.role, self.leader, self.term)

    def has_ready(self) -> bool:
        return bool(
            self.commit_dirty or self._outbox or self._notes or self._read_states or self._pending_snapshot
            or self.log.stable < self.log.last_index() or self.log.applied < self.log.commit
            or HardState(self.term, self.vote, self.log.commit) != self._prev_hs
            or self._soft() != self._prev_soft
        )

    def ready(self) -> Ready:
        self._flush_commit()
        self._flush_relay()
        hs = HardState(self.term, self.vote, self.log.commit)
        soft = self._soft()
        return Ready(
            hard_state=hs if hs != self._prev_hs else None,
            entries=tuple(self.log.unstable()),
            snapshot=self._pending_snapshot,
            committed=tuple(self.log.to_apply()),
            messages=tuple(self._outbox),
            read_states=tuple(self._read_states),
            soft_state=soft if soft != self._prev_soft else None,
            notes=tuple(self._notes),
        )

    def advance(self, rd: Ready) -> None:
        """The application has handled ``rd`` (persisted, sent, applied)."""
        if rd.hard_state is not None:
            self._prev_hs = rd.hard_state
        if rd.soft_state is not None:
            self._prev_soft = rd.soft_state
        if rd.entries:
            last = rd.entries[-1]
            if self.log.term(last.index) != last.term:
                raise SafetyError("the core was stepped between ready() and advance()")
            self.log.stable = max(self.log.stable, last.index)
        if rd.committed:
            self.log.applied = max(self.log.applied, rd.committed[-1].index)
        self._outbox.clear()
        self._notes.clear()
        self._read_states.clear()
        self._pending_snapshot = None
        if self.role == Role.LEADER:
            self._leader_advanced()

    def compact(self, index: int, data: bytes) -> Snapshot:
        """Record a state-machine snapshot taken at applied ``index`` and compact the log.

        Keeps ``RaftConfig.snapshot_trailing_entries`` entries behind it so a
        slightly lagging follower still gets entries, not the snapshot.
        """
        if not (self.log.offset < index <= self.log.applied):
            raise SafetyError(
                f"snapshot index {index} must be in ({self.log.offset}, applied {self.log.applied}]"
            )
        term = self.log.term(index)
        assert term is not None
        snap = Snapshot(index, term, self.log.conf_at(index), data)
        self.snapshot = snap
        self.log.compact(max(self.log.offset, index - self.cfg.snapshot_trailing_entries))
        return snap

    def status(self) -> CoreStatus:
        conf = self.log.conf()
        return CoreStatus(
            id=self.id, role=self.role, term=self.term, leader=self.leader,
            commit=self.log.commit, applied=self.log.applied, last_index=self.log.last_index(),
            snapshot_index=self.snapshot.index if self.snapshot else 0,
            voters=tuple(sorted(conf.voters)), learners=tuple(sorted(conf.learners)),
            peers=self._peer_status(conf),
        )


# each handler takes the message type of its key (which a dict's type cannot say: hence Any)
_HANDLERS: dict[type[Message], Callable[[RaftCore, Any], None]] = {
    Vote: RaftCore._on_vote,
    VoteResp: RaftCore._on_vote_resp,
    Append: RaftCore._on_append,
    Heartbeat: RaftCore._on_heartbeat,
    InstallSnapshot: RaftCore._on_install_snapshot,
    TimeoutNow: RaftCore._on_timeout_now,
    Propose: RaftCore._on_propose,
    ReadIndex: RaftCore._on_read_index,
    ReadIndexResp: RaftCore._on_read_index_resp,
    AppendResp: LeaderMixin._on_append_resp,
    HeartbeatResp: LeaderMixin._on_heartbeat_resp,
    SnapshotResp: LeaderMixin._on_snapshot_resp,
    RelayAppend: RaftCore._on_relay_append,
    RelayHeartbeat: RaftCore._on_relay_heartbeat,
    RelaySnapshot: RaftCore._on_relay_snapshot,
    MatchReport: LeaderMixin._on_match_report,
}

#: messages a relay sends on behalf of the leader named in their ``leader`` field
_RELAYED = (RelayAppend, RelayHeartbeat, RelaySnapshot)

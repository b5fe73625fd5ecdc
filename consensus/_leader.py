"""The leader's half of the core: replication, commit, reads, transfer, snapshots.

A mixin of :class:`consensus._core.RaftCore` (split out only for size); it
uses the core's ``log``, ``cfg``, ``term``, ``_send`` and ``_note``.

Replication follows etcd's tracker: each follower has a :class:`Progress`
(PROBE / REPLICATE / SNAPSHOT).  In REPLICATE the leader streams batches of
at most ``max_entries_per_msg`` entries / ``max_append_bytes`` bytes with at
most ``max_inflight_msgs`` unacknowledged.  A rejection carries a hint (the
follower's last index whose term is <= the leader's prev term), so a
divergent suffix is skipped a term at a time.  A follower that stops
acknowledging for ``2 * heartbeat_ticks`` (lost messages) drops back to PROBE.

Commit: the highest index durable on a majority of the latest membership's
voters (the leader's own entries count once ``advance`` reports them
stable), and only if that entry is from the current term.

Relays (``_relay``): a learner with children in the relay tree runs the
same sending code for them -- its own ``relay_progress`` table instead of
``progress``, its commit index instead of its last index as the limit, and
``Relay*`` messages carrying the leader's id.  ``_table()`` and ``_limit()``
pick which.  The leader feeds the children of a relay that stopped answering
itself (``_adopt_orphans``) until the relay answers again.

ReadIndex: a read takes the commit index (once this term's first entry is
committed), opens a *read round*, and heartbeats carry the round number;
when a majority of voters echo a round >= the read's, the read is answered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._errors import NotLeader
from ._log import SafetyError
from ._messages import (
    Append,
    AppendResp,
    ConfState,
    Entry,
    EntryKind,
    Heartbeat,
    HeartbeatResp,
    InstallSnapshot,
    MatchReport,
    ReadIndexResp,
    RelayAppend,
    RelayHeartbeat,
    RelaySnapshot,
    SnapshotResp,
    TimeoutNow,
)
from ._progress import Progress, ProgressState
from ._quorum import committed_index, has_quorum
from ._relay import relay_tree
from ._types import PeerStatus, PendingRead, ReadState, Role

if TYPE_CHECKING:  # pragma: no cover
    from ._config import RaftConfig
    from ._log import RaftLog
    from ._messages import Message
    from ._types import Snapshot


class LeaderMixin:
    if TYPE_CHECKING:  # pragma: no cover
        # what the mixin uses of RaftCore (which subclasses it, so it cannot be the base here)
        id: str
        cfg: RaftConfig
        term: int
        role: Role
        leader: str | None
        log: RaftLog
        snapshot: Snapshot | None
        election_elapsed: int
        heartbeat_elapsed: int
        learner_heartbeat_elapsed: int
        ticks: int
        _read_states: list[ReadState]
        report_elapsed: int

        def _send(self, m: Message) -> None: ...
        def _note(self, line: str) -> None: ...
        def _become_follower(self, term: int, leader: str | None) -> None: ...

    def _init_leader_state(self) -> None:
        self.progress: dict[str, Progress] = {}
        self.transferee: str | None = None
        self.read_round = 0
        self.reads: list[PendingRead] = []
        self.early_reads: list[PendingRead] = []
        self.commit_dirty = False
        #: learner -> commit index it last reported (relayed learners, leader only)
        self.reported: dict[str, int] = {}
        #: learner -> the tick its last report came in (relayed learners, leader only)
        self.reported_at: dict[str, int] = {}
        #: relayed learners whose relay stopped answering: the leader feeds them itself
        self.adopted: frozenset[str] = frozenset()
        #: the tick since which the leader has watched the current relay tree (an election
        #: or a membership change restarts every relay's grace), and that tree's membership
        self._tree_since = self.ticks
        self._tree_conf: ConfState | None = None
        #: relay: child -> Progress, for the children this learner relays to
        self.relay_progress: dict[str, Progress] = {}
        #: relay: the membership ``relay_progress`` was computed from, and the
        #: commit index last pushed to the children
        self._relay_conf: ConfState | None = None
        self._relay_flushed = 0

    def _reset_leader_state(self) -> None:
        self._init_leader_state()

    def _become_leader(self) -> None:
        self.role = Role.LEADER
        self.leader = self.id
        self._reset_leader_state()
        self._sync_progress()
        self.heartbeat_elapsed = self.election_elapsed = self.learner_heartbeat_elapsed = 0
        self._note(f"{self.id} became leader at term {self.term}")
        self._append([(EntryKind.NOOP, b"")])

    def _sync_progress(self) -> None:
        conf = self.log.conf()
        first = relay_tree(conf.learners, self.cfg.relay_fanout).first_tier
        self.adopted &= conf.learners
        members = (conf.voters | frozenset(first) | self.adopted) - {self.id}
        for p in list(self.progress):
            if p not in members:
                del self.progress[p]
        for p in members:
            if p not in self.progress:
                pr = Progress(self.log.last_index() + 1, self.cfg.max_inflight_msgs)
                pr.recent_active = True
                self.progress[p] = pr

    def _append(self, items: list[tuple[int, bytes]]) -> None:
        first = self.log.last_index() + 1
        self.log.append([Entry(self.term, first + n, k, d) for n, (k, d) in enumerate(items)])
        if any(k == EntryKind.CONF for k, _ in items):
            self._sync_progress()
        for p in sorted(self.progress):
            self._send_append(p, allow_empty=False)

    def _leader_advanced(self) -> None:
        self._maybe_commit()

    def _maybe_commit(self) -> bool:
        """Advance commit from the followers' match; tell everyone when it moves."""
        conf = self.log.conf()
        match = {p: pr.match for p, pr in self.progress.items()}
        match[self.id] = self.log.stable
        first_in_term = self.log.term(self.log.commit) != self.term
        if not self.log.maybe_commit(committed_index(conf.voters, match), self.term):
            return False
        self.commit_dirty = True  # followers hear of it once per Ready (_flush_commit)
        if first_in_term:
            early, self.early_reads = self.early_reads, []
            for r in early:
                self._queue_read(r)
        if self.id not in conf.voters and self.log.commit >= self.log.last_conf_index():
            self._step_down_removed()
        return True

    def _flush_commit(self) -> None:
        """Send the new commit index to every follower that has not had it
        (coalesced: one message per follower per Ready, not per ack)."""
        if self.role != Role.LEADER or not self.commit_dirty:
            return
        self.commit_dirty = False
        for p in sorted(self.progress):
            self._send_append(p, allow_empty=self.progress[p].commit_sent < self.log.commit)

    def _step_down_removed(self) -> None:
        """We committed our own removal: hand over to the most current voter and leave."""
        last = self.log.last_index()
        ready = [p for p in sorted(self.log.conf().voters) if self.progress[p].match == last]
        if ready:
            self._send(TimeoutNow(term=self.term, frm=self.id, to=ready[0]))
        self._note(f"{self.id} removed from the voters; stepping down")
        self._become_follower(self.term, None)

    # --- sending (leader, or a relay to its children) ---------------------------------

    def _table(self) -> dict[str, Progress]:
        """The peers this node sends the log to: followers (leader) or children (relay)."""
        return self.progress if self.role == Role.LEADER else self.relay_progress

    def _limit(self) -> int:
        """The last index this node may send: all of its log (leader) or what is committed (relay)."""
        return self.log.last_index() if self.role == Role.LEADER else self.log.commit

    def _send_append(self, p: str, *, allow_empty: bool) -> None:
        pr = self._table()[p]
        limit = self._limit()
        while pr.state != ProgressState.SNAPSHOT and not pr.paused():
            prev = pr.next - 1
            if prev > limit:
                return  # a relay's child already has more than the relay may forward
            prev_term = self.log.term(prev)
            if prev_term is None:
                if self.snapshot is None:
                    raise SafetyError(f"no entry {prev} and no snapshot for follower {p}")
                pr.become_snapshot(self.snapshot.index)
                self._send_snapshot_chunk(p)
                return
            hi = min(limit + 1, pr.next + self.cfg.max_entries_per_msg)
            ents = self.log.slice(pr.next, hi, self.cfg.max_append_bytes)
            if not ents and not allow_empty:
                return
            if self.role == Role.LEADER:
                self._send(Append(
                    term=self.term, frm=self.id, to=p, prev_index=prev, prev_term=prev_term,
                    entries=tuple(ents), commit=self.log.commit,
                ))
            else:
                self._send(RelayAppend(
                    term=self.term, frm=self.id, to=p, leader=self.leader or "", prev_index=prev,
                    prev_term=prev_term, entries=tuple(ents), commit=self.log.commit,
                ))
            pr.commit_sent = self.log.commit
            pr.sent(ents[-1].index if ents else prev)
            if not ents or pr.state != ProgressState.REPLICATE:
                return
            allow_empty = False

    def _send_snapshot_chunk(self, p: str) -> None:
        snap, pr = self.snapshot, self._table()[p]
        assert snap is not None
        if pr.snap_index != snap.index:
            pr.become_snapshot(snap.index)
        end = pr.snap_offset + self.cfg.snapshot_chunk_bytes
        voters, learners = tuple(sorted(snap.conf.voters)), tuple(sorted(snap.conf.learners))
        chunk, done = snap.data[pr.snap_offset : end], end >= len(snap.data)
        if self.role == Role.LEADER:
            self._send(InstallSnapshot(
                term=self.term, frm=self.id, to=p, index=snap.index, snap_term=snap.term,
                voters=voters, learners=learners, offset=pr.snap_offset, chunk=chunk, done=done,
            ))
        else:
            self._send(RelaySnapshot(
                term=self.term, frm=self.id, to=p, leader=self.leader or "", index=snap.index,
                snap_term=snap.term, voters=voters, learners=learners, offset=pr.snap_offset,
                chunk=chunk, done=done,
            ))
        pr.idle_ticks = 0

    def _bcast_heartbeat(self, *, learners: bool) -> None:
        """Heartbeat the voters, and the learners fed directly too when ``learners``
        (every ``learner_heartbeat_ticks``: they do not vote, and entries and commit
        indexes reach them without waiting for a heartbeat)."""
        voters = self.log.conf().voters
        for p in sorted(self.progress):
            if not learners and p not in voters:
                continue
            commit = min(self.progress[p].match, self.log.commit)
            self._send(Heartbeat(term=self.term, frm=self.id, to=p, commit=commit, read_round=self.read_round))

    # --- responses ----------------------------------------------------------------

    def _on_append_resp(self, m: AppendResp) -> None:
        pr = self._table().get(m.frm)
        if pr is None:
            return
        pr.recent_active = True
        pr.heard = self.ticks
        if m.reject:
            hint, _ = self.log.find_conflict_by_term(m.hint_index, m.hint_term)
            if pr.rejected(m.index, hint):
                if pr.state == ProgressState.REPLICATE:
                    pr.become_probe()
                self._send_append(m.frm, allow_empty=True)
            return
        if pr.state == ProgressState.SNAPSHOT and m.index < pr.snap_index:
            return
        moved = pr.acked(m.index)
        pr.idle_ticks = 0
        if pr.state != ProgressState.REPLICATE:
            pr.match = max(pr.match, m.index)
            pr.become_replicate()
        leading = self.role == Role.LEADER
        if moved and leading and self._maybe_commit() and self.role != Role.LEADER:
            return
        # Tell it about commits it missed while paused (probe, full pipeline).
        missed = pr.commit_sent < min(pr.match, self.log.commit) and not self.commit_dirty
        self._send_append(m.frm, allow_empty=missed)
        if leading and m.frm == self.transferee and pr.match == self.log.last_index():
            self._send(TimeoutNow(term=self.term, frm=self.id, to=m.frm))

    def _on_heartbeat_resp(self, m: HeartbeatResp) -> None:
        pr = self._table().get(m.frm)
        if pr is None:
            return
        pr.recent_active = True
        pr.heard = self.ticks
        pr.probe_sent = False
        if m.read_round > pr.read_round and self.role == Role.LEADER:
            pr.read_round = m.read_round
            self._process_reads()
        if pr.state != ProgressState.SNAPSHOT and pr.match < self._limit():
            self._send_append(m.frm, allow_empty=False)

    def _on_snapshot_resp(self, m: SnapshotResp) -> None:
        pr = self._table().get(m.frm)
        if pr is None or pr.state != ProgressState.SNAPSHOT or m.index != pr.snap_index:
            return
        pr.recent_active = True
        pr.heard = self.ticks
        pr.snap_offset = m.received
        assert self.snapshot is not None
        if m.received < len(self.snapshot.data) or self.snapshot.index != m.index:
            self._send_snapshot_chunk(m.frm)

    # --- ticks ------------------------------------------------------------------

    def _tick_leader(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.cfg.election_ticks:
            self.election_elapsed = 0
            active = {self.id} | {p for p, pr in self.progress.items() if pr.recent_active}
            for pr in self.progress.values():
                pr.recent_active = False
            if not has_quorum(self.log.conf().voters, active):
                self._note(f"{self.id} lost contact with a quorum; stepping down")
                self._become_follower(self.term, None)
                return
            if self.transferee is not None:
                self._note(f"{self.id} gave up transferring leadership to {self.transferee}")
                self.transferee = None
        self.learner_heartbeat_elapsed += 1
        learners = self.learner_heartbeat_elapsed >= self.cfg.learner_heartbeat_ticks
        if learners:
            self.learner_heartbeat_elapsed = 0
        self._adopt_orphans()
        if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks or learners:
            self.heartbeat_elapsed = 0
            self._bcast_heartbeat(learners=learners)
        self._retry_stalled()

    def _adopt_orphans(self) -> None:
        """Feed the children of every relay the leader has not heard from within twice its
        cadence, until it answers again (checked every tick).

        A first-tier relay answers the leader's learner heartbeats; a deeper one (or an
        adopted one) is heard through its MatchReports or its own answers.  After an
        election or a membership change every relay has that long again before its children
        are adopted, so a new leader does not take over the whole tree at once.
        """
        conf = self.log.conf()
        if conf is not self._tree_conf:
            self._tree_conf, self._tree_since = conf, self.ticks
        orphans: set[str] = set()
        if self.cfg.relay_fanout and len(conf.learners) > self.cfg.relay_fanout:
            tree = relay_tree(conf.learners, self.cfg.relay_fanout)
            for relay in tree.relays():
                if relay == self.id or not self._relay_silent(relay):
                    continue
                orphans.update(tree.children(relay))
        adopted = frozenset(orphans - {self.id})
        if adopted == self.adopted:
            return
        gained, lost = sorted(adopted - self.adopted), sorted(self.adopted - adopted)
        self.adopted = adopted
        self._sync_progress()
        if gained:
            self._note(f"{self.id} feeds {', '.join(gained)} itself: their relay stopped answering")
        if lost:
            self._note(f"{self.id} hands {', '.join(lost)} back to their relay")
        for p in gained:
            self._send_append(p, allow_empty=True)

    def _relay_silent(self, relay: str) -> bool:
        """Whether ``relay`` has not been heard from within twice its cadence (``_heard``'s rule),
        counting from the start of the current tree's grace if it has not been heard since."""
        pr = self.progress.get(relay)
        if pr is not None and (pr.heard is not None or relay not in self.adopted):
            heard, cadence = pr.heard, self.cfg.learner_heartbeat_ticks
        else:  # relayed, or adopted and not yet answering the leader: its reports count
            heard, cadence = self.reported_at.get(relay), self.cfg.relay_report_ticks
        last = self._tree_since if heard is None else max(heard, self._tree_since)
        return not self._heard(last, cadence)[1]

    def _retry_stalled(self) -> None:
        """Resend to followers (or children) whose acknowledgements stopped (lost messages).

        Only to a peer heard from within that many ticks: one that is silent (down, cut
        off) drops back to a paused PROBE and gets the entries when it answers its next
        heartbeat, instead of a full batch every few ticks until it is removed.
        """
        limit = 2 * self.cfg.heartbeat_ticks + 1
        last = self._limit()
        table = self._table()
        for p in sorted(table):
            pr = table[p]
            if pr.state != ProgressState.SNAPSHOT and pr.match >= last:
                pr.idle_ticks = 0
                continue
            pr.idle_ticks += 1
            if pr.idle_ticks < limit:
                continue
            pr.idle_ticks = 0
            silent = pr.heard is None or self.ticks - pr.heard >= limit
            if pr.state == ProgressState.SNAPSHOT:
                if not silent:
                    self._send_snapshot_chunk(p)
            else:
                pr.become_probe()
                if silent:
                    pr.probe_sent = True  # paused until it answers a heartbeat (_on_heartbeat_resp)
                else:
                    self._send_append(p, allow_empty=True)

    # --- reads and transfer ---------------------------------------------------------

    def _queue_read(self, r: PendingRead) -> None:
        if self.log.term(self.log.commit) != self.term:
            self.early_reads.append(r)
            return
        self.read_round += 1
        self.reads.append(PendingRead(self.read_round, self.log.commit, r.requester, r.ctx))
        self._process_reads()
        if self.reads:
            self._bcast_heartbeat(learners=False)  # a read is confirmed by the voters

    def _process_reads(self) -> None:
        voters = self.log.conf().voters
        while self.reads:
            r = self.reads[0]
            acked = {p for p in voters if p == self.id or (
                p in self.progress and self.progress[p].read_round >= r.round
            )}
            if not has_quorum(voters, acked):
                return
            self.reads.pop(0)
            if r.requester == self.id:
                self._read_states.append(ReadState(r.ctx, r.index))
            else:
                resp = ReadIndexResp(term=self.term, frm=self.id, to=r.requester, ctx=r.ctx, index=r.index)
                self._send(resp)

    def transfer_leadership(self, target: str) -> None:
        """Hand leadership to voter ``target`` once it has our whole log.

        Proposals are refused until it completes or an election timeout passes.

        Raises:
          NotLeader: this node does not lead.
          ValueError: ``target`` is not a voter.
        """
        if self.role != Role.LEADER:
            raise NotLeader(self.id, self.leader, "leadership transfer")
        if target == self.id:
            return
        if target not in self.log.conf().voters:
            raise ValueError(f"cannot transfer leadership to {target}: it is not a voter")
        self.transferee = target
        self.election_elapsed = 0
        self._note(f"{self.id} transferring leadership to {target}")
        if self.progress[target].match == self.log.last_index():
            self._send(TimeoutNow(term=self.term, frm=self.id, to=target))
        else:
            self._send_append(target, allow_empty=True)

    def _peer_status(self, conf: ConfState) -> tuple[PeerStatus, ...]:
        last = self.log.last_index()
        out = []
        for p, pr in self.progress.items():
            voter = p in conf.voters
            cadence = self.cfg.heartbeat_ticks if voter else self.cfg.learner_heartbeat_ticks
            out.append(PeerStatus(p, pr.match, pr.next, pr.state.value, voter, last - pr.match,
                                  *self._heard(pr.heard, cadence), adopted=p in self.adopted))
        if self.role == Role.LEADER:
            for p in conf.learners - set(self.progress) - {self.id}:
                match = min(self.reported.get(p, 0), last)
                out.append(PeerStatus(p, match, match + 1, "relayed", False, last - match,
                                      *self._heard(self.reported_at.get(p), self.cfg.relay_report_ticks)))
        return tuple(sorted(out, key=lambda s: s.id))

    def _heard(self, heard: int | None, cadence: int) -> tuple[int | None, bool]:
        """(silent_ticks, responsive) of a peer last heard at tick ``heard``, expected every ``cadence``."""
        if heard is None:
            return None, False
        silent = self.ticks - heard
        return silent, silent <= 2 * cadence + 1

    # --- relaying (a learner with children in the relay tree) ---------------------------

    def _relay_sync(self) -> None:
        """Recompute this node's children from the membership in its log."""
        conf = self.log.conf()
        relaying = (
            self.role == Role.FOLLOWER and self.leader is not None and self.cfg.relay_fanout > 0
            and self.id in conf.learners
        )
        if not relaying:
            if self.relay_progress:
                self.relay_progress = {}
            self._relay_conf = None
            return
        if conf is self._relay_conf:
            return
        self._relay_conf = conf
        children = relay_tree(conf.learners, self.cfg.relay_fanout).children(self.id)
        for c in list(self.relay_progress):
            if c not in children:
                del self.relay_progress[c]
        for c in children:
            if c not in self.relay_progress:
                pr = Progress(self.log.commit + 1, self.cfg.max_inflight_msgs)
                self.relay_progress[c] = pr

    def _tick_relay(self) -> None:
        """A non-leader's tick: heartbeat and retry its children; report to the leader."""
        self._relay_sync()
        if self.relay_progress:
            self.heartbeat_elapsed += 1
            if self.heartbeat_elapsed >= self.cfg.learner_heartbeat_ticks:  # children are learners
                self.heartbeat_elapsed = 0
                for p in sorted(self.relay_progress):
                    commit = min(self.relay_progress[p].match, self.log.commit)
                    self._send(RelayHeartbeat(
                        term=self.term, frm=self.id, to=p, leader=self.leader or "", commit=commit,
                    ))
            self._retry_stalled()
        self.report_elapsed += 1
        if self.report_elapsed % self.cfg.relay_report_ticks or self.leader is None:
            return
        conf = self.log.conf()
        if relay_tree(conf.learners, self.cfg.relay_fanout).parent(self.id) is not None:
            self._send(MatchReport(term=self.term, frm=self.id, to=self.leader, index=self.log.commit))

    def _flush_relay(self) -> None:
        """Push a commit index that moved to the children (once per Ready)."""
        if self.role == Role.LEADER:
            return
        self._relay_sync()
        if not self.relay_progress or self.log.commit <= self._relay_flushed:
            return
        self._relay_flushed = self.log.commit
        for p in sorted(self.relay_progress):
            pr = self.relay_progress[p]
            self._send_append(p, allow_empty=pr.commit_sent < self.log.commit)

    def _on_match_report(self, m: MatchReport) -> None:
        if self.role == Role.LEADER and m.frm in self.log.conf().learners:
            self.reported[m.frm] = max(self.reported.get(m.frm, 0), m.index)
            self.reported_at[m.frm] = self.ticks

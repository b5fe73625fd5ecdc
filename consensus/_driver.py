"""RaftNode: the trio driver around :class:`RaftCore` (timers, transport, disk).

Theory of operation
-------------------
One nursery, one task per concern:

* ``_ticker`` turns ``tick_interval_s`` of wall clock into ``tick()`` inputs;
* ``_receiver`` decodes frames from the :class:`Transport` (undecodable or
  forged frames are dropped and counted) into ``step()`` inputs;
* ``_loop`` is the only task that touches the core.  It steps every queued
  input (typed requests: :class:`StepMessage`, :class:`ProposeCommand`, ...), then
  carries out one :class:`Ready` as the actions :func:`plan_ready` orders --
  persist (one fsync: in a worker thread, or inline for one entry or none
  while the node is otherwise idle and its disk fast, see
  ``INLINE_FSYNC_MAX_ENTRIES``; no fsync for a commit-only hard state),
  send, hand committed entries to the applier, ``advance`` -- and repeats.
  The simulation in ``tests/sim/raft`` performs the same actions, so it
  checks this ordering.  Inputs that arrive while the fsync runs are
  stepped together afterwards, so one fsync covers them all (group commit
  driven by the I/O, never by a timer);
* ``_applier`` applies committed entries to the :class:`StateMachine`
  through the session :class:`Applier` and wakes waiting proposers/readers;
* snapshots are serialized and written in worker threads while the loop
  keeps heartbeating (applying pauses meanwhile, replication does not).

Public calls (``propose``, ``read_barrier``, membership, transfer) queue a
request for ``_loop`` and wait; proposals are retried with the same session
sequence number (so they apply once) until ``propose_timeout_s``.
"""

from __future__ import annotations

import logging
import math
import random
import secrets
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, cast

import trio

from ._config import RaftConfig
from ._core import RaftCore
from ._errors import ConfChangeInProgress, NotLeader, ProposalDropped, Unavailable
from ._inbox import (
    CAMPAIGN,
    TICK,
    Campaign,
    CompactLog,
    ConfRequest,
    ProposeCommand,
    ReadRequest,
    Request,
    StepMessage,
    Tick,
    TransferRequest,
    Waiter,
)
from ._messages import ConfChange, ConfOp, DecodeError, Entry, EntryKind, HardState, decode, encode
from ._ready import Advance, AnswerReads, Apply, Persist, Report, Send, plan_ready
from ._sessions import SESSION_EXPIRED, Applier, SessionExpired, StateMachine, encode_command
from ._storage import Storage
from ._transport import Transport
from ._types import CoreStatus, Ready, Role, Snapshot, SoftState

_TIMED_OUT = object()  #: :meth:`RaftNode._until_done` reached its deadline

#: A Ready with at most INLINE_FSYNC_MAX_ENTRIES entries (one client's proposal,
#: a follower's one-entry append, a vote), on a node with at most
#: INLINE_FSYNC_MAX_WAITERS of its own proposals waiting and whose recent log
#: writes took at most INLINE_FSYNC_MAX_S (a moving average), is fsynced on the
#: trio thread: the worker-thread round trip costs more than a fast fdatasync
#: (docs/architecture.md, "What an allocation costs").  Otherwise it goes to a
#: worker thread, so the API keeps reading and proposing the next requests
#: during the fsync (inline, 16 clients through one node lost 8 % of their
#: rate), and a slow disk never stalls the agent's loop (gossip, DNS).
INLINE_FSYNC_MAX_ENTRIES = 1
INLINE_FSYNC_MAX_WAITERS = 1
INLINE_FSYNC_MAX_S = 0.001

log = logging.getLogger("consensus.driver")


@dataclass(frozen=True)
class Applied:
    """An entry applied to the state machine (``result`` is None for non-commands)."""

    index: int
    term: int
    kind: int
    result: bytes | None


@dataclass(frozen=True)
class RoleChanged:
    role: Role
    term: int
    leader: str | None


@dataclass(frozen=True, slots=True)
class NodeStatus(CoreStatus):
    """The core's status plus the driver's counters."""

    dropped_frames: int
    dropped_events: int
    fsyncs: int
    pending_proposals: int


class RaftNode:
    """A Raft member: ``await nursery.start(node.run)``, then use the async API."""

    def __init__(
        self,
        node_id: str,
        *,
        config: RaftConfig,
        transport: Transport,
        storage: Storage,
        state_machine: StateMachine,
        bootstrap: Sequence[str] | None = None,
        rng: random.Random | None = None,
        io_in_thread: bool = True,
    ) -> None:
        """Args:
          node_id: this member's id (as peers address it).
          config: timing and sizes; check ``config.problems()`` first.
          transport: how frames reach peers (meshd: ZeroMQ + CURVE).
          storage: an opened :class:`Storage` (its recovered state is loaded).
          state_machine: the deterministic application.
          bootstrap: founding voters (same list on each founder) for a brand-new
            cluster; ignored when storage already holds state. None to join.
          rng: election jitter source (seed it in tests).
          io_in_thread: run the fsyncs of batches and snapshot serialization in
            worker threads (False runs them inline: only for tests on trio's
            MockClock).
        """
        self.id, self.cfg, self.transport, self.storage = node_id, config, transport, storage
        self.applier = Applier(state_machine, config.max_sessions)
        snap = storage.snapshot
        self.core = RaftCore(
            node_id, config, rng or random.Random(), hard_state=storage.hard_state,
            snapshot=snap, entries=storage.entries(),
        )
        if snap is not None:
            self.applier.restore(snap.data, snap.index)
        if bootstrap is not None and not storage.last_index() and not storage.hard_state.term:
            self.core.bootstrap(list(bootstrap))
        self._inbox: list[Request] = []
        self._wake = trio.Event()
        self._apply_queue: deque[Entry | Snapshot] = deque()
        self._apply_wake = trio.Event()
        self._applied_changed = trio.Event()
        self._snapshot_lock = trio.Lock()
        self._storage_lock = trio.Lock()
        self._snapshotting = False
        #: moving average (1/8 weight) of a synced log write's seconds: ``_fsync_inline`` reads it
        self.save_s = 0.0
        self._cid: str | None = None
        self._register_lock = trio.Lock()
        self._seq = 0
        self._waiters: dict[tuple[str, int], Waiter] = {}
        self._reads: dict[int, Waiter] = {}
        self._attempts: set[Waiter] = set()
        self._read_ctx = 0
        self._conf_waiters: dict[int, tuple[int, Waiter]] = {}
        self._subscribers: list[trio.MemorySendChannel[Applied | RoleChanged]] = []
        self._leader_changed = trio.Event()
        self.dropped_frames = self.dropped_events = 0
        self._blocking = trio.to_thread.run_sync if io_in_thread else _inline
        self._nursery: trio.Nursery | None = None
        self._tick_stride = 1  #: the core's tick_stride() after the last Ready (``_ticker`` reads it)
        self._stride_cut = trio.Event()
        self._peers: dict[str, str] | None = None  #: node id -> address, as set_peers was last told
        self._voters_told: frozenset[str] | None = None  #: the voters the transport last heard of

    # --- lifecycle ------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled.  Storage stays open (the caller closes it)."""
        if self.cfg.initial_election_advance:
            self.core.advance_election_clock()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._ticker)
            nursery.start_soon(self._receiver)
            nursery.start_soon(self._applier)
            nursery.start_soon(self._loop)
            task_status.started()

    def set_peers(self, peers: Mapping[str, str]) -> None:
        """Tell the transport where peers are (node id -> address).  While this node votes, the
        transport keeps the other voters connected (an election's first request must not be
        lost); every other peer is connected to when this node first sends to it."""
        self._peers = dict(peers)
        self._voters_told = None
        self._connect_voters()

    def _connect_voters(self) -> None:
        """Pass the peers on again when the voters changed (a conf entry was appended or undone);
        nothing before :meth:`set_peers` (the transport may have been given its peers directly)."""
        if self._peers is None:
            return
        voters = self.core.log.conf().voters
        if voters == self._voters_told:
            return
        self._voters_told = voters
        self.transport.set_peers(self._peers, voters - {self.id} if self.id in voters else ())

    def subscribe(self, max_buffer: int = 1024) -> trio.MemoryReceiveChannel[Applied | RoleChanged]:
        """A stream of :class:`Applied` and :class:`RoleChanged` events.

        A subscriber that falls ``max_buffer`` events behind loses events
        (counted in ``status().dropped_events``), never stalls the node.
        """
        send, recv = trio.open_memory_channel[Applied | RoleChanged](max_buffer)
        self._subscribers.append(send)
        return recv

    @property
    def is_leader(self) -> bool:
        """Whether this node leads now (one comparison; :meth:`status` builds the whole picture)."""
        return self.core.role == Role.LEADER

    def status(self) -> NodeStatus:
        c = self.core.status()
        core = {f.name: getattr(c, f.name) for f in fields(c)}
        core["applied"] = self.applier.applied
        return NodeStatus(
            **core, dropped_frames=self.dropped_frames, dropped_events=self.dropped_events,
            fsyncs=self.storage.fsyncs, pending_proposals=len(self._waiters),
        )

    # --- public API -------------------------------------------------------------------

    async def propose(self, command: bytes, *, timeout_s: float | None = None) -> bytes:
        """Replicate ``command``, apply it once, and return its result.

        Works on any member (followers forward to the leader).  Retries keep
        the same session number, so the command is applied at most once.

        Raises:
          Unavailable: no result within ``timeout_s`` (default
            ``propose_timeout_s``); the command may or may not be applied.
          SessionExpired: the cluster forgot this node's session; the
            command was not applied now (it may have been before).
        """
        timeout = self.cfg.propose_timeout_s if timeout_s is None else timeout_s
        deadline = trio.current_time() + timeout  # one cancel scope per attempt, none around them: the hot path
        cid = self._cid
        if cid is None:
            with trio.move_on_at(deadline):
                cid = await self._register()
        if cid is not None:
            self._seq += 1
            key, waiter = (cid, self._seq), Waiter()
            self._waiters[key] = waiter
            try:
                below = next(s for c, s in self._waiters if c == cid)  # insertion order is seq order
                env = encode_command(cid, self._seq, below, command)
                result: object = await self._until_done(ProposeCommand(env, waiter), waiter, deadline)
            finally:
                del self._waiters[key]
            if result is SESSION_EXPIRED:
                self._cid = None
                raise SessionExpired(f"raft node {self.id}: session {cid} expired; command not applied")
            if result is not _TIMED_OUT:
                return cast(bytes, result)  # a command's waiter carries the state machine's result
        raise Unavailable(
            f"raft node {self.id}: no result for a proposal within {timeout}s "
            f"(leader {self.core.leader}); it may still be applied"
        )

    async def read_barrier(self, *, timeout_s: float | None = None) -> int:
        """Wait until the local state reflects every write committed before the call.

        Returns the read index.  Local reads after this are linearizable.

        Raises:
          Unavailable: no quorum confirmed leadership within the timeout.
        """
        timeout = self.cfg.propose_timeout_s if timeout_s is None else timeout_s
        with trio.move_on_after(timeout):
            while True:
                self._read_ctx += 1
                ctx, waiter = self._read_ctx, Waiter()
                self._reads[ctx] = waiter
                try:
                    index: int | None = await self._attempt(ReadRequest(ctx, waiter), waiter)
                finally:
                    self._reads.pop(ctx, None)
                if index is not None:
                    await self.wait_applied(index)
                    return index
        raise Unavailable(f"raft node {self.id}: read barrier not confirmed within {timeout}s")

    async def wait_applied(self, index: int) -> None:
        """Wait until the state machine has applied ``index``."""
        while self.applier.applied < index:
            await self._applied_changed.wait()

    async def add_voter(self, node_id: str, *, timeout_s: float | None = None) -> None:
        await self._change(ConfChange(ConfOp.ADD_VOTER, node_id), timeout_s)

    async def add_learner(self, node_id: str, *, timeout_s: float | None = None) -> None:
        await self._change(ConfChange(ConfOp.ADD_LEARNER, node_id), timeout_s)

    async def promote(self, node_id: str, *, timeout_s: float | None = None) -> None:
        await self._change(ConfChange(ConfOp.PROMOTE, node_id), timeout_s)

    async def remove(self, node_id: str, *, timeout_s: float | None = None) -> None:
        await self._change(ConfChange(ConfOp.REMOVE, node_id), timeout_s)

    async def transfer_leadership(self, target: str, *, timeout_s: float | None = None) -> None:
        """Make voter ``target`` the leader (call on the leader).

        Raises:
          NotLeader: this node does not lead.
          Unavailable: ``target`` did not take over within the timeout.
        """
        timeout = self.cfg.propose_timeout_s if timeout_s is None else timeout_s
        waiter = Waiter()
        self._submit(TransferRequest(target, waiter))
        await waiter.event.wait()
        if waiter.error is not None:
            raise waiter.error
        with trio.move_on_after(timeout):
            while self.core.leader != target:
                await self._leader_changed.wait()
            return
        raise Unavailable(f"raft node {self.id}: {target} did not take leadership within {timeout}s")

    async def campaign(self) -> None:
        """Start an election now (e.g. a freshly bootstrapped single node)."""
        self._submit(CAMPAIGN)

    # --- request plumbing -----------------------------------------------------------------

    def _submit(self, item: Request) -> None:
        self._inbox.append(item)
        self._wake.set()

    async def _attempt(self, item: Request, waiter: Waiter, deadline: float = math.inf) -> Any:
        """One try: the waiter's value, or None after an election timeout, a
        leader change or NotLeader (the caller retries), or at ``deadline``."""
        waiter.poke = trio.Event()
        self._attempts.add(waiter)
        self._submit(item)
        try:
            with trio.move_on_at(min(deadline, trio.current_time()
                                     + self.cfg.election_ticks * self.cfg.tick_interval_s)):
                await waiter.poke.wait()
        finally:
            self._attempts.discard(waiter)
        if isinstance(waiter.error, (NotLeader, ProposalDropped)):
            await trio.sleep_until(min(deadline, trio.current_time() + self.cfg.tick_interval_s))
            return None
        if waiter.error is not None:
            raise waiter.error
        return waiter.value if waiter.event.is_set() else None

    async def _until_done(self, item: Request, waiter: Waiter, deadline: float = math.inf) -> Any:
        """The waiter's value once it is set without error; ``_TIMED_OUT`` at ``deadline``."""
        while True:
            value = await self._attempt(item, waiter, deadline)
            if waiter.event.is_set() and waiter.error is None:
                return value
            if trio.current_time() >= deadline:
                return _TIMED_OUT
            if waiter.event.is_set():
                waiter.event, waiter.error = trio.Event(), None

    async def _register(self) -> str:
        if self._cid is not None:  # registered: no lock on every proposal's path
            return self._cid
        async with self._register_lock:
            while self._cid is None:
                nonce = secrets.randbits(62)
                waiter = Waiter()
                self._waiters[("", nonce)] = waiter
                try:
                    env = encode_command("", nonce, 0, b"")
                    self._cid = (await self._until_done(ProposeCommand(env, waiter), waiter)).decode()
                finally:
                    del self._waiters[("", nonce)]
            return self._cid

    async def _change(self, change: ConfChange, timeout_s: float | None) -> None:
        """Propose a membership change on the leader and wait until it is applied.

        Raises:
          NotLeader: this node does not lead (send it to ``leader``).
          ConfChangeInProgress: the previous change is not committed yet.
          Unavailable: not committed within the timeout.
        """
        timeout = self.cfg.propose_timeout_s if timeout_s is None else timeout_s
        waiter = Waiter()
        self._submit(ConfRequest(change, waiter))
        with trio.move_on_after(timeout):
            await waiter.event.wait()
            if waiter.error is not None:
                raise waiter.error
            index, term = waiter.value
            done = Waiter()
            self._conf_waiters[index] = (term, done)
            await done.event.wait()
            if done.error is not None:
                raise done.error
            return
        raise Unavailable(f"raft node {self.id}: membership change {change.op.name} {change.node} "
                          f"not committed within {timeout}s")

    # --- tasks ----------------------------------------------------------------------------

    async def _ticker(self) -> None:
        """One TICK per interval; a leaf learner (``RaftCore.tick_stride``) gets its ticks in
        strides, one wakeup per stride.  ``_loop`` wakes a stride early when the core needs
        single ticks again (promoted, a relay now): the ticks of the cut stride are dropped,
        which only delays that node's report and election clocks."""
        interval = self.cfg.tick_interval_s
        while True:
            stride = self._tick_stride
            if stride == 1:
                await trio.sleep(interval)
                self._submit(TICK)
                continue
            self._stride_cut = trio.Event()
            with trio.move_on_after(stride * interval):
                await self._stride_cut.wait()
            self._submit(TICK if self._stride_cut.is_set() else Tick(stride))

    async def _receiver(self) -> None:
        while True:
            frm, frame = await self.transport.receive()
            try:
                msg = decode(frame)
            except DecodeError as exc:
                self.dropped_frames += 1
                log.debug("dropped frame from=%s reason=%s", frm, exc)
                continue
            if msg.frm != frm:
                self.dropped_frames += 1
                continue
            self._submit(StepMessage(msg))

    async def _loop(self) -> None:
        while True:
            items, self._inbox = self._inbox, []
            proposals = [it for it in items if isinstance(it, ProposeCommand)]
            for item in items:
                if not isinstance(item, ProposeCommand):
                    self._handle(item)
            if proposals:  # one batch: one append per follower, one fsync
                self._propose_batch(proposals)
            if self.core.has_ready():
                await self._handle_ready(self.core.ready())
                self._connect_voters()
                stride = self.core.tick_stride()
                if stride != self._tick_stride:
                    self._tick_stride = stride
                    if stride == 1:
                        self._stride_cut.set()
            elif not self._inbox:
                await self._wake.wait()
                self._wake = trio.Event()

    def _handle(self, item: Request) -> None:
        try:
            match item:
                case StepMessage(msg):
                    self.core.step(msg)
                case Tick(n):
                    for _ in range(n):
                        self.core.tick()
                case Campaign():
                    self.core.campaign()
                case CompactLog(index, data):
                    self._compact(index, data)
                case ReadRequest(ctx, _):
                    self.core.read_index(ctx)
                case ConfRequest(change, waiter):
                    waiter.set((self.core.propose_conf(change), self.core.term))
                case TransferRequest(target, waiter):
                    self.core.transfer_leadership(target)
                    waiter.set()
        except (NotLeader, ProposalDropped, ConfChangeInProgress, ValueError) as exc:
            if isinstance(item, (ReadRequest, ConfRequest, TransferRequest)):
                item.waiter.set(error=exc)
            else:
                raise

    def _propose_batch(self, items: list[ProposeCommand]) -> None:
        try:
            self.core.propose([it.envelope for it in items])
        except (NotLeader, ProposalDropped) as exc:
            for it in items:
                it.waiter.set(error=exc)

    async def _handle_ready(self, rd: Ready) -> None:
        """Carry out ``rd`` as :func:`plan_ready` orders it (the simulation does the same)."""
        for action in plan_ready(rd, leader=self.core.role == Role.LEADER, saved=self.storage.hard_state):
            match action:
                case Persist(hard_state, entries, snapshot, sync=True):
                    async with self._storage_lock:
                        if snapshot is not None:
                            await self._blocking(self.storage.save, hard_state, entries, snapshot)
                        elif self._fsync_inline(entries):
                            self._save_timed(hard_state, entries)
                        else:
                            await self._blocking(self._save_timed, hard_state, entries)
                case Persist(hard_state, sync=False):
                    self.storage.save(hard_state, ())  # the commit index alone: no fsync, no thread
                case Send(messages):
                    for m in messages:
                        await self.transport.send(m.to, encode(m))
                case Apply(snapshot, entries):
                    if snapshot is not None:
                        self._apply_queue.append(snapshot)
                    self._apply_queue.extend(entries)
                    self._apply_wake.set()
                case AnswerReads(read_states):
                    for rs in read_states:
                        w = self._reads.get(rs.ctx)
                        if w is not None:
                            w.set(rs.index)
                case Report(notes, soft_state):
                    self._report(notes, soft_state)
                case Advance(ready):
                    self.core.advance(ready)

    def _fsync_inline(self, entries: tuple[Entry, ...]) -> bool:
        """Persist on the trio thread: a small, fast write while this node has little else to do."""
        return (len(entries) <= INLINE_FSYNC_MAX_ENTRIES and len(self._waiters) <= INLINE_FSYNC_MAX_WAITERS
                and self.save_s <= INLINE_FSYNC_MAX_S)

    def _save_timed(self, hard_state: HardState | None, entries: tuple[Entry, ...]) -> None:
        """``storage.save`` of entries (no snapshot), timed into :attr:`save_s` (runs on either thread)."""
        t0 = time.perf_counter()
        self.storage.save(hard_state, entries)
        self.save_s += (time.perf_counter() - t0 - self.save_s) / 8

    def _report(self, notes: tuple[str, ...], soft: SoftState | None) -> None:
        for line in notes:
            log.info("raft node=%s %s", self.id, line)
        if soft is not None:
            if soft.leader is not None:  # retry forwarded requests at once
                for w in self._attempts:
                    w.poke.set()
            self._publish(RoleChanged(soft.role, soft.term, soft.leader))
            self._leader_changed.set()
            self._leader_changed = trio.Event()

    async def _applier(self) -> None:
        warm_steps = getattr(self.applier.sm, "warm_steps", None)  # optional (StateMachine)
        if warm_steps is not None:  # before the first apply, the loop's other work between steps
            for _ in warm_steps():
                await trio.lowlevel.checkpoint()
        while True:
            if not self._apply_queue:
                await self._apply_wake.wait()
                self._apply_wake = trio.Event()
                continue
            async with self._snapshot_lock:
                batch = list(self._apply_queue)
                self._apply_queue.clear()
                for item in batch:
                    self._apply_one(item)
            self._applied_changed.set()
            self._applied_changed = trio.Event()
            await self._maybe_snapshot()

    def _apply_one(self, item: Entry | Snapshot) -> None:
        if isinstance(item, Snapshot):
            self.applier.restore(item.data, item.index)
            return
        out = self.applier.apply(item)
        result = None
        if out is not None:
            cid, seq, result = out
            w = self._waiters.get((cid, seq))
            if w is not None:
                w.set(result)
        if item.kind == EntryKind.CONF and item.index in self._conf_waiters:
            term, w = self._conf_waiters.pop(item.index)
            if term == item.term:
                w.set()
            else:
                w.set(error=Unavailable("the membership change was lost in a leader change; retry"))
        self._publish(Applied(item.index, item.term, item.kind,
                              result if isinstance(result, bytes) else None))

    def _publish(self, event: Applied | RoleChanged) -> None:
        for ch in self._subscribers:
            try:
                ch.send_nowait(event)
            except trio.WouldBlock:
                self.dropped_events += 1
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._subscribers.remove(ch)
                break

    # --- snapshots ------------------------------------------------------------------------

    async def take_snapshot(self) -> tuple[int, int]:
        """Snapshot the state machine now and compact the log behind it.

        Returns (index, size in bytes) once the snapshot file is durable.
        """
        while self._snapshotting:  # noqa: ASYNC110 (an operator's rare call: a tick-long poll is enough)
            await trio.sleep(self.cfg.tick_interval_s)
        await self._maybe_snapshot(force=True)
        while self._snapshotting:  # noqa: ASYNC110
            await trio.sleep(self.cfg.tick_interval_s / 10)
        snap = self.core.snapshot
        return (snap.index, len(snap.data)) if snap else (0, 0)

    async def _maybe_snapshot(self, force: bool = False) -> None:
        base = self.core.snapshot.index if self.core.snapshot else 0
        due = self.applier.applied - base >= (1 if force else self.cfg.snapshot_every_entries)
        if self._snapshotting or not due:
            return
        self._snapshotting = True
        async with self._snapshot_lock:  # applying pauses; replication does not
            index = self.applier.applied
            data = await self._blocking(self.applier.snapshot)
        self._submit(CompactLog(index, data))

    def _compact(self, index: int, data: bytes) -> None:
        if index <= self.core.log.offset:  # a leader's snapshot got here first
            self._snapshotting = False
            return
        snap = self.core.compact(index, data)
        assert self._nursery is not None
        self._nursery.start_soon(self._write_snapshot, snap)

    async def _write_snapshot(self, snap: Snapshot) -> None:
        try:
            await self._blocking(self.storage.write_snapshot, snap)
            async with self._storage_lock:
                self.storage.compact(snap)
            log.info("raft node=%s snapshot index=%d bytes=%d", self.id, snap.index, len(snap.data))
        finally:
            self._snapshotting = False


async def _inline(fn: Any, *args: Any) -> Any:
    return fn(*args)

"""Deterministic simulation of a Raft cluster built from the real pure core.

One seed decides everything: the cluster size, the fault rates, every delay,
drop, duplicate, partition, crash, torn write and client operation.  Time is
virtual (milliseconds in an event queue), so a run takes a fraction of a
second and replays exactly from its seed.

Each node is a :class:`consensus.RaftCore` plus the real session
:class:`Applier` over a key/value state machine, and a :class:`SimDisk` that
keeps what was written but not yet fsynced separately: a crash keeps a random
prefix of the unsynced writes (the last one possibly torn) and loses the
rest.  A node handles one Ready at a time by carrying out the actions of
:func:`consensus.plan_ready` in order -- the same function the trio driver
runs, so this checks the driver's ordering and durability rule: a
:class:`Persist` with ``sync`` waits for a simulated fsync before the next
action; a commit-only one (``sync=False``) is written and not waited for, and
may be lost in a crash.

Safety is checked while running and at the end; any violation raises
:class:`Violation` naming the seed.  Checks: one leader per term; no node
grants its vote to two candidates in one term (across restarts: term and
vote are durable); log matching; leader completeness; state-machine safety
(same entry applied at an index everywhere); the durable commit index never
goes back across restarts; every acknowledged write applied; a retried
command applied once; each snapshot of an index identical everywhere; final
states equal a fresh replay of the log; the client history is linearizable
(``checker``).

Relay trees: about half the seeds add learners (``l1``...) beside the voters
(``n1``...) with a small ``relay_fanout`` (1-3, so the tree has depth; 0 in
some seeds), keep re-adding them after removals, promote one now and then,
and send client operations to them too (proposals and reads forwarded to the
leader).  Extra check: a relay never forwards an entry that is not committed
-- every entry in a ``RelayAppend`` is the entry the cluster applies at that
index, so a relayed learner only ever holds a prefix of the committed log.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack

from consensus._config import RaftConfig
from consensus._core import RaftCore
from consensus._errors import ConfChangeInProgress, NotLeader, ProposalDropped
from consensus._messages import (
    Append,
    ConfChange,
    ConfOp,
    Entry,
    EntryKind,
    HardState,
    Message,
    RelayAppend,
    VoteResp,
    decode,
    encode,
)
from consensus._ready import Action, Advance, AnswerReads, Apply, Persist, Report, Send, plan_ready
from consensus._sessions import Applier, encode_command
from consensus._types import Ready, Role, Snapshot

from .checker import Op, check_history


class Violation(AssertionError):
    """A Raft safety property failed in a simulated run."""


class KV:
    """The replicated state machine: ``[key, value]`` sets key, returns the old value."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def apply(self, index: int, command: bytes) -> bytes:
        key, value = msgpack.unpackb(command)
        old = self.data.get(key)
        self.data[key] = value
        return msgpack.packb(old)

    def snapshot(self) -> bytes:
        return msgpack.packb(sorted(self.data.items()))

    def restore(self, data: bytes) -> None:
        self.data = {k: v for k, v in msgpack.unpackb(data)}


class SimDisk:
    """Durable state plus the writes not yet fsynced (lost or torn on a crash)."""

    def __init__(self) -> None:
        self.hs = HardState()
        #: the hard state last written, durable or not (the driver's ``storage.hard_state``)
        self.saved = HardState()
        self.snapshot: Snapshot | None = None
        self.entries: list[Entry] = []
        self.pending: list[tuple[str, Any]] = []

    def write(self, p: Persist) -> None:
        if p.snapshot is not None:
            self.pending.append(("install", p.snapshot))
        if p.entries:
            self.pending.append(("entries", list(p.entries)))
        if p.hard_state is not None:
            self.pending.append(("hs", p.hard_state))
            self.saved = p.hard_state

    def sync(self) -> None:
        for op in self.pending:
            self._apply(op)
        self.pending.clear()

    def crash(self, rng: random.Random) -> None:
        keep = rng.randrange(len(self.pending) + 1)
        for op in self.pending[:keep]:
            self._apply(op)
        if keep < len(self.pending) and self.pending[keep][0] == "entries":
            ents = self.pending[keep][1]
            self._apply(("entries", ents[: rng.randrange(len(ents))]))  # torn write
        self.pending.clear()
        self.saved = self.hs

    def _apply(self, op: tuple[str, Any]) -> None:
        kind, x = op
        if kind == "entries" and x:
            self.entries = [e for e in self.entries if e.index < x[0].index] + x
        elif kind == "hs":
            self.hs = x
        elif kind == "install":
            self.snapshot, self.entries = x, []
        elif kind == "compact" and (self.snapshot is None or x.index > self.snapshot.index):
            self.snapshot = x
            self.entries = [e for e in self.entries if e.index > x.index]


@dataclass
class SimNode:
    id: str
    disk: SimDisk = field(default_factory=SimDisk)
    up: bool = True
    busy: bool = False
    incarnation: int = 0
    inbox: list = field(default_factory=list)
    reads: list = field(default_factory=list)  # (client, token, index, key)
    last_commit: int = 0
    core: RaftCore = None  # type: ignore[assignment]
    applier: Applier = None  # type: ignore[assignment]


@dataclass
class Client:
    id: str
    cid: str | None = None  # session id, once registered
    seq: int = 0
    token: int = 0
    op: dict | None = None
    attempts: int = 0


@dataclass
class Params:
    """The faults and sizes one seed picked."""

    nodes: int
    loss: float
    dup: float
    delay_ms: tuple[float, float]
    disk_ms: tuple[float, float]
    crash_mean_ms: float
    partition_mean_ms: float
    transfer_mean_ms: float
    reconf_mean_ms: float
    snapshot_every: int
    trailing: int
    clients: int
    duration_ms: float
    learners: int = 0
    fanout: int = 0

    @classmethod
    def draw(cls, rng: random.Random, duration_ms: float) -> Params:
        return cls(
            nodes=rng.choice([3, 3, 5]),
            loss=rng.choice([0.0, 0.01, 0.05, 0.15]),
            dup=rng.choice([0.0, 0.02, 0.1]),
            delay_ms=rng.choice([(0.2, 1.0), (1.0, 5.0), (0.5, 30.0)]),
            disk_ms=rng.choice([(0.1, 0.5), (0.5, 3.0)]),
            crash_mean_ms=rng.choice([math.inf, 400.0, 150.0]),
            partition_mean_ms=rng.choice([math.inf, 500.0, 150.0]),
            transfer_mean_ms=rng.choice([math.inf, 600.0]),
            reconf_mean_ms=rng.choice([math.inf, math.inf, 300.0]),
            snapshot_every=rng.choice([10, 40, 10_000]),
            trailing=rng.choice([0, 3, 20]),
            clients=rng.choice([2, 4, 6]),
            duration_ms=duration_ms,
            learners=rng.choice([0, 0, 0, 3, 5, 8]),
            fanout=rng.choice([0, 1, 2, 2, 3]),
        )


KEYS = ("a", "b", "c")
SETTLE_MS = 1500.0
#: Regrowing the membership after the faults goes on past half the settle time while it is not whole
#: (an election that split votes for a while under 30 ms delays), for at most this much more
MAX_EXTRA_SETTLE_MS = 3000.0


class Sim:
    def __init__(self, seed: int, duration_ms: float = 1500.0) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.p = Params.draw(self.rng, duration_ms)
        self.cfg = RaftConfig(
            tick_interval_s=0.01, election_ticks=10, heartbeat_ticks=1, max_entries_per_msg=8,
            max_inflight_msgs=4, snapshot_chunk_bytes=200, snapshot_trailing_entries=self.p.trailing,
            relay_fanout=self.p.fanout, relay_report_ticks=5,
        )
        self.now = 0.0
        self._q: list[tuple[float, int, Callable, tuple]] = []
        self._seq = 0
        self.faulty = True
        self.cut: set[frozenset[str]] = set()
        ids = [f"n{i}" for i in range(1, self.p.nodes + 1)]
        self.learner_ids = [f"l{i}" for i in range(1, self.p.learners + 1)]
        self.nodes = {i: SimNode(i) for i in ids + self.learner_ids}
        for n in self.nodes.values():
            self._boot(n, bootstrap=ids if n.id in ids else None)
        self.clients = [Client(f"c{i}") for i in range(self.p.clients)]
        self.history: list[Op] = []
        self.leaders: dict[int, str] = {}
        self.applied: dict[int, tuple[int, int, bytes]] = {}
        self.applied_at: dict[tuple[str, int], int] = {}
        self.acked: set[tuple[str, int]] = set()
        self.snap_hash: dict[int, bytes] = {}
        self.votes: dict[tuple[str, int], str] = {}  # (voter, term) -> the candidate it granted
        self.relayed: dict[int, tuple[int, int, bytes]] = {}  # index -> entry a relay forwarded
        self.stats = {"msgs": 0, "dropped": 0, "crashes": 0, "restores": 0, "ops": 0,
                      "conf_changes": 0, "relayed": 0, "adopted": 0}

    # --- event queue --------------------------------------------------------------

    def at(self, delay_ms: float, fn: Callable, *args: Any) -> None:
        self._seq += 1
        heapq.heappush(self._q, (self.now + delay_ms, self._seq, fn, args))

    def run(self) -> dict:
        for n in self.nodes.values():
            self.at(self.rng.uniform(0, 10), self._tick, n, n.incarnation)
        for c in self.clients:
            self.at(self.rng.uniform(0, 50), self._next_op, c)
        self._schedule_faults()
        if self.learner_ids:
            self.at(30, self._add_learners)
        self.at(self.p.duration_ms, self._end_faults)
        self.end = self.p.duration_ms + SETTLE_MS
        while self._q and self._q[0][0] <= self.end:
            t, _, fn, args = heapq.heappop(self._q)
            self.now = t
            fn(*args)
        self._final_checks()
        return self.stats

    def fail(self, what: str) -> None:
        raise Violation(f"seed {self.seed} at t={self.now:.1f}ms: {what}")

    # --- nodes ------------------------------------------------------------------------

    def _boot(self, n: SimNode, bootstrap: list[str] | None = None) -> None:
        d = n.disk
        n.core = RaftCore(
            n.id, self.cfg, random.Random(self.rng.random()), hard_state=d.hs,
            snapshot=d.snapshot, entries=[e for e in d.entries if not d.snapshot or e.index > d.snapshot.index],
        )
        n.applier = Applier(KV())
        if d.snapshot is not None:
            n.applier.restore(d.snapshot.data, d.snapshot.index)
        if bootstrap is not None:
            n.core.bootstrap(bootstrap)
        if n.core.log.commit < n.last_commit and d.hs.commit < n.last_commit:
            self.fail(f"{n.id} restarted with commit {d.hs.commit} < durable {n.last_commit}")

    def _input(self, n: SimNode, item: tuple) -> None:
        if not n.up:
            return
        n.inbox.append(item)
        if not n.busy:
            self._drain(n)

    def _drain(self, n: SimNode) -> None:
        while n.inbox and not n.busy:
            items, n.inbox = n.inbox, []
            for item in items:
                self._handle(n, item)
            self._process_ready(n)
        if not n.busy:
            self._process_ready(n)

    def _handle(self, n: SimNode, item: tuple) -> None:
        kind = item[0]
        if kind == "msg":
            n.core.step(item[1])
        elif kind == "tick":
            for _ in range(item[1]):
                n.core.tick()
        elif kind == "propose":
            try:
                n.core.propose([item[2]])
            except (NotLeader, ProposalDropped):
                self.at(self._delay(), self._retry_soon, item[1], item[3])
        elif kind == "read":
            try:
                n.core.read_index(item[2])
            except NotLeader:
                self.at(self._delay(), self._retry_soon, item[1], item[3])
        elif kind == "conf":
            if n.core.role.value == "leader":
                try:
                    n.core.propose_conf(item[1])
                except (ConfChangeInProgress, ProposalDropped):
                    pass  # a refused change is a legal outcome; the run goes on
        elif kind == "transfer":
            if n.core.role.value == "leader" and item[1] in n.core.log.conf().voters:
                n.core.transfer_leadership(item[1])

    def _process_ready(self, n: SimNode) -> None:
        if n.busy or not n.core.has_ready():
            return
        rd = n.core.ready()
        self._check_ready(n, rd)
        actions = plan_ready(rd, leader=n.core.role == Role.LEADER, saved=n.disk.saved)
        n.busy = True
        self._carry_out(n, n.incarnation, actions)

    def _carry_out(self, n: SimNode, inc: int, actions: tuple[Action, ...]) -> None:
        """Perform ``actions`` in order; a synced Persist waits for its fsync first."""
        for i, action in enumerate(actions):
            match action:
                case Persist(sync=sync):
                    n.disk.write(action)
                    if sync:
                        self.at(self.rng.uniform(*self.p.disk_ms), self._fsynced, n, inc, actions[i + 1 :])
                        return
                case Send(messages):
                    for m in messages:
                        self._send(n, m)
                case Apply(snapshot, entries):
                    if snapshot is not None:
                        self._restore(n, snapshot)
                    for e in entries:
                        self._apply(n, e)
                case AnswerReads(read_states):
                    for rs in read_states:
                        for r in n.reads:
                            if r[1] == rs.ctx:
                                r[2] = rs.index
                case Report():
                    pass  # roles are checked in _check_ready
                case Advance(ready):
                    n.core.advance(ready)
        n.busy = False
        self._answer_reads(n)
        self._maybe_snapshot(n)
        self._drain(n)

    def _fsynced(self, n: SimNode, inc: int, rest: tuple[Action, ...]) -> None:
        if inc != n.incarnation:
            return
        n.disk.sync()
        n.last_commit = max(n.last_commit, n.disk.hs.commit)
        self._carry_out(n, inc, rest)

    def _tick(self, n: SimNode, inc: int) -> None:
        if inc != n.incarnation or not n.up:
            return
        stride = n.core.tick_stride()  # as RaftNode._ticker: a leaf learner's ticks come in strides
        self._input(n, ("tick", stride))
        self.at(stride * self.cfg.tick_interval_s * 1000, self._tick, n, inc)

    # --- network ----------------------------------------------------------------------

    def _delay(self) -> float:
        return self.rng.uniform(*self.p.delay_ms)

    def _send(self, n: SimNode, m: Message) -> None:
        if isinstance(m, VoteResp) and m.granted and not m.pre:
            other = self.votes.setdefault((n.id, m.term), m.to)
            if other != m.to:
                self.fail(f"{n.id} voted for {other} and for {m.to} in term {m.term}")
        if isinstance(m, RelayAppend):
            self._check_relayed(n, m)
        elif isinstance(m, Append) and m.to in n.core.adopted:
            self.stats["adopted"] += 1  # the leader feeds a learner whose relay went silent
        self.stats["msgs"] += 1
        if self.faulty and (self.rng.random() < self.p.loss or frozenset((m.frm, m.to)) in self.cut):
            self.stats["dropped"] += 1
            return
        if m.to not in self.nodes:
            return
        copies = 2 if self.faulty and self.rng.random() < self.p.dup else 1
        for _ in range(copies):
            self.at(self._delay(), self._deliver, m)

    def _deliver(self, m: Message) -> None:
        if self.rng.random() < 0.05:
            m = decode(encode(m))  # exercise the real codec on a sample of traffic
        self._input(self.nodes[m.to], ("msg", m))

    # --- applying and checking ----------------------------------------------------------

    def _apply(self, n: SimNode, e: Entry) -> None:
        seen = self.applied.get(e.index)
        if seen is None:
            self.applied[e.index] = (e.term, e.kind, e.data)
            self.stats["conf_changes"] += e.kind == EntryKind.CONF
        elif seen != (e.term, e.kind, e.data):
            self.fail(f"{n.id} applied {e} at {e.index} but another node applied {seen}")
        before = n.applier.applied_commands
        out = n.applier.apply(e)
        if out is None:
            return
        cid, seq, result = out
        if n.applier.applied_commands > before:
            first = self.applied_at.setdefault((cid, seq), e.index)
            if first != e.index:
                self.fail(f"command {cid}/{seq} applied twice, at {first} and {e.index}")
        self._complete_write(n, cid, seq, result)

    def _check_relayed(self, n: SimNode, m: RelayAppend) -> None:
        """A relay forwards committed entries only (checked again once all is applied)."""
        if m.entries and m.entries[-1].index > n.core.log.commit:
            self.fail(f"relay {n.id} forwarded index {m.entries[-1].index} beyond its commit "
                      f"{n.core.log.commit}")
        for e in m.entries:
            self.stats["relayed"] += 1
            got = (e.term, e.kind, e.data)
            if self.relayed.setdefault(e.index, got) != got:
                self.fail(f"relays forwarded two different entries at {e.index}")
            seen = self.applied.get(e.index)
            if seen is not None and seen != got:
                self.fail(f"relay {n.id} forwarded {e} but {seen} was applied at {e.index}")

    def _restore(self, n: SimNode, snap: Snapshot) -> None:
        self.stats["restores"] += 1
        n.applier = Applier(KV())
        n.applier.restore(snap.data, snap.index)
        if n.applier.snapshot() != snap.data:
            self.fail(f"{n.id}: snapshot {snap.index} does not round-trip")
        self._check_snapshot(n, snap.index, snap.data)

    def _check_snapshot(self, n: SimNode, index: int, data: bytes) -> None:
        h = hashlib.sha256(data).digest()
        if self.snap_hash.setdefault(index, h) != h:
            self.fail(f"{n.id}: snapshot at {index} differs from another node's snapshot at {index}")

    def _maybe_snapshot(self, n: SimNode) -> None:
        core = n.core
        base = core.snapshot.index if core.snapshot else 0
        if core.log.applied - base < self.p.snapshot_every:
            return
        data = n.applier.snapshot()
        self._check_snapshot(n, core.log.applied, data)
        snap = core.compact(core.log.applied, data)
        n.disk.pending.append(("compact", snap))

    def _check_ready(self, n: SimNode, rd: Ready) -> None:
        if rd.hard_state is not None and rd.hard_state.commit < n.last_commit:
            self.fail(f"{n.id}: commit went back to {rd.hard_state.commit} from {n.last_commit}")
        if rd.soft_state is not None and rd.soft_state.role.value == "leader":
            term = rd.soft_state.term
            other = self.leaders.setdefault(term, n.id)
            if other != n.id:
                self.fail(f"two leaders in term {term}: {other} and {n.id}")
            self._check_leader_complete(n)

    def _check_leader_complete(self, n: SimNode) -> None:
        log = n.core.log
        for index, (term, _kind, data) in self.applied.items():
            if index <= log.offset:
                continue
            if log.term(index) != term or log.entry(index).data != data:
                self.fail(f"new leader {n.id} (term {n.core.term}) lacks committed entry {index}")

    # --- faults -----------------------------------------------------------------------------

    def _schedule_faults(self) -> None:
        for mean, fn in (
            (self.p.crash_mean_ms, self._crash),
            (self.p.partition_mean_ms, self._partition),
            (self.p.transfer_mean_ms, self._transfer),
            (self.p.reconf_mean_ms, self._reconfigure),
        ):
            if mean != math.inf:
                self.at(self.rng.expovariate(1 / mean), self._fault, fn, mean)

    def _fault(self, fn: Callable, mean: float) -> None:
        if not self.faulty:
            return
        fn()
        self.at(self.rng.expovariate(1 / mean), self._fault, fn, mean)

    def _crash(self) -> None:
        n = self.rng.choice(sorted(self.nodes.values(), key=lambda x: x.id))
        if not n.up:
            return
        self.stats["crashes"] += 1
        n.up, n.busy, n.inbox, n.reads = False, False, [], []
        n.incarnation += 1
        n.disk.crash(self.rng)
        self.at(self.rng.uniform(20, 400), self._restart, n)

    def _restart(self, n: SimNode) -> None:
        if n.up:
            return
        n.up = True
        self._boot(n)
        if self.cfg.initial_election_advance and self.rng.random() < 0.5:  # as RaftNode.run does
            n.core.advance_election_clock()
        self.at(self.rng.uniform(0, 10), self._tick, n, n.incarnation)
        self._drain(n)

    def _partition(self) -> None:
        ids = sorted(self.nodes)
        leaders = [i for i in ids if self.nodes[i].core.role.value == "leader"]
        if leaders and self.rng.random() < 0.5:  # cut the leader off, with a friend or not
            side = {leaders[-1]} | set(self.rng.sample(ids, self.rng.randrange(0, 2)))
        else:
            side = set(self.rng.sample(ids, self.rng.randrange(1, len(ids))))
        self.cut = {frozenset((a, b)) for a in side for b in ids if b not in side}
        self.at(self.rng.uniform(50, 600), self._heal)

    def _heal(self) -> None:
        self.cut = set()

    def _transfer(self) -> None:
        target = self.rng.choice(sorted(self.nodes))
        for n in self.nodes.values():
            self._input(n, ("transfer", target))

    def _reconfigure(self, grow_only: bool = False) -> None:
        """One single-server change towards a random membership (leader only)."""
        leaders = [n for n in self.nodes.values() if n.up and n.core.role.value == "leader"]
        if not leaders:
            return
        conf = leaders[0].core.log.conf()
        outside = sorted(set(self.nodes) - conf.members())
        # voters-to-be are promoted; learners (l...) stay learners, but now and then one is promoted
        promote = sorted(x for x in conf.learners if x not in self.learner_ids or (
            not grow_only and self.rng.random() < 0.1))
        if outside:
            change = ConfChange(ConfOp.ADD_LEARNER, self.rng.choice(outside))
        elif promote:
            change = ConfChange(ConfOp.PROMOTE, self.rng.choice(promote))
        elif not grow_only and conf.learners and self.rng.random() < 0.5:
            change = ConfChange(ConfOp.REMOVE, self.rng.choice(sorted(conf.learners)))
        elif len(conf.voters) >= 3 and not grow_only:
            change = ConfChange(ConfOp.REMOVE, self.rng.choice(sorted(conf.voters)))
        else:
            return
        self._input(leaders[0], ("conf", change))

    def _add_learners(self) -> None:
        """Keep proposing the missing learners (one change at a time, as Raft allows)."""
        leaders = [n for n in self.nodes.values() if n.up and n.core.role.value == "leader"]
        if leaders:
            members = leaders[0].core.log.conf().members()
            missing = [x for x in self.learner_ids if x not in members]
            if missing:
                self._input(leaders[0], ("conf", ConfChange(ConfOp.ADD_LEARNER, missing[0])))
        if self.now < self.p.duration_ms + SETTLE_MS / 2:
            self.at(40, self._add_learners)

    def _regrow(self) -> None:
        """After the faults: bring every node back as a voter.

        Until half the settle time; past it while the membership is not whole yet, each time
        moving the end of the run to half a settle time later (at most MAX_EXTRA_SETTLE_MS)."""
        self._reconfigure(grow_only=True)
        half = self.p.duration_ms + SETTLE_MS / 2
        if self.now < half:
            self.at(50, self._regrow)
        elif not self._whole() and self.now < half + MAX_EXTRA_SETTLE_MS:
            self.end = max(self.end, self.now + 50 + SETTLE_MS / 2)
            self.at(50, self._regrow)

    def _whole(self) -> bool:
        """One leader whose membership has every voter-to-be as a voter and every learner."""
        leaders = [n for n in self.nodes.values() if n.up and n.core.role.value == "leader"]
        if len(leaders) != 1:
            return False
        conf = leaders[0].core.log.conf()
        return (set(self.nodes) - set(self.learner_ids)) <= conf.voters and set(self.nodes) <= conf.members()

    def _end_faults(self) -> None:
        self.faulty = False
        self.cut = set()
        for n in self.nodes.values():
            if not n.up:
                self._restart(n)
        self._regrow()

    # --- clients -------------------------------------------------------------------------

    def _next_op(self, c: Client) -> None:
        if self.now > self.p.duration_ms:
            return
        c.token += 1
        c.attempts = 0
        key = self.rng.choice(KEYS)
        if c.cid is None:
            nonce = self.rng.getrandbits(40)
            c.op = {"kind": "register", "key": "", "seq": nonce, "call": self.now,
                    "env": encode_command("", nonce, 0, b"")}
        elif self.rng.random() < 0.6:
            c.seq += 1
            value = f"{c.id}:{c.seq}"
            c.op = {"kind": "swap", "key": key, "arg": value, "call": self.now, "seq": c.seq,
                    "env": encode_command(c.cid, c.seq, c.seq, msgpack.packb([key, value]))}
        else:
            c.op = {"kind": "read", "key": key, "arg": None, "call": self.now}
        self.stats["ops"] += 1
        self._attempt(c, c.token)

    def _attempt(self, c: Client, token: int) -> None:
        if token != c.token or c.op is None:
            return
        c.attempts += 1
        if c.attempts > 8:
            self._give_up(c)
            return
        n = self.nodes[self.rng.choice(sorted(self.nodes))]
        c.op["node"] = n.id
        c.op["ctx"] = hash((c.id, token, c.attempts)) & 0x7FFFFFFF
        if c.op["kind"] != "read":
            self.at(self._delay(), self._input, n, ("propose", c, c.op["env"], token))
        else:
            n.reads.append([c, c.op["ctx"], None, c.op["key"]])
            self.at(self._delay(), self._input, n, ("read", c, c.op["ctx"], token))
        self.at(150 + 30 * c.attempts, self._attempt, c, token)

    def _retry_soon(self, c: Client, token: int) -> None:
        if token == c.token and c.op is not None:
            c.token += 1  # cancel the pending timeout of the failed attempt
            self.at(self.rng.uniform(5, 30), self._attempt, c, c.token)

    def _give_up(self, c: Client) -> None:
        op = c.op
        assert op is not None
        if op["kind"] == "swap":  # outcome unknown: it may still happen
            self.history.append(Op(c.id, op["key"], "swap", op["arg"], None, op["call"]))
        c.op = None
        self.at(self.rng.uniform(1, 20), self._next_op, c)

    def _complete_write(self, n: SimNode, cid: str, seq: int, result: Any) -> None:
        for c in self.clients:
            op = c.op
            if not op or op["kind"] == "read" or op["seq"] != seq or op["node"] != n.id:
                continue
            if op["kind"] == "register" and cid == "":
                c.cid = result.decode()
                c.op = None
                self.at(self.rng.uniform(0, 20), self._next_op, c)
            elif op["kind"] == "swap" and c.cid == cid:
                if not isinstance(result, bytes):
                    self.fail(f"{cid}/{seq}: unexpected result {result!r}")
                self.acked.add((cid, seq))
                self.at(self._delay(), self._respond, c, c.token, msgpack.unpackb(result))

    def _answer_reads(self, n: SimNode) -> None:
        keep = []
        for r in n.reads:
            c, ctx, index, key = r
            if index is not None and n.core.log.applied >= index:
                if c.op and c.op.get("ctx") == ctx:
                    self.at(self._delay(), self._respond, c, c.token, n.applier.sm.data.get(key))
            else:
                keep.append(r)
        n.reads = keep

    def _respond(self, c: Client, token: int, result: Any) -> None:
        if token != c.token or c.op is None:
            return
        op = c.op
        self.history.append(Op(c.id, op["key"], op["kind"], op["arg"], result, op["call"], self.now))
        c.op = None
        self.at(self.rng.uniform(0, 20), self._next_op, c)

    # --- final checks -------------------------------------------------------------------

    def _final_checks(self) -> None:
        nodes = sorted(self.nodes.values(), key=lambda x: x.id)
        self._check_log_matching(nodes)
        leaders = [n.id for n in nodes if n.core.role.value == "leader"]
        if len(leaders) != 1:
            self.fail(f"after settling, leaders are {leaders} (want exactly one)")
        commit = self.nodes[leaders[0]].core.log.commit
        for n in nodes:
            if n.core.log.applied != commit:
                self.fail(f"after settling {n.id} applied {n.core.log.applied}, leader commit {commit}")
        replay = Applier(KV())
        for index in range(1, commit + 1):
            if index not in self.applied:
                self.fail(f"index {index} <= commit {commit} was never applied anywhere")
            term, kind, data = self.applied[index]
            replay.apply(Entry(term, index, kind, data))
        want = replay.snapshot()
        for n in nodes:
            if n.applier.snapshot() != want:
                self.fail(f"{n.id}'s final state differs from a replay of the log")
        for index, entry in self.relayed.items():
            if index > commit or self.applied[index] != entry:
                self.fail(f"a relay forwarded index {index}, which is not the committed entry there")
        missing = self.acked - set(self.applied_at)
        if missing:
            self.fail(f"acknowledged commands missing from the state: {sorted(missing)[:5]}")
        problems = check_history(self.history)
        if problems:
            self.fail(problems[0])

    def _check_log_matching(self, nodes: list[SimNode]) -> None:
        for i, a in enumerate(nodes):
            for b in nodes[i + 1 :]:
                la, lb = a.core.log, b.core.log
                lo = max(la.offset, lb.offset) + 1
                hi = min(la.last_index(), lb.last_index())
                match = [k for k in range(lo, hi + 1) if la.term(k) == lb.term(k)]
                if not match:
                    continue
                for k in range(lo, match[-1] + 1):
                    if la.entry(k) != lb.entry(k):
                        self.fail(f"log matching: {a.id} and {b.id} differ at {k} below {match[-1]}")

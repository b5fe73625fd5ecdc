"""Fan-out measurement: one leader, thousands of learners, real cores, no faults.

``python -m tests.sim.raft --scale 10000 [--fanout 16]`` prints one JSON line.

Every host is a real :class:`consensus.RaftCore` started from one snapshot
whose membership is ``voters`` voters and ``n - voters`` learners (as if the
hosts had joined long ago); ``n1`` is elected, the relay tree settles, then
the leader is given ``rate`` proposals per second for ``seconds`` seconds.
Each proposal is a real log entry the size of a meshd endpoint connect
(a session envelope around ``meshd.state.Connect`` with a 64-character
container id; :func:`connect_entry`).

The model of a host (stated, not measured): it handles what arrived while it
was busy as one batch (as the driver does); each message stepped or sent
costs ``proc_us`` of its CPU; a Ready with entries or a new term waits for a
``fsync_ms`` fsync (:func:`consensus.plan_ready` decides, as everywhere);
each hop takes a uniform ``delay_ms`` on the wire.  Heartbeats and relay
heartbeats run as configured (``RaftConfig.lan()``: 100 ms tick, one
heartbeat per tick).

Figures (for the entries proposed in the measured window):

- ``leader_sends_per_entry``: how many times each entry left the leader
  (entries in its Append messages / entries);
- ``leader_msgs_per_s``: every message the leader sent, heartbeats included;
- ``apply_p99_s`` / ``apply_all_p99_s``: p99 over entries of the time from
  the proposal until 99 % / 100 % of the hosts applied it (``_p50_s`` too);
- ``bytes_per_host_per_s``: Raft bytes sent + received per host per second
  (encoded frames, heartbeats included): mean, max, and the leader's;
- ``leader_cpu_load``: the leader's modelled CPU time per second (1.0 = one
  core busy; above 1 it falls behind without bound), ``host_cpu_load_mean``.

With ``kill_relay`` (``--kill-relay``) the first relay of the tree (the first
learner of the first tier) crashes as the measured window opens: it neither
receives nor sends from then on, as after ``kill -9``.  The apply figures then
count the live hosts only, and ``orphans`` / ``orphans_apply_all_p99_s`` are
the hosts below it in the tree and the p99 over entries of the time until all
of them applied the entry (the leader feeds a silent relay's children itself
after twice the learner heartbeat: ``consensus._relay``).

A figure is null when some measured entry had not reached the mark when the
run stopped (5 s after the last proposal).  Byte and CPU figures are over
everything from the first proposal to the end of the run.
"""

from __future__ import annotations

import heapq
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from consensus._config import RaftConfig
from consensus._core import RaftCore
from consensus._messages import Append, ConfState, HardState, Message, encode
from consensus._ready import Advance, Apply, Persist, Send, plan_ready
from consensus._relay import relay_tree
from consensus._sessions import Applier, encode_command
from consensus._types import Role, Snapshot

from .sim import KV


def connect_entry() -> bytes:
    """The data of a log entry that connects one container (meshd's real encoding)."""
    from meshd import state

    cmd = state.Connect(
        endpoint_id="3f6c1d2e9a7b4c5d8e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d",
        network="tenant-a-frontend", host="host-04711", ip="10.42.17.201", mac="02:42:0a:2a:11:c9",
        name="web-7f9c",
    )
    return encode_command("h04711-1700000000123", 4242, 4241, state.encode_command(cmd))


@dataclass
class Host:
    core: RaftCore
    busy_until: float = 0.0
    inbox: list = field(default_factory=list)
    scheduled: bool = False
    bytes: int = 0
    cpu_ms: float = 0.0
    saved: HardState = HardState()


class ScaleSim:
    def __init__(self, n: int, *, voters: int = 5, fanout: int = 16, rate: float = 20.0,
                 seconds: float = 5.0, delay_ms: tuple[float, float] = (0.2, 1.0), proc_us: float = 20.0,
                 fsync_ms: float = 0.5, seed: int = 1, kill_relay: bool = False) -> None:
        self.n, self.fanout, self.rate, self.seconds = n, fanout, rate, seconds
        self.delay_ms, self.proc_ms, self.fsync_ms = delay_ms, proc_us / 1000, fsync_ms
        self.rng = random.Random(seed)
        self.cfg = RaftConfig(relay_fanout=fanout, snapshot_every_entries=1 << 30)
        self.tick_ms = self.cfg.tick_interval_s * 1000
        ids = [f"h{i:05d}" for i in range(n)]
        conf = ConfState(frozenset(ids[:voters]), frozenset(ids[voters:]))
        tree = relay_tree(conf.learners, fanout)
        self.tree_depth = tree.depth()
        #: the relay that crashes as the window opens (kill_relay), and every host below it
        self.victim = tree.relays()[0] if kill_relay and tree.relays() else None
        self.orphans: set[str] = set()
        todo = list(tree.children(self.victim)) if self.victim else []
        while todo:
            x = todo.pop()
            self.orphans.add(x)
            todo.extend(tree.children(x))
        self.dead: set[str] = set()
        snap = Snapshot(1, 1, conf, Applier(KV()).snapshot())
        self.hosts = {
            i: Host(RaftCore(i, self.cfg, random.Random(self.rng.random()), snapshot=snap)) for i in ids
        }
        self.leader_id = ids[0]
        self.entry = connect_entry()
        self.now = 0.0
        self._q: list[tuple[float, int, Callable, tuple]] = []
        self._seq = 0
        self.proposed: dict[int, float] = {}  # index -> proposal time (measured entries)
        self.applied: dict[int, list[float]] = {}
        self.applied_by: dict[int, dict[str, float]] = {}  # index -> orphan -> when (kill_relay)
        self.leader_entry_sends = 0
        self.leader_msgs = 0
        self.window: tuple[float, float] = (math.inf, math.inf)

    def at(self, t: float, fn: Callable, *args: Any) -> None:
        self._seq += 1
        heapq.heappush(self._q, (t, self._seq, fn, args))

    def run(self) -> dict:
        t0 = time.monotonic()
        for h in self.hosts.values():
            self.at(self.rng.uniform(0, self.tick_ms), self._tick, h)
        self.hosts[self.leader_id].inbox.append(("campaign",))
        self._wake(self.hosts[self.leader_id], 0.0)
        warmup = 3000.0  # elected, tree settled
        self.window = (warmup, warmup + self.seconds * 1000)
        self.at(warmup, self._start_window)
        t = warmup
        while t < self.window[1]:
            self.at(t, self._propose)
            t += 1000 / self.rate
        end = self.window[1] + 5000.0
        while self._q and self._q[0][0] <= end:
            self.now, _, fn, args = heapq.heappop(self._q)
            fn(*args)
            if self.now > self.window[1] and self._all_applied():
                break
        return self._figures(time.monotonic() - t0)

    # --- hosts ---------------------------------------------------------------------

    def _tick(self, h: Host) -> None:
        h.inbox.append(("tick",))
        self._wake(h, self.now)
        if self.now < self.window[1] + 5000.0:
            self.at(self.now + self.tick_ms, self._tick, h)

    def _start_window(self) -> None:
        if self.victim is not None:
            self.dead.add(self.victim)
        for h in self.hosts.values():
            h.bytes, h.cpu_ms = 0, 0.0

    def _propose(self) -> None:
        leader = self.hosts[self.leader_id]
        leader.inbox.append(("propose", self.now))
        self._wake(leader, self.now)

    def _wake(self, h: Host, t: float) -> None:
        if not h.scheduled:
            h.scheduled = True
            self.at(max(t, h.busy_until), self._process, h)

    def _process(self, h: Host) -> None:
        h.scheduled = False
        if h.core.id in self.dead:
            h.inbox.clear()
            return
        core, cost, disk = h.core, 0.0, 0.0
        items, h.inbox = h.inbox, []
        for item in items:
            if item[0] == "msg":
                core.step(item[1])
                cost += self.proc_ms
            elif item[0] == "tick":
                core.tick()
            elif item[0] == "campaign":
                core.campaign()
            elif item[0] == "propose" and core.role == Role.LEADER:
                core.propose([self.entry])
                self.proposed[core.log.last_index()] = item[1]  # when the client asked
        while core.has_ready():
            rd = core.ready()
            leader = core.role == Role.LEADER
            for action in plan_ready(rd, leader=leader, saved=h.saved):
                if isinstance(action, Persist):
                    h.saved = action.hard_state or h.saved
                    disk += self.fsync_ms if action.sync else 0.0
                elif isinstance(action, Send):
                    for m in action.messages:
                        cost += self.proc_ms
                        self._send(h, m, self.now + cost + disk, leader)
                elif isinstance(action, Apply):
                    done = self.now + cost + disk
                    for e in action.entries:
                        if e.index in self.proposed:
                            self.applied.setdefault(e.index, []).append(done)
                            if core.id in self.orphans:
                                self.applied_by.setdefault(e.index, {})[core.id] = done
                elif isinstance(action, Advance):
                    core.advance(action.ready)
        h.busy_until = self.now + cost + disk
        h.cpu_ms += cost
        if h.inbox:
            self._wake(h, h.busy_until)

    def _send(self, h: Host, m: Message, t: float, leader: bool) -> None:
        size = len(encode(m))
        h.bytes += size
        if leader:
            self.leader_msgs += 1
            if isinstance(m, Append):
                self.leader_entry_sends += sum(1 for e in m.entries if e.index in self.proposed)
        self.at(t + self.rng.uniform(*self.delay_ms), self._deliver, m, size)

    def _deliver(self, m: Message, size: int) -> None:
        h = self.hosts[m.to]
        h.bytes += size
        h.inbox.append(("msg", m))
        self._wake(h, self.now)

    # --- figures -----------------------------------------------------------------------

    def _all_applied(self) -> bool:
        live = self.n - len(self.dead)
        return bool(self.proposed) and all(len(self.applied.get(i, ())) >= live for i in self.proposed)

    def _figures(self, wall_s: float) -> dict:
        t99, t100, torphans = [], [], []
        live = self.n - len(self.dead)
        for index, at in self.proposed.items():
            times = sorted(self.applied.get(index, ()))
            k99 = math.ceil(0.99 * live)
            t99.append((times[k99 - 1] - at) / 1000 if len(times) >= k99 else math.inf)
            t100.append((times[-1] - at) / 1000 if len(times) >= live else math.inf)
            if self.orphans:
                got = self.applied_by.get(index, {})
                torphans.append(max((got[x] - at) / 1000 for x in self.orphans)
                                if self.orphans <= got.keys() else math.inf)
        span_s = (self.now - self.window[0]) / 1000
        per_host = sorted(h.bytes / span_s for h in self.hosts.values())
        entries = len(self.proposed)
        return {
            "n": self.n, "voters": len(self.hosts[self.leader_id].core.log.conf().voters),
            "relay_fanout": self.fanout, "tree_depth": self.tree_depth,
            "entries": entries, "rate_per_s": self.rate, "entry_bytes": len(self.entry),
            "hop_delay_ms": list(self.delay_ms), "proc_us_per_msg": self.proc_ms * 1000,
            "fsync_ms": self.fsync_ms, "tick_s": self.cfg.tick_interval_s,
            "leader_sends_per_entry": round(self.leader_entry_sends / max(entries, 1), 2),
            "leader_msgs_per_s": round(self.leader_msgs / span_s),
            "leader_cpu_load": round(self.hosts[self.leader_id].cpu_ms / 1000 / span_s, 3),
            "host_cpu_load_mean": round(sum(h.cpu_ms for h in self.hosts.values()) / 1000 / span_s / self.n, 4),
            "apply_p50_s": _q(t99, 0.5), "apply_p99_s": _q(t99, 0.99),
            "apply_all_p50_s": _q(t100, 0.5), "apply_all_p99_s": _q(t100, 0.99),
            "bytes_per_host_per_s": {
                "mean": round(sum(per_host) / len(per_host)), "max": round(per_host[-1]),
                "leader": round(self.hosts[self.leader_id].bytes / span_s),
            },
            "killed_relay": self.victim, "orphans": len(self.orphans),
            "orphans_apply_all_p50_s": _q(torphans, 0.5) if self.orphans else None,
            "orphans_apply_all_p99_s": _q(torphans, 0.99) if self.orphans else None,
            "sim_wall_s": round(wall_s, 1),
        }


def _q(values: list[float], q: float) -> float | None:
    """The q-quantile (nearest rank); None when some entry never reached the mark."""
    if not values:
        return None
    v = sorted(values)[min(len(values) - 1, math.ceil(q * len(values)) - 1)]
    return None if v == math.inf else round(v, 4)

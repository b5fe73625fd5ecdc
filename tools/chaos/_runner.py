"""The thin runner: builds the world, plays the schedule, feeds the checkers, tears down.

Threads: the main one plays faults and checkpoints on the schedule's clock;
one worker sends the API operations in order (a request to a dead or cut
host may block for seconds, and must not delay the faults); the ping stream,
the UDP responders and the event watcher run beside them. Checkpoints are
barriers: the worker drains, the cluster converges, then everything is read
and checked; the schedule's clock stops meanwhile.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tools.chaos import _checks as ck
from tools.chaos._events import EventWatcher
from tools.chaos._expect import KernelDiff, StateView, diff_kernel, expected_kernel
from tools.chaos._kernel import read_kernel
from tools.chaos._probe import PingStream, UdpResponders, probe_all
from tools.chaos._schedule import (
    KILL,
    LEADER,
    RESTART,
    ChaosParams,
    Checkpoint,
    Fault,
    LifecycleStep,
    Schedule,
    Toggle,
    make_schedule,
)
from tools.chaos._topology import matrix, ping_pairs, topology
from tools.chaos._world import API_TIMEOUT_S, World, make_world, wait_until
from tools.lab import Lab

log = logging.getLogger("tools.chaos")


@dataclass
class RunResult:
    schedule: Schedule
    tally: ck.Tally
    windows: list[ck.Window]
    workdir: Path
    notes: list[str] = field(default_factory=list)


def run(params: ChaosParams, *, prefix: str, workdir: Path) -> RunResult:
    """Play the schedule of ``params`` in a lab named ``prefix``; agent logs go under ``workdir``.

    Everything the run made is removed on return, on an error and on
    KeyboardInterrupt; the lab prefix is cleaned first in case a killed run left it behind.
    """
    schedule = make_schedule(params)
    Lab(prefix).down()
    start = time.monotonic()
    world = make_world(Lab(prefix), workdir, topology(params.hosts, params.replica_count), params.profile,
                       clock=lambda: time.monotonic() - start)
    try:
        return Runner(schedule, world, workdir).run()
    finally:
        world.close()


class Runner:
    def __init__(self, schedule: Schedule, world: World, workdir: Path) -> None:
        self.s, self.w, self.timing = schedule, world, schedule.timing
        self.rng = random.Random(schedule.params.seed ^ 0x5EED)  # setup's choices; the schedule has its own
        self.result = RunResult(schedule, ck.Tally(), [], workdir)
        self.tally = self.result.tally
        self._ops: queue.Queue = queue.Queue()
        self._open: dict[int, tuple[str, float]] = {}  # fault id -> (resolved host, start)
        self._t0 = time.monotonic()  # reset when the fault phase begins
        self._pauses: list[tuple[float, float]] = []  # checkpoints during the fault phase (monotonic)

    def run(self) -> RunResult:
        log.info("%s", self.s.summary())
        self.w.build(self.rng)
        log.info("built: %d hosts, %d containers in %d networks", len(self.w.topo.hosts), len(self.w.placed),
                 len(self.w.topo.networks))
        with UdpResponders(self.w.pids()), EventWatcher(self.w.lab, self.w.topo.hosts, self.w.cluster.client_key) as ev:
            self.checkpoint("baseline")
            pairs = ping_pairs(self.w.topo, self.w.placed, self.rng)
            labels = [(f"{a.name}@{a.host} -> {b.name}@{b.host}", a, b) for a, b in pairs]
            with PingStream([(label, self.w.containers[a.name].pid, b.ip) for label, a, b in labels]) as pings:
                self._play()
            for label, a, b in labels:
                ck.check_pings(self.tally, ck.PingPair(label, a.host, b.host), pings.results(label),
                               self.result.windows, self.timing)
            ck.check_events(self.tally, ev.events, self.result.windows, self.timing, self.run_time)
        return self.result

    # ------------------------------------------------------------ the timeline
    def now(self) -> float:
        """Schedule time: seconds since the fault phase began, checkpoint pauses excluded."""
        return self.run_time(time.monotonic())

    def run_time(self, mono: float) -> float:
        """A monotonic time as schedule time (what the log lines and findings show)."""
        return mono - self._t0 - sum(min(end, mono) - start for start, end in self._pauses if start < mono)

    def _play(self) -> None:
        items: list[tuple[float, int, object]] = [(c.at_s, 0, c) for c in self.s.checkpoints]
        items += [(f.end_s, 1, ("end", f)) for f in self.s.faults]
        items += [(f.start_s, 2, ("start", f)) for f in self.s.faults]
        items += [(op.at_s, 3, op) for op in self.s.api_ops]
        items.sort(key=lambda i: (i[0], i[1]))
        worker = threading.Thread(target=self._api_worker, name="chaos-api", daemon=True)
        worker.start()
        self._t0 = time.monotonic()
        try:
            for at, _order, item in items:
                if (delay := at - self.now()) > 0:
                    time.sleep(delay)
                if isinstance(item, Checkpoint):
                    paused = time.monotonic()  # the drain counts as pause too: no burst of late faults after it
                    self._ops.join()
                    self.checkpoint("final" if item.final else f"after {at:.0f}s", final=item.final)
                    self._pauses.append((paused, time.monotonic()))
                elif isinstance(item, tuple):
                    self._fault(*item)
                else:
                    self._ops.put(item)
        finally:
            self._ops.put(None)
            worker.join(timeout=4 * API_TIMEOUT_S)  # at most one request in flight, sent twice

    def _api_worker(self) -> None:
        while (op := self._ops.get()) is not None:
            try:
                self._api_op(op)
            except Exception:  # a bug here must not hang the checkpoint barrier
                log.exception("API operation %s failed", op)
            finally:
                self._ops.task_done()

    def _api_op(self, op: Toggle | LifecycleStep) -> None:
        w = self.w
        if isinstance(op, Toggle):
            c = w.churn[op.host]
            connected = w.ledger.believed_connected(c.id, op.network)
            w.write_endpoint("disconnect" if connected else "connect", c, op.network, op.via)
        elif op.op in ("create", "delete"):
            w.write_network(op.op, op.network, op.via, tenant=op.tenant, subnet=op.subnet)
        else:
            w.write_endpoint(op.op, w.churn[op.host], op.network, op.via)

    # ------------------------------------------------------------ faults
    def _fault(self, phase: str, f: Fault) -> None:
        if phase == "start":
            self._revive_crashed()
            host = self._resolve(f)
            log.info("[%6.1fs] %s for %.1f s", self.now(), f.describe(host), f.end_s - f.start_s)
            self._open[f.fid] = (host, time.monotonic())  # before the act: a graceful stop takes a while
            if f.kind == KILL:
                self.w.cluster.kill(host)
            elif f.kind == RESTART:
                code = self.w.cluster.stop(host)
                if code != 0:
                    self.result.notes.append(f"{f.describe(host)}: the agent exited with {code} on SIGTERM")
            else:
                self.w.lab.cut(host, f.peer, oneway=f.kind == "cut-oneway")
            return
        host, started = self._open.pop(f.fid)
        if f.kind in (KILL, RESTART):
            self.w.cluster.start(host)
        else:
            self.w.lab.heal(host, f.peer)
        self.result.windows.append(ck.Window(f.fid, f.kind, host, f.peer, started, time.monotonic(), f.describe(host)))

    def _resolve(self, f: Fault) -> str:
        """The host a fault hits: LEADER becomes the current leader (a random agent if there is none);
        a cut's peer never equals its host."""
        if f.host != LEADER:
            return f.host
        leader = self.w.leader()
        if leader is None or leader not in self.w.cluster.agents:
            leader = self.rng.choice(sorted(self.w.cluster.agents))
            self.result.notes.append(f"{f.describe()}: no leader known, hit {leader}")
        return leader

    def _revive_crashed(self) -> None:
        """An agent that exited although nobody stopped it is a violation; it is started again."""
        findings = []
        agents = list(self.w.cluster.agents.items())
        for host, agent in agents:
            if (code := agent.proc.poll()) is not None:
                findings.append(f"agent {host} exited by itself (code {code}) at {self.now():.1f}s; log: {agent.log}")
                self.w.cluster.agents.pop(host)
                self.w.cluster.start(host)
        self.tally.add(ck.CRASHED, len(agents), findings)

    # ------------------------------------------------------------ checkpoints
    def checkpoint(self, label: str, final: bool = False) -> None:
        """Wait for convergence, then check replicas, kernels and the isolation matrix (and, at the end,
        every acknowledged operation)."""
        self._revive_crashed()
        t = time.monotonic()
        seen = wait_until("convergence", lambda: (o := self._observe()).converged and o,
                          self.timing.converge_timeout_s) or self._observe()
        log.info("[%6.1fs] checkpoint %s: converged=%s after %.1f s", self.now(), label, seen.converged,
                 time.monotonic() - t)
        self.tally.add(ck.CRASHED, len(self.w.topo.hosts),
                       [f"{label}: agent {h} does not answer on its control socket" for h in seen.silent])
        if not seen.replicas:
            return
        self._check_state(label, seen)
        first = next(iter(seen.replicas.values()))
        taken = frozenset((net["tenant"], e["ip"]) for e in first.endpoints for net in first.networks
                          if net["name"] == e["network"])
        probes = matrix(self.w.topo, self.w.placed, taken)
        ck.check_matrix(self.tally, label, probes, probe_all(probes, self.w.pids()))
        if final:
            ck.check_ledger(self.tally, self.w.ledger, {h: (list(st.networks), list(st.endpoints))
                                                        for h, st in seen.replicas.items()})

    def _check_state(self, label: str, seen: Observation) -> None:
        (first_host, first), *_ = seen.replicas.items()
        for host, st in seen.replicas.items():
            ck.check_duplicates(self.tally, host, list(st.networks), list(st.endpoints))
            if st != first:
                self.tally.add(ck.KERNEL, 1, [f"{label}: {host}'s replica still differs from {first_host}'s "
                                              f"after {self.timing.converge_timeout_s:g} s"])
        for diff in seen.diffs.values():
            self.tally.add(ck.KERNEL, diff.compared, [f"{label}: {x}" for x in diff.wrong])
            self.tally.add(ck.LEAKS, diff.compared, [f"{label}: {x}" for x in diff.leaked])

    def _observe(self) -> Observation:
        """Every replica (through the control sockets) and every kernel, against each other."""
        w, seen = self.w, Observation()
        for h in w.topo.hosts:
            try:
                seen.replicas[h] = w.replica(h)
            except TimeoutError:
                seen.silent.append(h)
        live = {h: w.lab.host(h).underlay_ip for h in w.topo.hosts}  # at a checkpoint every agent runs
        for host, st in seen.replicas.items():
            prefix = f"{w.lab.prefix}-r{host[1:]}-"
            want = expected_kernel(host, st, live, w.running_ids(host), prefix)
            seen.diffs[host] = diff_kernel(host, want, read_kernel(w.lab, host, prefix))
        return seen


@dataclass
class Observation:
    replicas: dict[str, StateView] = field(default_factory=dict)
    diffs: dict[str, KernelDiff] = field(default_factory=dict)
    silent: list[str] = field(default_factory=list)  # hosts whose agent did not answer

    @property
    def converged(self) -> bool:
        states = list(self.replicas.values())
        return (not self.silent and all(st == states[0] for st in states)
                and all(d.clean for d in self.diffs.values()))

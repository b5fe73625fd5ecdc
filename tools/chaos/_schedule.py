"""The chaos schedule: a pure function of the parameters and the seed.

Two tracks run side by side on one clock (seconds from the start of the
fault phase, not counting the pauses of checkpoints):

* **faults**, one at a time: kill -9 of an agent (a random host or whoever
  leads Raft at that moment) and its restart after ``down_s``; a graceful
  restart (SIGTERM, then start again); a cut of a whole host, of a pair of
  hosts, or of one direction between two hosts, healed after its duration.
  A gap follows each fault, so every fault starts from a healed cluster;
* **API operations** through the scheduler API of a random host: a stream
  of connect/disconnect toggles of the churn containers in the scenario's
  networks, and network lifecycles (create, connect two churn containers,
  disconnect one, delete with force).

Checkpoints (every ``check_every`` faults and at the end) are barriers: the
runner waits for the API track to drain and the cluster to converge, then
checks the state and every kernel.

The same seed gives the same schedule; what the cluster answers may differ
between runs (which host leads, which request times out), and the runner
records that, not the schedule.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from tools.chaos._topology import NETWORKS

LEADER = "leader"  # a fault target resolved when the fault starts: the host Raft's leader runs on
KILL, RESTART, CUT, CUT_PAIR, CUT_ONEWAY = "kill", "restart", "cut", "cut-pair", "cut-oneway"
AGENT_FAULTS = (KILL, RESTART)
CUT_FAULTS = (CUT, CUT_PAIR, CUT_ONEWAY)
WARMUP_S = 3.0  # background pings and the stream run this long before the first fault
LIFECYCLE_STEP_S = 1.0
LIFECYCLE_TENANTS = ("a", "b", "c")  # tenant c exists only in lifecycles: its routers come and go


@dataclass(frozen=True, slots=True, kw_only=True)
class Timing:
    """Durations drawn per fault (uniform in each range) and the grace periods of the checks."""

    #: how long a killed agent stays dead
    kill_down_s: tuple[float, float]
    #: how long a cut lasts before it is healed
    cut_s: tuple[float, float]
    #: pause between a fault's end and the next fault's start
    gap_s: tuple[float, float]
    #: pause between a graceful stop and the start again
    restart_pause_s: tuple[float, float]
    #: after a fault ends, traffic through its host must be back within this (issue 13: a restarted
    #: agent rejoins within 1 s, a healed host is back within 2 s)
    recovery_s: float = 2.0
    #: a member "fail" event this long after a kill or cut ended is still caused by it
    fail_grace_s: float = 1.0
    #: a checkpoint waits this long for the replicas and every kernel to agree
    converge_timeout_s: float = 60.0


#: local profile: gossip declares a dead host failed after ~1.3 s; lan: after ~5 s
TIMING = {
    "local": Timing(kill_down_s=(0.5, 8.0), cut_s=(3.0, 12.0), gap_s=(2.0, 5.0), restart_pause_s=(0.0, 2.0)),
    "lan": Timing(kill_down_s=(1.0, 20.0), cut_s=(5.0, 20.0), gap_s=(5.0, 10.0), restart_pause_s=(0.0, 3.0),
                  converge_timeout_s=90.0),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ChaosParams:
    seed: int
    hosts: int = 5
    #: probed containers per network, each on another host (None: min(4, hosts))
    replicas: int | None = None
    kills: int = 100
    restarts: int = 10
    cuts: int = 20
    lifecycles: int = 10
    #: connect/disconnect toggles of churn containers per minute (Poisson)
    toggles_per_min: float = 30.0
    #: a checkpoint after every this many faults (and one at the end)
    check_every: int = 10
    #: share of kills and restarts aimed at the Raft leader
    leader_share: float = 1 / 3
    #: length of the fault phase; None: the sum of the drawn durations and gaps
    duration_s: float | None = None
    profile: str = "local"

    @property
    def replica_count(self) -> int:
        return min(4, self.hosts) if self.replicas is None else self.replicas

    def problems(self) -> list[str]:
        """Every invalid parameter, each naming the option and the fix."""
        out = []
        if self.hosts < 3:
            out.append(f"--hosts {self.hosts}: use 3 or more (a kill or cut must leave a Raft majority)")
        if not 2 <= self.replica_count <= self.hosts:
            out.append(f"--replicas {self.replicas}: use 2..{self.hosts} (at most one container per host and network)")
        for name in ("kills", "restarts", "cuts", "lifecycles", "toggles_per_min"):
            if getattr(self, name) < 0:
                out.append(f"--{name.replace('_', '-')} {getattr(self, name)}: use 0 or more")
        if self.check_every < 1:
            out.append(f"--check-every {self.check_every}: use 1 or more")
        if self.profile not in TIMING:
            out.append(f"--profile {self.profile!r}: use one of {', '.join(TIMING)}")
        if not 0 <= self.leader_share <= 1:
            out.append(f"leader share {self.leader_share}: use 0..1")
        return out


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault: it starts at ``start_s`` and is undone (restart, heal) at ``end_s``."""

    fid: int
    kind: str
    host: str  # a host name, or LEADER
    peer: str | None
    start_s: float
    end_s: float

    def describe(self, host: str | None = None) -> str:
        who = host or self.host
        if self.kind in (CUT_PAIR, CUT_ONEWAY):
            arrow = "->" if self.kind == CUT_ONEWAY else "<->"
            return f"#{self.fid} {self.kind} {who}{arrow}{self.peer}"
        return f"#{self.fid} {self.kind} {who}" + (" (leader)" if host and self.host == LEADER else "")


@dataclass(frozen=True, slots=True)
class Toggle:
    """Connect the churn container of ``host`` to ``network`` if it is not connected, else disconnect it."""

    at_s: float
    host: str
    network: str
    via: str  # the host whose scheduler API gets the request


@dataclass(frozen=True, slots=True)
class LifecycleStep:
    at_s: float
    n: int
    op: str  # "create", "connect", "disconnect", "delete"
    network: str
    via: str
    tenant: str = ""
    subnet: str = ""
    host: str = ""  # connect/disconnect: the host whose churn container it is


@dataclass(frozen=True, slots=True)
class Checkpoint:
    at_s: float
    final: bool = False


ApiOp = Toggle | LifecycleStep


@dataclass(frozen=True, slots=True)
class Schedule:
    params: ChaosParams
    timing: Timing
    faults: tuple[Fault, ...]
    api_ops: tuple[ApiOp, ...]
    checkpoints: tuple[Checkpoint, ...]
    end_s: float
    hosts: tuple[str, ...]

    def summary(self) -> str:
        kinds: dict[str, int] = {}
        for f in self.faults:
            kinds[f.kind] = kinds.get(f.kind, 0) + 1
        toggles = sum(isinstance(o, Toggle) for o in self.api_ops)
        parts = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "no faults"
        return (f"seed {self.params.seed}: {parts}; {toggles} toggles, {self.params.lifecycles} lifecycles, "
                f"{len(self.checkpoints)} checkpoints over {self.end_s:.0f} s")


class ScheduleError(ValueError):
    """The parameters cannot make a schedule; the message names the option and the fix."""


def make_schedule(params: ChaosParams) -> Schedule:
    """The schedule for ``params`` (deterministic in ``params.seed``).

    Raises:
        ScheduleError: invalid parameters, or ``duration_s`` too short for the faults asked for.
    """
    if problems := params.problems():
        raise ScheduleError("; ".join(problems))
    rng = random.Random(params.seed)
    timing = TIMING[params.profile]
    hosts = tuple(f"h{i}" for i in range(1, params.hosts + 1))
    kinds = [KILL] * params.kills + [RESTART] * params.restarts + [CUT] * params.cuts
    rng.shuffle(kinds)
    shapes = [_shape(kind, rng, hosts, timing, params.leader_share) for kind in kinds]
    gaps = _gaps(params, timing, [d for *_, d in shapes], rng)
    faults, checkpoints = [], []
    t = WARMUP_S
    for fid, ((kind, host, peer, dur), gap) in enumerate(zip(shapes, gaps, strict=True)):
        faults.append(Fault(fid, kind, host, peer, round(t, 3), round(t + dur, 3)))
        t += dur + gap
        if (fid + 1) % params.check_every == 0 and fid + 1 < len(shapes):
            checkpoints.append(Checkpoint(round(t, 3)))
    end = round(max(t, WARMUP_S + 1.0), 3)
    checkpoints.append(Checkpoint(end, final=True))
    ops = sorted(_toggles(params, rng, hosts, end) + _lifecycles(params, rng, hosts, end), key=lambda o: o.at_s)
    return Schedule(params, timing, tuple(faults), tuple(ops), tuple(checkpoints), end, hosts)


def _uniform(rng: random.Random, bounds: tuple[float, float]) -> float:
    return round(rng.uniform(*bounds), 3)


def _shape(kind: str, rng: random.Random, hosts: tuple[str, ...], timing: Timing,
           leader_share: float) -> tuple[str, str, str | None, float]:
    """(kind, host, peer, duration) of one fault."""
    if kind in AGENT_FAULTS:
        host = LEADER if rng.random() < leader_share else rng.choice(hosts)
        return kind, host, None, _uniform(rng, timing.kill_down_s if kind == KILL else timing.restart_pause_s)
    shape = rng.choice(CUT_FAULTS)
    host = rng.choice(hosts)
    peer = rng.choice([h for h in hosts if h != host]) if shape != CUT else None
    return shape, host, peer, _uniform(rng, timing.cut_s)


def _gaps(params: ChaosParams, timing: Timing, durations: list[float], rng: random.Random) -> list[float]:
    if params.duration_s is None:
        return [_uniform(rng, timing.gap_s) for _ in durations]
    spare = params.duration_s - WARMUP_S - sum(durations)
    need = timing.gap_s[0] * len(durations)
    if spare < need:
        raise ScheduleError(
            f"--duration {params.duration_s:g} s is too short: {len(durations)} faults need about "
            f"{WARMUP_S + sum(durations) + need:.0f} s with their gaps; raise --duration or lower --kills/--cuts")
    mean = spare / max(len(durations), 1)
    return [round(mean, 3)] * len(durations)


def _toggles(params: ChaosParams, rng: random.Random, hosts: tuple[str, ...], end: float) -> list[ApiOp]:
    ops: list[ApiOp] = []
    if params.toggles_per_min <= 0:
        return ops
    t = 0.5
    while True:
        t += rng.expovariate(params.toggles_per_min / 60.0)
        if t >= end:
            return ops
        ops.append(Toggle(round(t, 3), rng.choice(hosts), rng.choice(NETWORKS).name, rng.choice(hosts)))


def _lifecycles(params: ChaosParams, rng: random.Random, hosts: tuple[str, ...], end: float) -> list[ApiOp]:
    ops: list[ApiOp] = []
    span = max(end - WARMUP_S - 5 * LIFECYCLE_STEP_S, 1.0)
    for n in range(params.lifecycles):
        t0 = WARMUP_S + span * (n + 0.5) / params.lifecycles
        name, tenant = f"lc-{n}", rng.choice(LIFECYCLE_TENANTS)
        subnet = f"10.{100 + n // 256}.{n % 256}.0/24"
        first, second = rng.sample(hosts, 2)
        steps = [("create", ""), ("connect", first), ("connect", second), ("disconnect", first), ("delete", "")]
        for k, (op, host) in enumerate(steps):
            ops.append(LifecycleStep(round(t0 + k * LIFECYCLE_STEP_S, 3), n, op, name, rng.choice(hosts),
                                     tenant=tenant, subnet=subnet, host=host))
    return ops

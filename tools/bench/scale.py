"""Scale measurements of issue 20 (docs/scale.md): whole agents joining at once, and interest sizing.

    sudo .venv/bin/python -m tools.bench.scale --reps 1 [--quick]      # the report's "scale" section
    sudo MESHD_BENCH_SCALE_JOINS=50,200 .venv/bin/python -m tools.bench.report --sections scale --reps 1
                                       # ... with the 200-agent join too (about 20 more minutes)
    sudo .venv/bin/python -m tools.bench.scale join 50 100 200 [--prefix bz] [--seeds 1]
    .venv/bin/python -m tools.bench.scale interest [--endpoints 1000000 --hosts 10000 --seed 1]

Each prints one JSON line per measurement.

``join N...``: a lab of N hosts (``tools.lab``, prefix ``--prefix``), one
whole ``meshd agent`` per host (``tools.cluster``, LAN profile,
``--no-docker``: no containers here, and one dockerd shared by 200 agents
would be a second experiment). h1 starts
alone and bootstraps; once it leads, h2..hN are started at once (one loop of
process starts), each joining through the first ``--seeds`` hosts (default
1: all through h1, the harshest case). Polled every second on h1 and on the
Raft leader: gossip members alive at h1; the leader's Raft configuration
(voters + learners); its followers' match index. Then every agent is asked
once (its own control socket) for its role, applied index and the members
it sees alive. Figures, from the moment the first of h2..hN is started:

* ``members_all_s``: h1 sees all N alive (gossip);
* ``raft_all_s``: the leader's configuration holds all N (voters + learners);
* ``caught_up_all_s``: every follower's match index reached the index the
  leader had committed when its configuration became complete;
* ``everyone_sees_all_s``: the sweep in which every agent saw all N alive and
  was a Raft voter or learner (a sweep asks 200 agents, SWEEP_WORKERS at a
  time, so this is coarse: it ends when the last agent of the sweep answered);
* ``gave_up``: agents that exited during the run (a join that gives up makes
  the agent exit), never restarted; ``join_tries``: p50/max of the tries
  in the agents' own ``joined through=... tries=N`` log lines;
* ``machine``: load average, CPU busy fraction (1.0 = both cores), the
  agents' RSS, PSS, descriptors and CPU seconds (tools/bench/_machine.py);
  ``idle``: the CPU the joined agents then use, doing nothing but gossip,
  Raft heartbeats and periodic reconcile passes, over IDLE_S seconds.

``interest``: see :func:`interest`.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from tools.bench._figures import percentile
from tools.bench._machine import MachineSampler, Renicer, load_avg, process_figures, renice, softnet_dropped

PROFILE = "lan"
WORKDIR = Path("/var/tmp/bench-scale")
POLL_S = 1.0
SWEEP_WORKERS = 8  # agents asked at once in a sweep
IDLE_S = 30.0  # after everyone joined: the agents' own CPU use over this quiet window
LEADER_TIMEOUT_S = 120.0
_JOINED = re.compile(r"joined through=\S+ members=\d+ tries=(\d+)")


# --- join: whole agents started at once ------------------------------------------------------


def join_storm(n: int, prefix: str, seeds: int, timeout_s: float, leader_nice: int = 0,
               voter_nice: int = 0, agent_sets: tuple[str, ...] = ()) -> dict[str, Any]:
    """N whole agents, h2..hN started at once; see the module docstring. Everything is removed on return."""
    from meshd.api import MsgType
    from tools.cluster import Cluster
    from tools.lab import Lab

    lab = Lab(prefix)
    out: dict[str, Any] = {"bench": "scale.join", "agents": n, "profile": PROFILE, "seeds": seeds,
                           "lab_prefix": prefix, "leader_nice": leader_nice, "voter_nice": voter_nice,
                           "agent_set": list(agent_sets), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    cluster: Cluster | None = None
    sampler: MachineSampler | None = None
    renicer: Renicer | None = None
    try:
        lab.down()  # leftovers of an interrupted run
        t_lab = time.monotonic()
        lab.up(n)
        out["lab_up_s"] = round(time.monotonic() - t_lab, 1)
        cluster = Cluster(lab, WORKDIR / f"{prefix}-n{n}", profile=PROFILE, extra_args=(
            "--no-docker", *(a for kv in agent_sets for a in ("--set", kv))))
        c = cluster
        h1 = c.start("h1")
        if leader_nice:
            renice(h1.proc.pid, leader_nice)
        c.wait("h1 leads", lambda: c.query("h1", MsgType.QUERY_STATUS)["raft"]["role"] == "leader",
               timeout_s=LEADER_TIMEOUT_S)
        if voter_nice:
            renicer = Renicer(c.voter_pids, voter_nice)
        sampler = MachineSampler(lambda: [a.proc.pid for a in c.agents.values()])
        join = [lab.host(f"h{i}").underlay_ip for i in range(1, seeds + 1)]
        names = [f"h{i}" for i in range(2, n + 1)]
        out["load_avg_before"] = load_avg()
        dropped0 = softnet_dropped()
        t0, wall0 = time.monotonic(), time.time()
        procs = {name: c.start(name, join=join).proc for name in names}
        out["spawn_s"] = round(time.monotonic() - t0, 1)
        out.update(_watch(c, n, procs, t0, timeout_s))
        out["tries"] = _tries(c, names, wall0)
        if out.get("all_joined"):
            out["idle"] = _idle(c, IDLE_S)
        out["machine"] = sampler.summary()
        out["machine"]["backlog_dropped_packets"] = softnet_dropped() - dropped0
        out["agents_end"] = process_figures(a.proc.pid for a in c.agents.values())
        out["load_avg_end"] = load_avg()
    except (Exception, KeyboardInterrupt) as exc:  # reported in the JSON line: the figures so far stay
        out["error"] = f"{type(exc).__name__}: {exc}"[:1500]
    finally:
        if renicer is not None:
            renicer.close()
            by_pid = {a.proc.pid: name for name, a in (cluster.agents.items() if cluster else ())}
            out["voters_reniced_at_s"] = {by_pid.get(pid, str(pid)): t for pid, t in renicer.reniced.items()}
        if sampler is not None:
            sampler.close()
        if cluster is not None:
            exited = {name: a for name, a in cluster.agents.items() if a.proc.poll() is not None}
            cluster.down(timeout_s=30)
            if exited:
                out["exited_logs"] = _keep_logs(exited, n)
            cluster.cleanup_workdir()
        lab.down()
    return out


KEPT_LOGS = Path("/var/tmp/meshd-bench-logs")


def _keep_logs(agents: dict[str, Any], n: int) -> list[str]:
    """Copy the logs of ``agents`` (those that exited during the run: gave up joining, or crashed)
    out of the work directory before it is removed, at most 20; returns where they went."""
    kept: list[str] = []
    for name, agent in agents.items():
        code = agent.proc.returncode
        if not agent.log.exists() or len(kept) >= 20:
            continue
        KEPT_LOGS.mkdir(parents=True, exist_ok=True)
        dest = KEPT_LOGS / f"scale-join{n}-{name}-exit{code}.log"
        shutil.copyfile(agent.log, dest)
        kept.append(str(dest))
    return kept


def _watch(c: Any, n: int, procs: dict[str, subprocess.Popen], t0: float, timeout_s: float) -> dict[str, Any]:
    """Poll until every agent is a member, in the Raft configuration and caught up, and every agent
    confirmed it; or until ``timeout_s``. Returns the figures (None for a moment never reached)."""
    from meshd.api import MsgType

    got: dict[str, Any] = {"members_all_s": None, "raft_all_s": None, "caught_up_all_s": None,
                           "everyone_sees_all_s": None}
    gave_up: dict[str, int] = {}
    target_index: int | None = None
    last: dict[str, Any] = {}
    deadline = t0 + timeout_s
    while time.monotonic() < deadline:
        for name, p in procs.items():
            if name not in gave_up and p.poll() is not None:
                gave_up[name] = p.returncode
        now = time.monotonic() - t0
        with contextlib.suppress(TimeoutError, OSError, KeyError):
            alive = sum(m["state"] == "alive" for m in c.query("h1", MsgType.QUERY_MEMBERS)["members"])
            last["members_alive_at_h1"] = alive
            if got["members_all_s"] is None and alive >= n:
                got["members_all_s"] = round(now, 1)
        with contextlib.suppress(TimeoutError, OSError, KeyError):
            raft = _leader_raft(c)
            in_config = len(set(raft["voters"]) | set(raft["learners"]))
            last.update(raft_members=in_config, voters=len(raft["voters"]), leader=raft["leader"])
            if got["raft_all_s"] is None and in_config >= n:
                got["raft_all_s"] = round(now, 1)
                target_index = raft["commit_index"]
                last["config_complete_index"] = target_index
            if target_index is not None and got["caught_up_all_s"] is None:
                behind = [f["id"] for f in raft["followers"] if f["match"] < target_index]
                last["followers_behind"] = len(behind)
                if not behind and len(raft["followers"]) >= n - 1:
                    got["caught_up_all_s"] = round(time.monotonic() - t0, 1)
        if got["caught_up_all_s"] is not None and got["members_all_s"] is not None:
            sweep = _sweep(c, n, target_index or 0)
            last["sweep"] = sweep
            if sweep["ok"] == n:
                got["everyone_sees_all_s"] = round(time.monotonic() - t0, 1)
                break
        if len(gave_up) == len(procs):
            break
        time.sleep(POLL_S)
    return {**got, "all_joined": got["everyone_sees_all_s"] is not None, "gave_up": len(gave_up),
            "gave_up_exit_codes": dict(Counter(gave_up.values())), "last_poll": last, "timeout_s": timeout_s}


def _leader_raft(c: Any) -> dict[str, Any]:
    """The Raft status of the current leader (as h1 names it)."""
    raft = c.raft_status("h1")
    if raft["role"] != "leader":
        raise KeyError("no leader known at h1 now")
    return dict(raft)


def _sweep(c: Any, n: int, index: int) -> dict[str, Any]:
    """Ask every agent: is it a voter or learner, applied ``index``, and sees it all N alive?"""
    from meshd.api import MsgType

    def ask(name: str) -> dict[str, Any] | None:
        try:
            return c.query(name, MsgType.QUERY_STATUS)
        except (TimeoutError, OSError):
            return None

    ok, not_member, behind, blind, silent = 0, [], [], [], []
    names = list(c.agents)
    with concurrent.futures.ThreadPoolExecutor(SWEEP_WORKERS) as pool:
        answers = list(pool.map(ask, names))
    for name, s in zip(names, answers, strict=True):
        if s is None:
            silent.append(name)
            continue
        raft = s.get("raft") or {}
        alive = sum(m["state"] == "alive" for m in s.get("members", ()))
        if raft.get("role") not in ("leader", "follower", "learner"):
            not_member.append(name)
        elif raft.get("applied_index", 0) < index:
            behind.append(name)
        elif alive < n:
            blind.append(name)
        else:
            ok += 1
    return {"ok": ok, "not_raft_member": not_member[:5], "behind": behind[:5], "sees_fewer": blind[:5],
            "no_answer": silent[:5]}


def _tries(c: Any, names: list[str], wall0: float) -> dict[str, Any]:
    """The agents' own join lines: tries and the gossip join time (log stamp − start)."""
    tries, joined_s, warned = [], [], 0
    for name in names:
        agent = c.agents.get(name)
        if agent is None:
            continue
        with contextlib.suppress(OSError):
            for line in agent.log.read_text(errors="replace").splitlines():
                if "no gossip member answered yet" in line:
                    warned += 1
                m = _JOINED.search(line)
                if m:
                    tries.append(int(m.group(1)))
                    stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
                    joined_s.append(stamp - wall0)
    return {"joined": len(tries), "tries_p50": percentile(tries, 50), "tries_max": max(tries, default=0),
            "gossip_join_p50_s": round(percentile(joined_s, 50), 1) if joined_s else None,
            "gossip_join_max_s": round(max(joined_s), 1) if joined_s else None, "still_trying_warnings": warned}


def _idle(c: Any, seconds: float) -> dict[str, Any]:
    """CPU the joined, idle agents use (gossip probes, Raft heartbeats, periodic reconcile passes):
    their CPU seconds over ``seconds`` of wall clock, as cores (1.0 = one core busy), per agent, and
    apart for the Raft leader (it sends a heartbeat to every other agent every tick)."""
    leader = _leader_raft(c)["leader"]
    pids = {name: a.proc.pid for name, a in c.agents.items()}
    before = {name: process_figures([pid])["cpu_s_total"] for name, pid in pids.items()}
    time.sleep(seconds)
    after = {name: process_figures([pid]).get("cpu_s_total") for name, pid in pids.items()}
    used = {name: (after[name] - before[name]) / seconds for name in pids if after[name] is not None}
    others = [v for name, v in used.items() if name != leader]
    return {"window_s": seconds, "agents": len(used), "cores": round(sum(used.values()), 2),
            "per_agent_millicores": round(1000 * sum(used.values()) / max(1, len(used)), 1),
            "leader": leader, "leader_millicores": round(1000 * used.get(leader, math.nan), 1),
            "others_p50_millicores": round(1000 * percentile(others, 50), 1),
            "others_max_millicores": round(1000 * max(others, default=math.nan), 1), "load_avg": load_avg()}


# --- interest: what one host needs if it holds only its networks ------------------------------

SIZE_MIN, SIZE_MAX = 10, 500  # endpoints per network, log-uniform
PER_HOST_MIN, PER_HOST_MAX = 5, 40  # endpoints one network puts on each of its hosts, uniform
HEAP_SAMPLE = 5  # hosts whose restricted state is also measured with tracemalloc


def placement(endpoints: int, hosts: int, rng: random.Random) -> list[tuple[int, list[int]]]:
    """``[(size, [host index per endpoint])]`` per network: the workload of :func:`interest`.

    Network sizes are log-uniform in [SIZE_MIN, SIZE_MAX] (many small
    networks, few big ones) until ``endpoints`` are placed (the last one is
    cut; a remainder under SIZE_MIN joins the previous network). A network of
    ``m`` endpoints puts ``k`` of them on each of its hosts (``k`` uniform in
    [PER_HOST_MIN, PER_HOST_MAX]: replicas of one service share a host), so it
    spans ``ceil(m / k)`` hosts: the next ones of a walk over a random
    permutation of all hosts, reshuffled at each wrap; endpoint ``j`` goes to
    the ``j mod span``-th of them. Every host ends up in a handful of networks.
    """
    sizes: list[int] = []
    left = endpoints
    while left > 0:
        m = min(left, round(SIZE_MIN * (SIZE_MAX / SIZE_MIN) ** rng.random()))
        if m < SIZE_MIN and sizes:
            sizes[-1] += m
        else:
            sizes.append(m)
        left -= m
    order = list(range(hosts))
    rng.shuffle(order)
    pos = 0
    nets = []
    for m in sizes:
        span = min(hosts, -(-m // rng.randint(PER_HOST_MIN, PER_HOST_MAX)))
        chosen: list[int] = []
        while len(chosen) < span:
            if pos == hosts:
                rng.shuffle(order)
                pos = 0
            if order[pos] not in chosen:
                chosen.append(order[pos])
            pos += 1
        nets.append((m, [chosen[j % span] for j in range(m)]))
    return nets


def _subnet(cursor: int, m: int) -> tuple[str, int]:
    """The smallest aligned IPv4 subnet at or after ``cursor`` holding ``m`` endpoints + 3 reserved."""
    bits = max(2, math.ceil(math.log2(m + 3)))
    base = -(-cursor // (1 << bits)) << bits
    return f"{base >> 24}.{base >> 16 & 255}.{base >> 8 & 255}.{base & 255}/{32 - bits}", base + (1 << bits)


def _dist(values: list[int]) -> dict[str, float]:
    return {"p50": percentile(values, 50), "p99": percentile(values, 99), "max": max(values),
            "mean": round(sum(values) / len(values), 1)}


def interest(endpoints: int, hosts: int, seed: int) -> dict[str, Any]:
    """Per-host state if each host held only the networks it builds, beside the full state.

    Builds meshd's real :class:`meshd.state.NetworkState` with ``endpoints``
    Connects over ``hosts`` hosts (:func:`placement`; one VXLAN network per
    placement row, 20 networks per tenant, 12-hex-digit container ids). For
    every host: its networks (those with an endpoint of its own), their
    endpoints (local and remote), its VTEP flood entries (per network, the
    other hosts in it: one ``00:00:00:00:00:00 dst <vtep>`` entry each), and
    the size of a snapshot of a state holding just those networks: the full
    snapshot's rows of those networks, loaded into a fresh NetworkState
    (``restore``, which checks them) and encoded again with its real
    ``snapshot()``. For HEAP_SAMPLE hosts (the p50 one, the biggest and
    random others) the Python heap of that restricted state is measured with
    tracemalloc, as for the full state. Pure measurement: the agent does not
    filter anything yet (docs/scale.md, "Interest").
    """
    import gc
    import tracemalloc

    import msgpack

    from meshd.state import Connect, CreateNetwork, NetworkState

    rng = random.Random(seed)
    t0 = time.process_time()
    nets = placement(endpoints, hosts, rng)
    state = NetworkState(change_log_size=1000)
    index, cursor, eid = 0, 10 << 24, 0
    for i, (m, where) in enumerate(nets):
        subnet, cursor = _subnet(cursor, m)
        index += 1
        state.execute(CreateNetwork(name=f"n{i}", tenant=f"t{i // 20}", subnet=subnet), index)
        for h in where:
            index += 1
            eid += 1
            state.execute(Connect(endpoint_id=f"{eid:012x}", network=f"n{i}", host=f"host-{h:05d}"), index)
    if state.status().commands_rejected:
        raise SystemExit("the state rejected commands: the workload is wrong")
    build_s = time.process_time() - t0
    full = state.snapshot()
    # the state's own view: which hosts each network spans, and how many endpoints each host has in it
    info = {i.network.name: i for i in state.networks()}
    local: dict[str, Counter[str]] = {}
    for ep in state.endpoints():
        local.setdefault(ep.host, Counter())[ep.network] += 1
    doc = msgpack.unpackb(full, raw=False, strict_map_key=False)
    rows = {row[0]: row for row in doc["networks"]}
    per: dict[str, dict[str, int]] = {}
    for host, counts in local.items():
        mine = sorted(counts)
        sub = dict(doc, networks=[rows[n] for n in mine], policies=[], services=[], stale_hosts=[])
        restricted = NetworkState()
        restricted.restore(msgpack.packb(sub, use_bin_type=True))
        total = sum(info[n].used for n in mine)
        if len(restricted.endpoints()) != total:
            raise SystemExit(f"the restricted state of {host} holds {len(restricted.endpoints())} endpoints, "
                             f"not {total}: the benchmark is wrong")
        per[host] = {"networks": len(mine), "endpoints": total, "local": sum(counts.values()),
                     "remote": total - sum(counts.values()),
                     "vtep_flood_entries": sum(len(info[n].hosts) - 1 for n in mine),
                     "snapshot_bytes": len(restricted.snapshot())}
    by_size = sorted(per, key=lambda h: per[h]["snapshot_bytes"])
    sample = list(dict.fromkeys([by_size[len(by_size) // 2], by_size[-1], *rng.sample(by_size, HEAP_SAMPLE)]))
    heap = {}
    for host in sample[:HEAP_SAMPLE]:
        mine = sorted(local[host])
        blob = msgpack.packb(dict(doc, networks=[rows[n] for n in mine], policies=[], services=[]),
                             use_bin_type=True)
        heap[host] = (per[host]["endpoints"], _heap_bytes(blob, NetworkState, gc, tracemalloc))
    full_heap = _heap_bytes(full, NetworkState, gc, tracemalloc)
    empty_heap = _heap_bytes(NetworkState().snapshot(), NetworkState, gc, tracemalloc)  # fixed cost (VNI bits)
    col = {k: [p[k] for p in per.values()] for k in ("networks", "endpoints", "local", "remote", "vtep_flood_entries",
                                                    "snapshot_bytes")}
    sizes = [m for m, _ in nets]
    return {
        "bench": "scale.interest", "endpoints": endpoints, "hosts": hosts, "hosts_with_endpoints": len(per),
        "seed": seed, "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "workload": {"networks": len(nets), "network_size": _dist(sizes),
                     "size_law": f"log-uniform {SIZE_MIN}..{SIZE_MAX}",
                     "per_host_per_network": f"uniform {PER_HOST_MIN}..{PER_HOST_MAX}"},
        "full": {"snapshot_bytes": len(full), "heap_mib": round(full_heap / 2**20, 1), "endpoints": endpoints,
                 "networks": len(nets)},
        "per_host": {k: _dist(v) for k, v in col.items()},
        "per_host_heap_sample": {h: {"endpoints": e, "heap_kib": round(b / 1024)} for h, (e, b) in heap.items()},
        "empty_state_heap_kib": round(empty_heap / 1024),
        "ratio_full_to_p99_snapshot": round(len(full) / percentile(col["snapshot_bytes"], 99), 1),
        "build_cpu_s": round(build_s, 1), "total_cpu_s": round(time.process_time() - t0, 1),
        "load_avg_1m": load_avg()[0],
    }


def _heap_bytes(blob: bytes, state_type: Any, gc: Any, tracemalloc: Any) -> int:
    """Python heap held by a state restored from ``blob`` (tracemalloc)."""
    gc.collect()
    tracemalloc.start()
    st = state_type()
    st.restore(blob)
    held = int(tracemalloc.get_traced_memory()[0])
    tracemalloc.stop()
    del st
    return held


# --- the command line ----------------------------------------------------------------------


# --- the report's "scale" section ------------------------------------------------------------

#: (hosts, relay_fanout) of the Raft fan-out simulations the section runs
SIM_RUNS = ((10_000, 16), (1_000, 0))
KILL_RUN, QUICK_KILL_RUN = (1_000, 16), (300, 16)  # --kill-relay: the first relay crashes
KILL_FIGURES = (  # (result key, label, unit)
    ("orphans", "hosts below the crashed relay", ""),
    ("orphans_apply_all_p99_s", "time until every host below it applied an entry, p99", "s"),
    ("apply_all_p99_s", "time until every live host applied an entry, p99", "s"),
    ("leader_sends_per_entry", "leader sends per entry (its children adopted)", ""),
)
SIM_FIGURES = (  # (result key, label, unit, goal at 10,000 hosts with the tree)
    ("leader_sends_per_entry", "leader sends per entry", "", ("<=", 100.0)),
    ("apply_p99_s", "time until 99 % of hosts applied an entry, p99", "s", None),
    ("apply_all_p99_s", "time until every host applied an entry, p99", "s", None),
    ("leader_cpu_load", "leader CPU load (modelled; 1 = one core)", "", None),
)
#: The report's joins: 50 agents, and the sizes in MESHD_BENCH_SCALE_JOINS (e.g. "50,200") when set:
#: the 200-agent join takes ~20 minutes, which under the report's default 60-minute budget would
#: take repetitions from every other section.
JOIN_ENV = "MESHD_BENCH_SCALE_JOINS"
QUICK_JOIN_SIZES = (20,)


def join_sizes() -> tuple[int, ...]:
    raw = os.environ.get(JOIN_ENV, "50")
    try:
        sizes = tuple(int(x) for x in raw.split(","))
    except ValueError:
        sizes = ()
    if not sizes or not all(2 <= n <= 244 for n in sizes):
        raise SystemExit(f"{JOIN_ENV}={raw!r}: give comma-separated agent counts of 2..244, e.g. 50,200")
    return sizes


#: From this size on, the report's join runs h1 and every voter at niceness -10 (see --leader-nice):
#: on 2 cores 200 agents otherwise starve the Raft leader and voters, which real hosts never do.
NICE_FROM = 150


JOIN_FIGURES = (  # (result key, label, unit)
    ("members_all_s", "h1 sees every agent alive (gossip)", "s"),
    ("raft_all_s", "the Raft configuration holds every agent", "s"),
    ("caught_up_all_s", "every follower caught up", "s"),
    ("everyone_sees_all_s", "every agent sees all alive and is a Raft member", "s"),
    ("gave_up", "agents that gave up joining", "count"),
    ("alive_at_h1_end", "members h1 saw alive when the bench stopped watching", "count"),
)
INTEREST_FIGURES = (  # (per_host key, label, unit, scale)
    ("endpoints", "endpoints in the networks one host builds", "", 1.0),
    ("vtep_flood_entries", "VTEP flood entries on one host", "", 1.0),
    ("snapshot_bytes", "snapshot of the networks one host builds", "KB", 1e-3),
)


def estimate_s(budget: Any) -> float:
    sims = 60 if budget.quick else 440
    joins = sum(40 + 3 * n if n < NICE_FROM else 1200 for n in (QUICK_JOIN_SIZES if budget.quick else join_sizes()))
    return sims + joins + (30 if budget.quick else 120)


def run(budget: Any) -> Any:
    from tools.bench._figures import Section

    quick = budget.quick
    sims = ((1_000, 16), (300, 0)) if quick else SIM_RUNS
    section = Section(
        "scale", "Scale: 10,000 hosts simulated, whole agents joining at once, per-host state by interest",
        method=("**Fan-out** (issue 20 item 1): `python -m tests.sim.raft --scale N --fanout K`: N real "
                "`consensus.RaftCore`s (5 voters, the rest learners) in the deterministic simulation, no faults, "
                "20 meshd-sized entries per second for 5 s; a host's CPU (20 µs per message) and fsync (0.5 ms) "
                "are the model's stated assumptions, not measurements (tests/sim/raft/scale.py). With "
                "`relay_fanout` 16 the leader sends to the voters and 16 learners and the rest get the "
                "committed log through a tree; 0 is the old direct replication; `--kill-relay` crashes the first "
                "relay as the entries start (the leader adopts its children once it has been silent for "
                "twice the learner heartbeat). **Joining** (items 3, 4): "
                "`python -m tools.bench.scale join N`: N whole `meshd agent`s (LAN profile, no Docker) in lab "
                "namespaces on this 2-core VM, h2..hN started at once, all joining through h1; times from the "
                "start of h2..hN; N = 50, and (with `MESHD_BENCH_SCALE_JOINS=50,200`) 200 with h1 and every voter "
                "at niceness -10 (`--leader-nice -10 "
                "--voter-nice -10`: 200 agents on 2 cores otherwise starve the Raft leader and voters), watched "
                "for at most 900 s. **Interest** (item 2): `python -m tools.bench.scale interest`: what one host "
                "would hold if it kept only the networks it builds, 1,000,000 endpoints over 10,000 hosts "
                "(a measurement of the design; the agents still hold the whole state)."),
        setup={"sim_runs": [list(s) for s in sims], "join_sizes": list(QUICK_JOIN_SIZES if quick else join_sizes())},
    )
    for n, fanout in sims:
        out = subprocess.run([sys.executable, "-m", "tests.sim.raft", "--scale", str(n), "--fanout", str(fanout)],
                             capture_output=True, text=True)
        if out.returncode != 0:
            section.notes.append(f"simulation n={n} fanout={fanout} failed: {out.stderr.strip()[-300:]}")
            continue
        result = json.loads(out.stdout.strip().splitlines()[-1])
        for key, label, unit, goal in SIM_FIGURES:
            value = result.get(key)
            section.figure(f"scale.n{n}{'' if fanout else '.direct'}.{key}",
                           f"{n:,} hosts, {'relay_fanout ' + str(fanout) if fanout else 'direct (relay_fanout 0)'}: "
                           f"{label}", unit, goal=goal if (n, fanout) == (10_000, 16) else None).add(
                math.nan if value is None else float(value))
        section.setup[f"sim_n{n}_fanout{fanout}"] = {k: v for k, v in result.items() if not isinstance(v, dict)}
    n, fanout = QUICK_KILL_RUN if quick else KILL_RUN
    out = subprocess.run([sys.executable, "-m", "tests.sim.raft", "--scale", str(n), "--fanout", str(fanout),
                          "--kill-relay"], capture_output=True, text=True)
    if out.returncode != 0:
        section.notes.append(f"simulation n={n} --kill-relay failed: {out.stderr.strip()[-300:]}")
    else:
        result = json.loads(out.stdout.strip().splitlines()[-1])
        for key, label, unit in KILL_FIGURES:
            value = result.get(key)
            section.figure(f"scale.n{n}.kill_relay.{key}", f"{n:,} hosts, a first-tier relay crashed: {label}",
                           unit).add(math.nan if value is None else float(value))
        section.setup[f"sim_n{n}_kill_relay"] = {k: v for k, v in result.items() if not isinstance(v, dict)}
    for n in QUICK_JOIN_SIZES if quick else join_sizes():
        nice = ["--leader-nice", "-10", "--voter-nice", "-10"] if n >= NICE_FROM else []
        out = subprocess.run([sys.executable, "-m", "tools.bench.scale", "join", str(n), "--prefix", "bs", *nice],
                             capture_output=True, text=True)
        lines = out.stdout.strip().splitlines()
        if not lines:  # no JSON line at all (a line is printed also when the agents did not converge)
            section.notes.append(f"join of {n} agents failed: {out.stderr.strip()[-300:]}")
            continue
        result = json.loads(lines[-1])
        if "error" in result or not result.get("all_joined"):
            section.notes.append(f"join of {n} agents did not converge within {result.get('timeout_s')} s: "
                                 f"{result.get('error') or result.get('last_poll')}"[:400])
        result["alive_at_h1_end"] = result.get("last_poll", {}).get("members_alive_at_h1")
        for key, label, unit in JOIN_FIGURES:
            value = result.get(key)
            section.figure(f"scale.join{n}.{key}", f"{n} agents started at once: {label}", unit,
                           goal=("<=", 0.0) if key == "gave_up" else None).add(
                math.nan if value is None else float(value))
        section.setup[f"join{n}"] = {k: v for k, v in result.items()
                                     if k in ("machine", "idle", "tries", "leader_nice", "voter_nice", "timeout_s")}
    out = subprocess.run([sys.executable, "-m", "tools.bench.scale", "interest"]
                         + (["--endpoints", "100000", "--hosts", "1000"] if quick else []),
                         capture_output=True, text=True)
    if out.returncode != 0:
        section.notes.append(f"interest sizing failed: {out.stderr.strip()[-300:]}")
    else:
        result = json.loads(out.stdout.strip().splitlines()[-1])
        for key, label, unit, scale in INTEREST_FIGURES:
            for q in ("p50", "p99"):
                section.figure(f"scale.interest.{key}.{q}", f"{result['hosts']:,} hosts, {result['endpoints']:,} "
                               f"endpoints: {label}, {q} over hosts", unit).add(result["per_host"][key][q] * scale)
        section.figure("scale.interest.full_snapshot_kb", "the whole state's snapshot (every host holds it today)",
                       "KB").add(result["full"]["snapshot_bytes"] / 1e3)
        section.setup["interest"] = {k: result[k] for k in ("workload", "full", "empty_state_heap_kib")}
    return section


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("--reps", "--quick"):  # the report's call: the "scale" section as one JSON line
        from tools.bench._figures import section_main

        return section_main(run, __doc__ or "", "small sizes: 1,000 simulated hosts, 20 agents, 100,000 endpoints",
                            argv)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 epilog="`--reps N [--quick]` instead of a part: the report's \"scale\" section "
                                        "(simulation, a join of 50 agents, interest) as one JSON line")
    sub = ap.add_subparsers(dest="part", required=True)
    j = sub.add_parser("join", help="N whole agents started at once (root: a lab)")
    j.add_argument("sizes", type=int, nargs="+", metavar="N")
    j.add_argument("--prefix", default="bs", help="lab prefix (default bs)")
    j.add_argument("--seeds", type=int, default=1, help="join through h1..h<seeds> (default 1)")
    j.add_argument("--timeout-s", type=float, default=900.0, help="give up measuring after this long (default 900)")
    j.add_argument("--leader-nice", type=int, default=0,
                   help="run h1 (the bootstrap leader) at this niceness, e.g. -10: on 2 cores it otherwise gets "
                        "1/N of the CPU, which a real host, with its own CPU, never does")
    j.add_argument("--voter-nice", type=int, default=0,
                   help="run every Raft voter at this niceness, e.g. -10, from the poll (about 1 s) that sees "
                        "it promoted: a voter that gets 1/N of 2 cores stalls every commit")
    j.add_argument("--agent-set", action="append", default=[], metavar="KEY=VALUE",
                   help="a config override every agent gets (meshd agent --set), e.g. "
                        "transport.tcp_user_timeout_ms=5000; repeatable, recorded in the JSON line")
    i = sub.add_parser("interest", help="per-host state if a host held only its networks (pure, no root)")
    i.add_argument("--endpoints", type=int, default=1_000_000)
    i.add_argument("--hosts", type=int, default=10_000)
    i.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    failed = False
    if args.part == "join":
        bad = [n for n in args.sizes if not 2 <= n <= 244]
        if bad or not 1 <= args.seeds <= min(args.sizes):
            ap.error(f"N must be 2..244 (the lab's hosts) and --seeds 1..N: got {args.sizes}, {args.seeds}")
        from meshd.config import ConfigError, load

        try:  # before 200 agents fail on it
            load(profile=PROFILE, overrides=args.agent_set)
        except ConfigError as exc:
            ap.error(f"--agent-set: {exc}")
        for n in args.sizes:
            result = join_storm(n, args.prefix, args.seeds, args.timeout_s, args.leader_nice, args.voter_nice,
                                tuple(args.agent_set))
            failed |= "error" in result or not result.get("all_joined")
            print(json.dumps(result), flush=True)
            shutil.rmtree(WORKDIR, ignore_errors=True)
    else:
        print(json.dumps(interest(args.endpoints, args.hosts, args.seed)), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

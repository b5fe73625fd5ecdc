"""Report section "statesize": the replicated state at 1M allocations (the state benchmark)
and a cold restart of three Raft nodes holding it (the restart benchmark).

    .venv/bin/python -m tools.bench.statesize [--reps 3] [--quick]

Each repetition runs ``python -m tools.bench.state`` and then
``python -m tools.bench.restart`` (see their docstrings for the workloads) in
fresh processes, so one repetition's heap does not carry into the next, and
turns their JSON lines into report figures.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tools.bench._figures import Budget, Section, section_main

CONNECTS, QUICK_CONNECTS = 1_000_000, 100_000

FIGURES = (  # (result key, label, unit, scale, goal)
    ("snapshot_bytes", "snapshot size", "MB", 1e-6, ("<=", 32.0)),
    ("snapshot_s", "snapshot time", "s", 1.0, ("<=", 1.0)),
    ("restore_s", "restore time (cold start of the state)", "s", 1.0, ("<=", 0.5)),
    ("restore_cpu_s", "restore: CPU time", "s", 1.0, None),
    ("warm_s", "warm(): indexes the restore defers (built while a node elects)", "s", 1.0, None),
    ("warm_cpu_s", "warm(): CPU time", "s", 1.0, None),
    ("first_connect_s", "first Connect into the /12 after a restore, not warmed", "s", 1.0, None),
    ("first_connect_cpu_s", "first Connect after a restore, not warmed: CPU time", "s", 1.0, None),
    ("state_mib", "state held in memory (Python heap)", "MiB", 1.0, None),
    ("applies_per_cpu_s", "allocations applied per CPU second (pure state machine)", "/s", 1.0,
     (">=", 200_000.0)),
    ("bytes_applies_per_cpu_s", "log entries applied per CPU second (decode + apply + encode)", "/s", 1.0, None),
)
RESTART_FIGURES = (  # (result key, label, unit, goal): seconds from the restart of all three nodes
    ("cold_restart_to_commit_s", "cold restart of 3 Raft nodes → first commit", "s", ("<=", 2.0)),
    ("python_start_s", "restart: interpreter and imports (leader)", "s", None),
    ("restore_s", "restart: snapshot restored into the state (leader)", "s", None),
    ("leader_known_s", "restart: leader elected and known", "s", None),
    ("warmed_at_s", "restart: warm() done (leader)", "s", None),
)
#: log entries after the snapshot when the nodes are killed
TAIL = 2000


def estimate_s(budget: Budget) -> float:
    return budget.reps * (25 if budget.quick else 120)


def run(budget: Budget) -> Section:
    connects = QUICK_CONNECTS if budget.quick else CONNECTS
    section = Section(
        "statesize", f"Scale: replicated state at {connects:,} allocations",
        method=(f"`python -m tools.bench.state --connects {connects}` per repetition, in a fresh process: "
                "one /12 network and as many /24s as needed, 1,000 hosts, one endpoint in ten with a QoS. "
                "The snapshot is the bytes Raft stores and sends to a new member; the restore is what a "
                "restarting agent pays before it serves (networks' endpoint dicts and the cross-network "
                "indexes are built at first use, or by warm()); the heap is measured with tracemalloc on a "
                "restored state with every index built. Then "
                f"`python -m tools.bench.restart --connects {connects} --tail {TAIL}`: three "
                "`tools/bench/raft.py node --sm meshd` processes (ZeroMQ + CURVE on loopback, fsync, 50 ms "
                "ticks, election after 10-20 ticks) start from a snapshot of that state, commit "
                f"{TAIL:,} more Connects (left in the log), are killed (SIGKILL) and started again; the time "
                "is until a new Connect sent to node a comes back committed, with the restarted leader's "
                "timeline. All three nodes share this machine's 2 cores."),
        setup={"connects": connects, "reps": budget.reps},
    )
    for rep in range(budget.reps):
        out = subprocess.run([sys.executable, "-m", "tools.bench.state", "--connects", str(connects)],
                             capture_output=True, text=True)
        if out.returncode != 0:
            section.notes.append(f"rep {rep + 1}: the state benchmark failed: {out.stderr.strip()[-400:]}")
            continue
        result = json.loads(out.stdout.strip().splitlines()[-1])
        for key, label, unit, scale, goal in FIGURES:
            section.figure(f"statesize.{key}", label, unit, goal=goal).add(result[key] * scale)
        section.setup.setdefault("load_avg_1m", []).append(result.get("load_avg_1m"))
        out = subprocess.run([sys.executable, "-m", "tools.bench.restart", "--connects", str(connects),
                              "--tail", str(TAIL), "--dir", budget.workdir], capture_output=True, text=True)
        if out.returncode != 0:
            section.notes.append(f"rep {rep + 1}: the restart benchmark failed: {out.stderr.strip()[-400:]}")
            continue
        result = json.loads(out.stdout.strip().splitlines()[-1])
        for key, label, unit, goal in RESTART_FIGURES:
            section.figure(f"statesize.restart.{key}", label, unit, goal=goal).add(result[key])
        section.setup.setdefault("restart_load_avg_1m", []).append(result.get("load_avg_1m"))
    return section


def main(argv: list[str] | None = None) -> int:
    return section_main(run, __doc__, f"{QUICK_CONNECTS:,} allocations instead of {CONNECTS:,}", argv)


if __name__ == "__main__":
    sys.exit(main())

"""Report section "statesize": the replicated state at 1M allocations (the state benchmark).

    .venv/bin/python -m tools.bench.statesize [--reps 3] [--quick]

Each repetition runs ``python -m tools.bench.state`` (see its docstring for
the workload) in a fresh process, so one repetition's heap does not carry
into the next, and turns its JSON line into report figures.
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
    ("restore_s", "restore time (cold start of the state)", "s", 1.0, ("<=", 1.0)),
    ("state_mib", "state held in memory (Python heap)", "MiB", 1.0, None),
    ("applies_per_cpu_s", "allocations applied per CPU second (pure state machine)", "/s", 1.0,
     (">=", 200_000.0)),
    ("bytes_applies_per_cpu_s", "log entries applied per CPU second (decode + apply + encode)", "/s", 1.0, None),
)


def estimate_s(budget: Budget) -> float:
    return budget.reps * (12 if budget.quick else 75)


def run(budget: Budget) -> Section:
    connects = QUICK_CONNECTS if budget.quick else CONNECTS
    section = Section(
        "statesize", f"Scale: replicated state at {connects:,} allocations",
        method=(f"`python -m tools.bench.state --connects {connects}` per repetition, in a fresh process: "
                "one /12 network and as many /24s as needed, 1,000 hosts, one endpoint in ten with a QoS. "
                "The snapshot is the bytes Raft stores and sends to a new member; the restore is what a "
                "restarting agent pays before it serves; the heap is measured with tracemalloc on a "
                "restored state."),
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
    return section


def main(argv: list[str] | None = None) -> int:
    return section_main(run, __doc__, f"{QUICK_CONNECTS:,} allocations instead of {CONNECTS:,}", argv)


if __name__ == "__main__":
    sys.exit(main())

"""Report section "membership": meshd's gossip beside Serf at the same N and settings.

    .venv/bin/python -m tools.bench.membership [--reps 3] [--quick]

A thin wrapper over the gossip benchmark (``tools/bench/gossip.py``, whose
docstring gives the method): per repetition and per N it runs
``measure_size`` for meshd and then for Serf (interleaved, so machine noise
hits both alike), both with the LAN profile, and turns the results into
report figures with the Serf figure as the anchor of each meshd figure.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from tools.bench import gossip
from tools.bench._figures import Budget, Plot, Section, section_main

SIZES = (20, 50)
QUICK_SIZES = (5,)
KILL_TRIALS = 2
IDLE_S = 10.0
PROFILE = "lan"

# (result key, label, unit); kill and join figures are the mean of the trials in one repetition
MEASURES = (
    ("join_seen_by_all_s", "join seen by all", "s"),
    ("leave_seen_by_all_s", "leave seen by all", "s"),
    ("kill_all_failed_s", "kill -9 → all report failed", "s"),
    ("kill_first_suspect_s", "kill -9 → first suspicion", "s"),
    ("idle_cpu_pct", "idle CPU per member", "%"),
    ("rss_mib", "RSS per member", "MiB"),
    ("bytes_written_per_s", "bytes written per member", "B/s"),
    ("false_failures", "false failures", "count"),
    ("leave_reported_as_fail", "leaves reported as failures", "count"),
)


def sizes(budget: Budget) -> tuple[int, ...]:
    return QUICK_SIZES if budget.quick else SIZES


def estimate_s(budget: Budget) -> float:
    # start-up ~0.6 s per member, idle window, join/leave, kill trials of ~8-12 s each; Serf alike
    per_rep = sum(2 * (0.6 * n + IDLE_S + 5 + KILL_TRIALS * 12) for n in sizes(budget))
    return budget.reps * per_rep


def _value(x: Any) -> float:
    """A figure value from a gossip result field: lists are averaged; None (not reached) is NaN."""
    if isinstance(x, list):
        vals = [v for v in x if v is not None]
        return statistics.fmean(vals) if vals and len(vals) == len(x) else float("nan")
    return float("nan") if x is None else float(x)


def run(budget: Budget) -> Section:
    section = Section(
        "membership", "Membership: meshd gossip beside Serf",
        method=(
            "Every member is a real process on loopback: `python -m meshd.gossip` (CURVE on) or "
            "`serf agent` (keyring encryption on), both with the LAN profile. Each membership event is "
            "stamped with the wall clock when the benchmark reads the member's own report (meshd: its JSON "
            "event line; Serf: its `EventMember*` / `Suspect` log line). Per N: a new member joins (time "
            "until every member reported it; t0 is meshd's ready line, Serf's process start), leaves "
            "gracefully (time until all reported the leave), then members are killed with SIGKILL one by "
            f"one ({KILL_TRIALS} trials; time to the first suspicion and until all report failed; the "
            f"figure is the mean of the trials). Idle CPU, RSS and bytes written per member are read from "
            f"/proc over a {IDLE_S:.0f} s idle window. Same code as `tools/bench/gossip.py`."),
        setup={"sizes": list(sizes(budget)), "profile": PROFILE, "kill_trials": KILL_TRIALS,
               "idle_s": IDLE_S, "reps": budget.reps},
    )
    if not shutil.which("serf"):
        section.notes.append("serf is not installed (apt-get install serf): meshd figures only")
    raw: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-membership-", dir=budget.workdir) as tmp:
        impls: list[gossip.Meshd | gossip.Serf] = [gossip.Meshd(Path(tmp), PROFILE)]
        if shutil.which("serf"):
            impls.append(gossip.Serf(Path(tmp), PROFILE))
        for rep in range(budget.reps):
            for n in sizes(budget):
                for impl in impls:
                    try:
                        result = gossip.measure_size(impl, n, IDLE_S, KILL_TRIALS)
                    except Exception as exc:  # one failed run is reported, the others still measured
                        section.notes.append(f"rep {rep + 1}, {impl.label}, N={n}: {type(exc).__name__}: {exc}")
                        continue
                    result["rep"] = rep
                    raw.append(result)
                    _add_figures(section, impl.label, n, result)
    section.setup["raw"] = raw
    section.plots.append(_plot(section))
    return section


def _add_figures(section: Section, impl: str, n: int, result: dict[str, Any]) -> None:
    for key, label, unit in MEASURES:
        kw: dict[str, Any] = {}
        if impl == "meshd":
            kw = {"anchor": "Serf, same N, same run", "ratio_to": f"membership.serf.n{n}.{key}"}
            if key in ("false_failures", "leave_reported_as_fail"):
                kw["goal"] = ("<=", 0.0)
        section.figure(f"membership.{impl}.n{n}.{key}", f"{impl}, N={n}: {label}", unit, **kw).add(
            _value(result.get(key)))


def _plot(section: Section) -> Plot:
    lines: dict[str, list[list[Any]]] = {}
    for impl in ("meshd", "serf"):
        for key, label in (("join_seen_by_all_s", "join"), ("leave_seen_by_all_s", "leave"),
                           ("kill_all_failed_s", "kill → all failed")):
            pts = [(int(f.key.split(".")[2][1:]), f.median) for f in section.figures
                   if f.key.startswith(f"membership.{impl}.") and f.key.endswith(key)]
            if pts:
                lines[f"{impl}: {label}"] = [[x for x, _ in pts], [y for _, y in pts]]
    return Plot("membership_times", "Membership events seen by every member (median)", "members (N)",
                "seconds", lines)


def main(argv: list[str] | None = None) -> int:
    return section_main(run, __doc__, f"N = {QUICK_SIZES} instead of {SIZES}", argv)


if __name__ == "__main__":
    sys.exit(main())

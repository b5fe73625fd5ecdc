"""The benchmark report: measure meshd end to end beside Serf, etcd and Docker; write docs/benchmarks.md.

    sudo .venv/bin/python -m tools.bench.report                  # every section, 3 repetitions (~30 min here)
    sudo .venv/bin/python -m tools.bench.report --budget 20      # fit 20 minutes: fewer repetitions
    sudo .venv/bin/python -m tools.bench.report --quick --reps 1 # smoke run with small sizes (~8 min)
    sudo .venv/bin/python -m tools.bench.report --sections dataplane   # re-measure one, keep the rest
    .venv/bin/python -m tools.bench.report --render-only         # re-render from docs/benchmarks.json

Each section is a module of tools/bench (``estimate_s(budget)``, ``run(budget)
-> Section``, see ``_figures.py``) and runs in its own process (a hung or
crashed section is stopped, reported and cleaned up by its own ``finally``
blocks; the others still run; one that measured nothing keeps the figures of
its last good run, marked with the error). Before a section starts, the report checks
its estimate against what is left of ``--budget`` and lowers the repetitions
to fit, or skips it and says so.

Writes ``docs/benchmarks.md`` (tables and plots), ``docs/benchmarks.json``
(every raw figure, re-renderable with ``--render-only``) and
``docs/benchmarks/*.png``. Needs root (lab namespaces, Docker), matplotlib
(``pip install -e '.[bench]'``), and apt ``serf``, ``etcd-server`` and
``iperf3`` (``tools/setup.sh --bench`` installs all of them).
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tools.bench._figures import Budget, Section
from tools.bench._render import machine_info, render

REPO = Path(__file__).resolve().parents[2]
SECTIONS = ("attach", "converge", "membership", "alloc", "dataplane", "statesize", "dns", "scale")
STOP_GRACE_S = 90  # after SIGINT, time for a section's finally blocks to clean up


def _module(name: str) -> Any:
    return importlib.import_module(f"tools.bench.{name}")


def plan(names: list[str], budget_s: float, reps: int, quick: bool) -> list[tuple[str, int, float]]:
    """``(section, reps, estimate_s)`` per section, in order, fitting ``budget_s`` in all.

    While the estimates add up to more than the budget, the section with the
    largest estimate loses one repetition; when every section is down to one
    and it still does not fit, sections are dropped from the end (reps 0).
    """
    est = lambda name, r: _module(name).estimate_s(Budget(reps=r, quick=quick))  # noqa: E731
    chosen = {name: reps for name in names}
    cost = {name: est(name, reps) for name in names}
    while sum(cost.values()) > budget_s:
        shrinkable = [n for n in names if chosen[n] > 1]
        if not shrinkable:
            break
        name = max(shrinkable, key=lambda n: cost[n])
        chosen[name] -= 1
        cost[name] = est(name, chosen[name])
    for name in reversed(names):
        if sum(cost[n] for n in names if chosen[n]) <= budget_s:
            break
        chosen[name] = 0
    return [(name, chosen[name], cost[name]) for name in names]


def run_section(name: str, reps: int, quick: bool, estimate_s: float, logdir: Path) -> Section:
    """Run one section module in its own process group; a section that overruns is interrupted."""
    argv = [sys.executable, "-m", f"tools.bench.{name}", "--reps", str(reps), *(["--quick"] if quick else [])]
    log = logdir / f"{name}.log"
    t0 = time.monotonic()
    with log.open("w") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, text=True, cwd=REPO,
                                start_new_session=True)
        try:
            stdout, _ = proc.communicate(timeout=max(300.0, 3 * estimate_s))
        except subprocess.TimeoutExpired:
            _interrupt(proc)
            return Section(name, name, "", error=f"stopped after {time.monotonic() - t0:.0f} s "
                                                 f"(estimate {estimate_s:.0f} s); log: {log}")
        except BaseException:
            _interrupt(proc)
            raise
    lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
    if not lines:
        tail = log.read_text()[-600:] if log.exists() else ""
        return Section(name, name, "", error=f"exit {proc.returncode}, no result; log {log}: {tail}")
    section = Section.from_json(json.loads(lines[-1]))
    section.seconds = round(time.monotonic() - t0, 1)
    return section


def _interrupt(proc: subprocess.Popen) -> None:
    """SIGINT the section's process group (its finally blocks clean up), then SIGKILL it."""
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass  # the section exited on its own between the timeout and the signal


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="\n\n".join(__doc__.split("\n\n")[1:]),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=float, default=60.0, metavar="MIN",
                    help="wall-clock minutes for all measuring (default 60); repetitions are lowered to fit")
    ap.add_argument("--reps", type=int, default=3, help="repetitions per section (default 3)")
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke run, not figures to publish")
    ap.add_argument("--sections", default=",".join(SECTIONS),
                    help=f"comma-separated subset of {','.join(SECTIONS)}; the others keep their last figures")
    ap.add_argument("--out", default=str(REPO / "docs" / "benchmarks.md"), help="the markdown report")
    ap.add_argument("--render-only", action="store_true", help="only re-render the report from its JSON")
    args = ap.parse_args(argv)
    out = Path(args.out)
    raw_path = out.with_suffix(".json")
    report = json.loads(raw_path.read_text()) if raw_path.exists() else {"sections": {}}
    if not args.render_only:
        names = [s.strip() for s in args.sections.split(",") if s.strip()]
        unknown = sorted(set(names) - set(SECTIONS))
        if unknown:
            ap.error(f"unknown section(s) {', '.join(unknown)}: choose from {', '.join(SECTIONS)}")
        if os.geteuid() != 0:
            ap.error("needs root (lab namespaces, Docker): run it with sudo")
        measure(report, names, args)
        raw_path.write_text(json.dumps(report, indent=1) + "\n")
    sections = [Section.from_json(report["sections"][k]) for k in SECTIONS if k in report["sections"]]
    out.write_text(render(report, sections, out.with_suffix("")))
    print(f"wrote {out}, {raw_path} and plots in {out.with_suffix('')}/", file=sys.stderr)
    return 0


def keep_or_replace(report: dict[str, Any], section: Section, started: str) -> None:
    """Store a measured section in ``report``.  A run that failed before measuring anything
    (no figures: e.g. etcd not installed) does not wipe the figures of an earlier run: they
    stay, marked with this run's error."""
    old = report["sections"].get(section.key)
    if section.error and not section.figures and old and old.get("figures"):
        measured = old.get("setup", {}).get("measured", "an earlier run")
        old["error"] = (f"re-measuring failed in the run of {started} ({section.error}); "
                        f"these figures are from {measured}")
        return
    report["sections"][section.key] = section.to_json()


def _bench_env() -> list[str]:
    """``NAME=value`` of every MESHD_BENCH_* variable set: they change what a section measures
    (MESHD_BENCH_SCALE_JOINS adds the 200-agent join), so the run's command names them."""
    return [f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("MESHD_BENCH_")]


def measure(report: dict[str, Any], names: list[str], args: argparse.Namespace) -> None:
    started = datetime.datetime.now(datetime.UTC)
    logdir = Path("/var/tmp/meshd-bench-logs")
    logdir.mkdir(exist_ok=True)
    report["machine"] = machine_info()
    run = {"started": started.isoformat(timespec="seconds"), "quick": args.quick, "budget_min": args.budget,
           "reps_asked": args.reps, "sections": names, "meshd_commit": report["machine"]["meshd_commit"],
           "command": " ".join([*_bench_env(), "python -m tools.bench.report", *sys.argv[1:]])}
    report["runs"] = [*report.get("runs", []), run][-10:]  # sections kept from earlier runs name theirs
    deadline = time.monotonic() + args.budget * 60
    for name, reps, est in plan(names, args.budget * 60, args.reps, args.quick):
        left = deadline - time.monotonic()
        if reps == 0 or est > left:
            print(f"report: {name}: skipped (estimate {est:.0f} s, {left:.0f} s left of the budget)",
                  file=sys.stderr)
            report["sections"].setdefault(name, Section(name, name, "").to_json())["error"] = (
                f"not measured in the run of {run['started']}: estimate {est:.0f} s > budget left "
                f"{left:.0f} s")
            continue
        print(f"report: {name}: {reps} repetition(s), about {est / 60:.1f} min", file=sys.stderr, flush=True)
        section = run_section(name, reps, args.quick, est, logdir)
        section.setup["measured"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        section.setup["quick"] = args.quick
        section.setup["meshd_commit"] = run["meshd_commit"]
        keep_or_replace(report, section, run["started"])
        print(f"report: {name}: done in {section.seconds:.0f} s{' — ' + section.error if section.error else ''}",
              file=sys.stderr, flush=True)
    run["finished"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    report["machine"]["load_avg_end"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])


if __name__ == "__main__":
    sys.exit(main())

"""`python -m tools.chaos`: a seeded chaos run against real agents in a lab (docs/chaos.md).

    sudo .venv/bin/python -m tools.chaos --quick                  # 3 hosts, 3 kills, 1 restart, 1 cut: ~2 min
    sudo .venv/bin/python -m tools.chaos --kills 100 --cuts 20    # issue 13's target (about 20 min)
    sudo .venv/bin/python -m tools.chaos --seed 1234 ...          # replay a run's schedule

Prints a table (invariant, checks, violations) and the findings; exits 1 when
any invariant is violated, 2 on a usage or setup error.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shlex
import signal
import sys
from pathlib import Path

from tools.chaos._report import as_json, report
from tools.chaos._runner import run
from tools.chaos._schedule import ChaosParams, Schedule, ScheduleError, make_schedule
from tools.lab import LabError

DEFAULT_PREFIX = "mchaos"
QUICK = {"hosts": 3, "replicas": 2, "kills": 3, "restarts": 1, "cuts": 1, "lifecycles": 1}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tools.chaos", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, help="schedule seed (default: random; printed for replay)")
    p.add_argument("--hosts", type=int, help="lab hosts, each running a meshd agent (default 5)")
    p.add_argument("--replicas", type=int, help="containers per network, on as many hosts (default 4)")
    p.add_argument("--kills", type=int, help="kill -9 cycles of random agents and the leader (default 100)")
    p.add_argument("--restarts", type=int, help="graceful (SIGTERM) restarts (default 10)")
    p.add_argument("--cuts", type=int, help="cut/heal cycles: whole host, pair, one-way (default 20)")
    p.add_argument("--lifecycles", type=int, help="network create/connect/disconnect/delete cycles (default 10)")
    p.add_argument("--toggles-per-min", type=float, help="connect/disconnect stream rate (default 30)")
    p.add_argument("--check-every", type=int, help="faults between checkpoints (default 10)")
    p.add_argument("--duration", type=float, help="length of the fault phase in seconds (default: as drawn)")
    p.add_argument("--profile", choices=("local", "lan"), default="local", help="agent timing profile")
    p.add_argument("--quick", action="store_true",
                   help="a short run: " + ", ".join(f"{k}={v}" for k, v in QUICK.items()))
    p.add_argument("--prefix", default=DEFAULT_PREFIX, help=f"lab prefix (default {DEFAULT_PREFIX})")
    p.add_argument("--workdir", type=Path, help="agent data and logs (default /tmp/meshd-chaos-PREFIX)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the table and findings as JSON")
    p.add_argument("--dry-run", action="store_true", help="print the schedule and exit")
    p.add_argument("--debug", action="store_true", help="debug logging and tracebacks")
    return p.parse_args(argv)


def params_from(args: argparse.Namespace) -> ChaosParams:
    given = {k: getattr(args, k) for k in ("hosts", "replicas", "kills", "restarts", "cuts", "lifecycles",
                                           "toggles_per_min", "check_every") if getattr(args, k) is not None}
    base = QUICK if args.quick else {}
    return ChaosParams(seed=args.seed, profile=args.profile, duration_s=args.duration, **{**base, **given})


def replay_command(argv: list[str], seed: int) -> str:
    """The command line that replays this run's schedule: its arguments with ``--seed`` set."""
    argv = list(argv)
    if "--seed" in argv:
        i = argv.index("--seed")
        del argv[i:i + 2]
    argv = [a for a in argv if not a.startswith("--seed=")]
    return shlex.join(["python", "-m", "tools.chaos", *argv, "--seed", str(seed)])


def _print_schedule(schedule: Schedule) -> int:
    try:
        print(schedule.summary())
        for f in schedule.faults:
            print(f"{f.start_s:8.1f}s  {f.describe()} until {f.end_s:.1f}s")
    except BrokenPipeError:  # `... --dry-run | head`: the reader has seen enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM tears down like Ctrl-C


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1 << 31)
    try:
        params = params_from(args)
        if args.dry_run:
            return _print_schedule(make_schedule(params))
        logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO, format="%(message)s")
        signal.signal(signal.SIGTERM, _interrupt)
        workdir = args.workdir or Path(f"/tmp/meshd-chaos-{args.prefix}")
        result = run(params, prefix=args.prefix, workdir=workdir)
    except (ScheduleError, LabError, RuntimeError) as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted; everything was torn down (seed {args.seed})", file=sys.stderr)
        return 130
    print(report(result.tally, result.schedule.summary(), replay_command(argv, args.seed), result.notes))
    print(f"agent logs: {result.workdir}")
    if args.json:
        doc = as_json(result.tally, args.seed, result.schedule.summary(), result.notes)
        args.json.write_text(json.dumps(doc, indent=1) + "\n")
    return 0 if result.tally.ok() else 1


if __name__ == "__main__":
    sys.exit(main())

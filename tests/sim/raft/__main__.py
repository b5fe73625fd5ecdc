"""Run many seeded simulations: ``python -m tests.sim.raft --seeds 10000``.

``--scale N`` measures the relay tree's fan-out instead (``scale.py``).

A failure prints the seed, the violation and the command that replays it
(``--seed N``); exit status 1.  ``--jobs`` spreads seeds over processes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor

from .sim import Sim, Violation


def run_range(start: int, count: int, duration_ms: float) -> tuple[int, list[str], dict]:
    failures: list[str] = []
    totals: dict[str, int] = {}
    for seed in range(start, start + count):
        try:
            stats = Sim(seed, duration_ms).run()
        except Violation as exc:
            failures.append(str(exc))
            continue
        except Exception as exc:  # a crash of the core is a failure too
            failures.append(f"seed {seed}: {type(exc).__name__}: {exc}")
            continue
        for k, v in stats.items():
            totals[k] = totals.get(k, 0) + v
    return count, failures, totals


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.sim.raft", description=__doc__)
    ap.add_argument("--seeds", type=int, default=1000, help="how many seeds to run")
    ap.add_argument("--start", type=int, default=0, help="first seed")
    ap.add_argument("--seed", type=int, help="replay exactly this one seed (traceback shown)")
    ap.add_argument("--duration-ms", type=float, default=1500.0, help="virtual time with faults")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes")
    ap.add_argument("--scale", type=int, metavar="N",
                    help="fan-out measurement instead: N hosts, no faults (tests/sim/raft/scale.py)")
    ap.add_argument("--fanout", type=int, default=16, help="--scale: RaftConfig.relay_fanout (0 = off)")
    ap.add_argument("--rate", type=float, default=20.0, help="--scale: entries proposed per second")
    ap.add_argument("--seconds", type=float, default=5.0, help="--scale: how long entries are proposed")
    ap.add_argument("--proc-us", type=float, default=20.0,
                    help="--scale: CPU cost of one message stepped or sent, microseconds")
    ap.add_argument("--kill-relay", action="store_true",
                    help="--scale: the first relay crashes as the measured window opens")
    args = ap.parse_args(argv)
    if args.scale is not None:
        from .scale import ScaleSim

        print(json.dumps(ScaleSim(args.scale, fanout=args.fanout, rate=args.rate, seconds=args.seconds,
                                  proc_us=args.proc_us, kill_relay=args.kill_relay).run()))
        return 0
    if args.seed is not None:
        print(json.dumps(Sim(args.seed, args.duration_ms).run()))
        return 0
    t0 = time.monotonic()
    chunk = max(1, args.seeds // (args.jobs * 8))
    starts = range(args.start, args.start + args.seeds, chunk)
    counts = [min(chunk, args.start + args.seeds - s) for s in starts]
    done, failures, totals = 0, [], {}
    with ProcessPoolExecutor(args.jobs) as pool:
        for n, fails, stats in pool.map(run_range, starts, counts, [args.duration_ms] * len(counts)):
            done += n
            failures.extend(fails)
            for k, v in stats.items():
                totals[k] = totals.get(k, 0) + v
    for f in failures:
        print("FAIL", f, file=sys.stderr)
    if failures:
        first = int(failures[0].split()[1].rstrip(":"))
        print(f"replay: .venv/bin/python -m tests.sim.raft --seed {first}", file=sys.stderr)
    print(json.dumps({"seeds": done, "failures": len(failures),
                      "seconds": round(time.monotonic() - t0, 1), **totals}))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

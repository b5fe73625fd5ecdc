"""Long SWIM simulations from the command line (not part of CI).

Examples::

    .venv/bin/python tests/sim/gossip/run_gossip_sim.py crash --members 10000
    .venv/bin/python tests/sim/gossip/run_gossip_sim.py crash --members 200 --seeds 100 --loss 0.1
    .venv/bin/python tests/sim/gossip/run_gossip_sim.py partition --members 1000
    .venv/bin/python tests/sim/gossip/run_gossip_sim.py load --members 100 1000 10000
    .venv/bin/python tests/sim/gossip/run_gossip_sim.py heal --members 5 20 --seeds 20 --hold
    .venv/bin/python tests/sim/gossip/run_gossip_sim.py overload --members 50 100 --seeds 5 --every-s 10 --stop-s 6

Prints one JSON line per run; exits 1 if any run had a false failure, an
undetected crash or an unhealed partition.  ``heal`` runs each cut kind
(whole host, pair, one way; ``--cut-s``) per seed, local profile unless
``--profile lan``; ``--hold`` delivers everything sent across the cut late,
after the heal, as a TCP backlog would.  ``overload`` starves every member
(frozen about ``--stop-s`` of every ``--every-s``, as agents sharing a few
cores) and crashes one after 30 s: it measures false failures and detection
under that load, and exits 1 only if the crash went undetected.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from gossip_scenarios import (
    CUTS,
    crash_scenario,
    heal_scenario,
    join_scenario,
    load_per_member,
    overload_scenario,
    partition_scenario,
)

from meshd.gossip import GossipConfig


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("scenario", choices=["crash", "partition", "join", "load", "heal", "overload"])
    p.add_argument("--members", type=int, nargs="+", default=[1000])
    p.add_argument("--seeds", type=int, default=1, help="runs per size, seeds 1..N")
    p.add_argument("--loss", type=float, default=None, help="message loss (default 0.05; 0 for heal)")
    p.add_argument("--slow", type=int, default=2, help="members frozen 80%% of each period")
    p.add_argument("--crashes", type=int, default=3)
    p.add_argument("--after", type=float, default=60.0, help="seconds simulated after the crash")
    p.add_argument("--profile", choices=["lan", "local"], default=None,
                   help="timing (default lan; local for heal)")
    p.add_argument("--every-s", type=float, default=10.0, help="overload: each member's freeze period")
    p.add_argument("--stop-s", type=float, default=6.0, help="overload: how long it is frozen per period")
    p.add_argument("--cut-s", type=float, default=15.0, help="heal: how long each cut lasts")
    p.add_argument("--hold", action="store_true", help="heal: deliver what crossed the cut late")
    args = p.parse_args(argv)
    if args.profile is None:
        args.profile = "local" if args.scenario == "heal" else "lan"
    cfg = GossipConfig.lan() if args.profile == "lan" else GossipConfig.local()
    if args.scenario == "heal":
        return _heal(args, cfg)
    args.loss = 0.05 if args.loss is None else args.loss
    ok = True
    for n in args.members:
        for seed in range(1, args.seeds + 1):
            t0 = time.process_time()
            if args.scenario == "crash":
                _, r = crash_scenario(n, seed=seed, crashes=args.crashes, loss=args.loss,
                                      slow=args.slow, config=cfg, after_s=args.after)
                ok &= r["false_failures"] == 0 and r["undetected"] == 0
            elif args.scenario == "partition":
                _, r = partition_scenario(n, seed=seed, config=cfg)
                ok &= r["healed_after_periods"] is not None
            elif args.scenario == "overload":
                _, r = overload_scenario(n, seed=seed, every_s=args.every_s, stop_s=args.stop_s,
                                         after_s=args.after, config=cfg)
                ok &= r["undetected"] == 0
            elif args.scenario == "join":
                _, r = join_scenario(n, seed=seed, config=cfg)
                ok &= r["members_with_full_view"] == n and r["false_failures"] == 0
            else:
                r = {"members": n, "seed": seed,
                     "msgs_per_member_per_period": load_per_member(n, seed=seed, config=cfg)}
            r["profile"] = args.profile
            r["cpu_s"] = round(time.process_time() - t0, 1)
            r["max_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
            print(json.dumps(r), flush=True)
    return 0 if ok else 1


def _heal(args: argparse.Namespace, cfg: GossipConfig) -> int:
    ok = True
    for n in args.members:
        for seed in range(1, args.seeds + 1):
            for cut in CUTS:
                _, r = heal_scenario(n, seed=seed, cut=cut, cut_s=args.cut_s, hold=args.hold,
                                     loss=args.loss or 0.0, config=cfg)
                ok &= r["false_failures"] == 0 and r["healed_after_s"] is not None
                print(json.dumps({**r, "profile": args.profile}), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

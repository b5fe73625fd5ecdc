"""``meshd network advise`` and ``meshd network create --mode auto``: which model fits the stated needs.

The answer comes from :mod:`meshd.advisor` (the shipped regression, then the
hard constraints). The constraints are the cluster's, asked of this host's
agent when one runs: the networks (does ``--subnet`` overlap another
tenant's? does ``--tenant`` already overlap others?), the members' kernels
(``dataplane_missing`` in QUERY_MEMBERS) and, with ``--l2-prefix``, whether
every member's underlay address lies in this host's /LEN (an approximation of
one L2 segment; ``--no-shared-l2`` states that they do not). With no agent the
weights alone answer, and one line says that nothing was checked.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
from pathlib import Path
from typing import Any

from meshd import advisor
from meshd.api import CONTROL_SOCKET, MsgType
from meshd.api.client import AgentNotRunning, probe_control_socket
from meshd.cli_errors import CliError, UsageError
from meshd.cli_verbs import call, int_in

WEIGHT_FLAGS = {need: f"--{need}" for need in advisor.NEEDS}
_WEIGHT = int_in(advisor.WEIGHT_MIN, advisor.WEIGHT_MAX, "0 = does not matter, 10 = must have")
ADVISE_HELP = (
    "Say how much each need matters, 0 (not at all) to 10 (must have), and get the network model that fits: "
    "vxlan (the overlay: isolation, overlapping subnets, any routed underlay) or flat (macvlan on the hosts' "
    "LAN: the underlay's throughput, one L2 segment). A logistic regression trained as in seed 000 picks one "
    "(docs/advisor.md); the cluster's hard constraints then always win: a subnet overlapping another "
    "tenant's network needs vxlan, hosts without a shared L2 segment or a kernel without macvlan rule flat "
    "out. With no agent running, the weights alone answer.")


def cidr(text: str) -> str:
    """An argparse type: an IPv4 CIDR."""
    try:
        return str(ipaddress.IPv4Network(text, strict=False))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IPv4 CIDR (e.g. 10.1.0.0/24)") from None


def add_weight_flags(p: argparse.ArgumentParser, *, required: bool) -> None:
    """The four needs, the L2 flags and (for advise) --tenant/--subnet."""
    g = p.add_argument_group("needs (each 0..10: 0 = does not matter, 10 = must have)" if required else
                             "--mode auto: the needs (each 0..10) and the L2 segment; only with --mode auto")
    for need in advisor.NEEDS:
        g.add_argument(WEIGHT_FLAGS[need], type=_WEIGHT, metavar="0-10", required=required,
                       help=advisor.NEED_MEANINGS[need])
    g.add_argument("--l2-prefix", type=int_in(0, 32), metavar="LEN",
                   help="check that every member's underlay address lies in this host's /LEN (taken as one L2 "
                        "segment); without it the L2 segment is not checked")
    g.add_argument("--no-shared-l2", action="store_true",
                   help="the hosts do not share one L2 segment (routers between them): rules flat out")


def cmd_advise(args: argparse.Namespace) -> int:
    """``meshd network advise``."""
    subnet = args.subnet
    advice, constraints, why_unchecked = resolve(args, args.tenant, subnet)
    command = advisor.create_command(advice.mode, args.tenant, subnet)
    if args.json:
        print(json.dumps({**advice.as_map(), "weights": weights_map(args), "checked": constraints.checked,
                          "not_checked_because": why_unchecked or None, "command": command},
                         indent=2, sort_keys=True))
        return 0
    print(f"{advice.mode}  (the regression's P({advice.mode}) = {advice.probability:.2f}"
          + (", overridden by a hard constraint)" if advice.overridden else ")"))
    for reason in advice.reasons:
        print(f"  - {reason}")
    print_unchecked(advice, why_unchecked, sys.stdout)
    print(f"create it: {command}")
    return 0


def resolve_auto_mode(args: argparse.Namespace) -> str:
    """``network create --mode auto``: the mode the advisor picks for the create's flags, said before creating.

    Raises:
      UsageError: a need is missing.
      CliError: no model fits the cluster's constraints.
    """
    missing = [WEIGHT_FLAGS[n] for n in advisor.NEEDS if getattr(args, n) is None]
    if missing:
        raise UsageError(f"--mode auto needs all four needs; missing {', '.join(missing)}",
                         "add " + " ".join(f"{f} N" for f in missing) + " (each 0..10), or pick --mode vxlan")
    advice, _, why_unchecked = resolve(args, args.tenant or "default", args.subnet)
    out = sys.stderr if args.json else sys.stdout
    main_reasons = [r for r in advice.reasons[1:] if "weighed most" in r or r.startswith("hard constraint")]
    print(f"mode auto: {advice.mode} (the regression's P({advice.mode}) = {advice.probability:.2f}"
          f"{', overridden by a hard constraint' if advice.overridden else ''}): " + "; ".join(main_reasons),
          file=out)
    print_unchecked(advice, why_unchecked, out)
    return advice.mode


def resolve(args: argparse.Namespace, tenant: str | None, subnet: str | None
            ) -> tuple[advisor.Advice, advisor.Constraints, str]:
    """(advice, the constraints it used, why they were not checked: "" when an agent answered)."""
    weights = advisor.Weights(*(getattr(args, n) for n in advisor.NEEDS))
    if args.no_shared_l2 and args.l2_prefix is not None:
        raise UsageError("--no-shared-l2 and --l2-prefix contradict each other",
                         "give --l2-prefix LEN to have it checked, or --no-shared-l2 to state it")
    try:
        probe_control_socket(Path(args.run_dir) / CONTROL_SOCKET)
    except (AgentNotRunning, PermissionError) as exc:
        constraints = advisor.Constraints(shared_l2=False if args.no_shared_l2 else None)
        why = str(exc) if isinstance(exc, AgentNotRunning) else "the control socket is root-only"
    else:
        constraints, why = gather(args, tenant, subnet), ""
    try:
        return advisor.choose_mode(weights, constraints), constraints, why
    except advisor.NoModelFits as exc:
        raise CliError(str(exc), "remove the constraint that rules vxlan out (load the kernel module and "
                       "restart that host's agent)") from None


def gather(args: argparse.Namespace, tenant: str | None, subnet: str | None) -> advisor.Constraints:
    """The hard constraints, from the running agent's networks, members and status."""
    from meshd.agent import NEEDS

    members = call(args, "network advise", MsgType.QUERY_MEMBERS)["members"]
    networks = call(args, "network advise", MsgType.NETWORK_LIST)["networks"]
    local = call(args, "network advise", MsgType.QUERY_STATUS).get("advertise") if args.l2_prefix is not None else None
    return advisor.cluster_constraints(members, networks, tenant or "default", subnet,
                                       {str(mode): kinds for mode, kinds in NEEDS.items()},
                                       shared_l2=False if args.no_shared_l2 else None,
                                       l2_prefix=args.l2_prefix, local_address=local)


def print_unchecked(advice: advisor.Advice, why: str, out: Any) -> None:
    """One line: what was not checked, and why."""
    if advice.unchecked:
        print(f"not checked: {'; '.join(advice.unchecked)}" + (f", because {why}" if why else ""), file=out)


def weights_map(args: argparse.Namespace) -> dict[str, int]:
    return {n: getattr(args, n) for n in advisor.NEEDS}


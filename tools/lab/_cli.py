"""Command line of the lab: `python -m tools.lab [--prefix P] COMMAND`.

Commands: up, exec, container, cut, heal, status, down, demo, image, list.
Errors print one line with the fix and exit 1 (a traceback only with --debug).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from tools.lab import _docker
from tools.lab._lab import DEFAULT_PREFIX, Lab, LabStatus, lab_prefixes
from tools.lab._sh import LabError

DESCRIPTION = """\
The meshd lab: N hosts on one machine. Each host is a network namespace
(<prefix>-h1, -h2, ...) with eth0 = 192.0.2.(10+i)/24 on a bridge inside the
underlay namespace <prefix>-ul. Nothing in the lab can reach outside it.
Everything carries the prefix, so `down` cleans up even after a crash.

  python -m tools.lab up --hosts 3
  python -m tools.lab exec h1 -- ping -c1 192.0.2.12
  python -m tools.lab container h1 web      # prints the container's PID
  python -m tools.lab cut h2 ; python -m tools.lab heal h2
  python -m tools.lab cut h1 h2 [--oneway]   # only between h1 and h2
  python -m tools.lab status
  python -m tools.lab down
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tools.lab", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--prefix", default=DEFAULT_PREFIX, help="name prefix of everything the lab makes (default: mlab)")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up = sub.add_parser("up", help="create the underlay and N hosts (idempotent)")
    up.add_argument("--hosts", type=int, default=3, help="number of hosts (default 3)")
    ex = sub.add_parser("exec", help="run a command in a host: exec h1 -- CMD ARGS...")
    ex.add_argument("host", help="host name, e.g. h1")
    ex.add_argument("cmd", nargs=argparse.REMAINDER, help="command after --")
    ct = sub.add_parser("container", help="start a Docker container (--network none) on a host; prints its PID")
    ct.add_argument("host")
    ct.add_argument("name")
    cut = sub.add_parser("cut", help="partition a host from all others, or from PEER only")
    cut.add_argument("host")
    cut.add_argument("peer", nargs="?", help="cut only traffic between HOST and PEER")
    cut.add_argument("--oneway", action="store_true", help="with PEER: drop only HOST -> PEER")
    heal = sub.add_parser("heal", help="undo cuts of a host (or only those with PEER)")
    heal.add_argument("host")
    heal.add_argument("peer", nargs="?")
    sub.add_parser("status", help="show hosts, addresses, partitions and containers")
    sub.add_parser("down", help="remove everything with the prefix (netns, links, containers, nft tables)")
    demo = sub.add_parser("demo", help="up 3 hosts with a container each, show them, tear down on Enter")
    demo.add_argument("--no-wait", action="store_true", help="tear down at once instead of waiting for Enter")
    sub.add_parser("image", help=f"import {_docker.IMAGE} from busybox-static if missing")
    sub.add_parser("list", help="list the prefixes of labs on this machine")
    return p


def status_tables(st: LabStatus) -> list[Table]:
    """Rich tables for a lab status: hosts, then containers."""
    hosts = Table(title=f"lab {st.prefix}: hosts" + ("" if st.underlay else " (no underlay: run up)"))
    for col in ("host", "netns", "underlay address", "link", "partition", "containers"):
        hosts.add_column(col)
    for h in st.hosts:
        mine = ", ".join(f"{c.name} (pid {c.pid})" for c in st.containers if c.host == h.name)
        state = "[red]cut[/red]" if h.cut else "[green]connected[/green]"
        if h.cut_to and not h.cut:
            state = f"[yellow]cut to {','.join(h.cut_to)}[/yellow]"
        hosts.add_row(h.name, h.netns, ", ".join(h.addresses) or "-", "up" if h.link_up else "down", state, mine)
    ctrs = Table(title=f"lab {st.prefix}: containers" + (f" ({st.docker_error})" if st.docker_error else ""))
    for col in ("container", "docker name", "host", "pid", "id"):
        ctrs.add_column(col)
    for c in st.containers:
        ctrs.add_row(c.name, c.docker_name, c.host, str(c.pid), c.id[:12])
    return [hosts, ctrs]


def _exec(lab: Lab, host: str, cmd: Sequence[str]) -> int:
    cmd = list(cmd[1:] if cmd and cmd[0] == "--" else cmd)
    if not cmd:
        raise LabError("exec needs a command: python -m tools.lab exec h1 -- CMD ARGS...")
    argv = lab.exec_argv(host, *cmd)
    os.execvp(argv[0], argv)  # hand over the terminal and the exit code
    return 127  # not reached


def _demo(lab: Lab, console: Console, wait: bool) -> int:
    try:
        hosts = lab.up(3)
        for h in hosts:
            lab.container(h, "demo")
        for table in status_tables(lab.status()):
            console.print(table)
        if wait:
            console.print("Press Enter to tear the lab down.")
            try:
                input()
            except EOFError:
                pass  # no terminal (CI, a pipe): end of input counts as Enter
    finally:
        report = lab.down()
        console.print(f"lab {lab.prefix} down: {len(report.removed_netns)} netns, "
                      f"{report.removed_containers} containers")
    return 0


def _dispatch(args: argparse.Namespace, console: Console) -> int:
    lab = Lab(args.prefix)
    match args.command:
        case "up":
            for h in lab.up(args.hosts):
                console.print(f"{h.name}\tnetns={h.netns}\tunderlay={h.underlay_ip}/24 dev {h.underlay_dev}")
        case "exec":
            return _exec(lab, args.host, args.cmd)
        case "container":
            print(lab.container(args.host, args.name).pid)
        case "cut":
            lab.cut(args.host, args.peer, oneway=args.oneway)
        case "heal":
            lab.heal(args.host, args.peer)
        case "status":
            for table in status_tables(lab.status()):
                console.print(table)
        case "down":
            r = lab.down()
            console.print(f"removed {len(r.removed_netns)} netns, {r.removed_containers} containers {r.docker_error}")
        case "demo":
            return _demo(lab, console, wait=not args.no_wait)
        case "image":
            print(f"{_docker.IMAGE}: {'imported' if _docker.ensure_image() else 'present'}")
        case "list":
            for prefix in lab_prefixes():
                print(prefix)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args, Console())
    except LabError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130

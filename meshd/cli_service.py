"""``meshd service publish/unpublish/ls/inspect``: service discovery (issue 17, docs/dns.md).

Each verb is one request (SERVICE_PUBLISH 70, SERVICE_UNPUBLISH 71,
SERVICE_QUERY 72) to the local agent over its control socket.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from typing import Any

from meshd import cli_show
from meshd.api import MsgType
from meshd.cli_errors import CliError
from meshd.cli_verbs import call, int_in

_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z")

PUBLISH_HELP = """publish a container as an entry of service NAME in its network (its tenant only).

Containers of the tenant then resolve NAME.<domain> (A, healthy entries only,
rotated) and _NAME._tcp.<domain> (SRV, with the port). The container's host
checks it: that it runs, and with --check tcp that PORT accepts a TCP connect;
only changes of health are replicated. A failed host's entries leave DNS at
once and are removed after --ttl-s. Example:

  meshd service publish web my-nginx --port 80 --check tcp --interval-s 2
"""


def service_name(text: str) -> str:
    """An argparse type: one DNS label."""
    if not _LABEL.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a DNS label: use 1-63 letters, digits or '-', "
                                         "beginning and ending with a letter or digit")
    return text


def _publish(a: argparse.Namespace) -> dict[str, Any]:
    fields = {"name": a.name, "container_id": a.container_id, "port": a.port, "check": a.check}
    for key in ("network", "ttl_s", "interval_s", "weight"):
        if getattr(a, key) is not None:
            fields[key] = getattr(a, key)
    return fields


def _cmd(verb: str, msg_type: MsgType, build: Callable[[argparse.Namespace], dict[str, Any]]) -> Callable[..., int]:
    def run(args: argparse.Namespace) -> int:
        result = call(args, verb, msg_type, **build(args))
        if args.json:
            print(json.dumps(result, indent=2, sort_keys=True))
        elif "services" in result:
            rows = result["services"]
            if verb == "service inspect" and not rows:
                raise CliError(f"service {args.name!r} is not published", "list services with `meshd service ls`")
            cli_show.print_rows([_row(r) for r in rows], "services")
        else:
            cli_show.print_map(result)
        return 0

    return run


def _row(r: dict[str, Any]) -> dict[str, Any]:
    state = "healthy" if r["healthy"] else "unhealthy"
    if r.get("live") is False:
        state = "host down"
    return {"service": r["name"], "network": r["network"], "tenant": r["tenant"],
            "container": r["endpoint_id"][:12], "host": r["host"], "address": f"{r['ip']}:{r['port']}",
            "check": r["check"] + (f"/{r['interval_s']}s" if r["check"] == "tcp" else ""), "ttl_s": r["ttl_s"],
            "state": state}


def add_verbs(sub: argparse._SubParsersAction, verb: Callable[..., argparse.ArgumentParser]) -> None:
    svc = sub.add_parser("service", help="publish containers as named services; list, inspect, unpublish")
    s = svc.add_subparsers(dest="service_command", metavar="ACTION", required=True)
    p = verb(s, "publish", "service publish", "publish a container as an entry of a service",
             func=_cmd("service publish", MsgType.SERVICE_PUBLISH, _publish))
    p.description = PUBLISH_HELP
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("name", metavar="NAME", type=service_name, help="the service name (a DNS label)")
    p.add_argument("container_id", metavar="CONTAINER", help="container id, name or unique id prefix (any host's)")
    p.add_argument("--port", type=int_in(1, 65_535), required=True, help="the port it listens on")
    p.add_argument("--network", help="its network; default the container's only one")
    p.add_argument("--ttl-s", type=int_in(1, 86_400, "s"), metavar="S",
                   help="DNS TTL, and how long a failed host's entry is kept (down) before removal; default 30")
    p.add_argument("--check", choices=["running", "tcp"], default="running",
                   help="running (default): the container runs; tcp: also a TCP connect to --port succeeds")
    p.add_argument("--interval-s", type=int_in(1, 3_600, "s"), metavar="S", help="check interval; default 5")
    p.add_argument("--weight", type=int_in(0, 65_535), help="SRV weight; default 1 (0: not in DNS)")
    p = verb(s, "unpublish", "service unpublish", "remove a service, or one container's entry of it",
             func=_cmd("service unpublish", MsgType.SERVICE_UNPUBLISH,
                       lambda a: {k: v for k, v in (("name", a.name), ("network", a.network),
                                                    ("container_id", a.container_id)) if v is not None}))
    p.add_argument("name", metavar="NAME", type=service_name)
    p.add_argument("container_id", metavar="CONTAINER", nargs="?", help="only this container's entry")
    p.add_argument("--network", help="the service's network; default the only one with that name")
    p = verb(s, "list", "service list", "published services with their health", aliases=["ls"],
             func=_cmd("service list", MsgType.SERVICE_QUERY,
                       lambda a: {k: v for k, v in (("tenant", a.tenant), ("network", a.network)) if v}))
    p.add_argument("--tenant")
    p.add_argument("--network")
    p = verb(s, "inspect", "service inspect", "one service's entries: address, port, check, health, host",
             func=_cmd("service inspect", MsgType.SERVICE_QUERY, lambda a: {"name": a.name}))
    p.add_argument("name", metavar="NAME", type=service_name)

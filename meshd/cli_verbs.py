"""CLI verbs that talk to the local agent: status, members, network, endpoint, policy.

Each verb is one scheduler request (docs/api.md) sent over the root-only
control socket ``<agent.run_dir>/control.sock``; ``--json`` prints the raw
result, otherwise a table.
"""

from __future__ import annotations

import argparse
import json
from typing import Any, Callable

from rich.console import Console
from rich.table import Table

from meshd.api import MsgType
from meshd.api.client import ApiRequestError, SchedulerClient

Builder = Callable[[argparse.Namespace], dict[str, Any]]


class CliError(Exception):
    """A failure the user can fix: printed as one line plus a hint."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


def _fields(*names: str) -> Builder:
    """Request fields taken from same-named arguments that were given."""
    return lambda a: {n: getattr(a, n) for n in names if getattr(a, n, None) is not None}


def _qos_fields(a: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in (("bandwidth_kbit", a.rate_kbit), ("burst_bytes", a.burst_bytes),
                              ("latency_ms", a.latency_ms)) if v is not None}


def _labels(a: argparse.Namespace) -> dict[str, Any]:
    if not a.label:
        return {}
    pairs = [item.partition("=") for item in a.label]
    return {"labels": {k: v for k, _, v in pairs}}


# verb name -> (message type, field builder, result key holding rows or None)
VERBS: dict[str, tuple[MsgType, Builder, str | None]] = {
    "status": (MsgType.QUERY_STATUS, _fields(), None),
    "members": (MsgType.QUERY_MEMBERS, _fields(), "members"),
    "network create": (MsgType.NETWORK_CREATE, lambda a: {
        **_fields("name", "subnet", "tenant", "gateway", "vni", "mode", "mtu", "egress_kbit")(a),
        "external": a.external, **_labels(a)}, None),
    "network delete": (MsgType.NETWORK_DELETE, lambda a: {"name": a.name, "force": a.force}, None),
    "network list": (MsgType.NETWORK_LIST, _fields("tenant"), "networks"),
    "endpoint connect": (MsgType.ENDPOINT_CONNECT, lambda a: {
        **_fields("container_id", "network", "host", "ip", "mac", "pid")(a), **_qos_fields(a)}, None),
    "endpoint disconnect": (MsgType.ENDPOINT_DISCONNECT, _fields("container_id", "network"), None),
    "endpoint move": (MsgType.ENDPOINT_MOVE, _fields("container_id", "host"), None),
    "endpoint qos": (MsgType.QOS_SET, lambda a: {**_fields("container_id", "network")(a), **_qos_fields(a)}, None),
    "endpoint list": (MsgType.QUERY_ENDPOINTS, _fields("host", "network"), "endpoints"),
    "policy add": (MsgType.POLICY_ADD, _fields("kind", "network", "peer", "policy_id"), None),
    "policy delete": (MsgType.POLICY_DELETE, _fields("policy_id"), None),
    "policy list": (MsgType.POLICY_LIST, _fields("network"), "policies"),
}


def run_verb(verb: str, args: argparse.Namespace) -> int:
    msg_type, build, rows_key = VERBS[verb]
    client = SchedulerClient.local(args.run_dir, timeout_s=args.timeout_s)
    try:
        result = client.request(msg_type, **build(args))
    except ApiRequestError as exc:
        raise CliError(f"{verb}: {exc.message}", f"error code {exc.code}; see docs/api.md") from None
    except TimeoutError as exc:
        raise CliError(str(exc), "start it with `meshd agent` (or systemctl start meshd)") from None
    finally:
        client.close()
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    elif rows_key is not None:
        _print_rows(result.get(rows_key, []), rows_key)
    else:
        _print_map(result)
    return 0


#: the columns of each list, in order (``--json`` shows every field)
COLUMNS = {
    "networks": ("name", "tenant", "subnet", "gateway", "vni", "mtu", "used", "free", "hosts"),
    "endpoints": ("endpoint_id", "network", "host", "ip", "mac", "qos", "stale"),
    "policies": ("policy_id", "kind", "network", "peer"),
}


def _cmd_top(args: argparse.Namespace) -> int:
    from meshd.tui import control_poll, run_top

    return run_top(control_poll(args.run_dir, min(args.timeout_s, args.interval_s * 2)),
                   interval_s=args.interval_s, once=args.once)


def _print_rows(rows: list[dict[str, Any]], title: str) -> None:
    console = Console() if Console().is_terminal else Console(width=160)
    if not rows:
        console.print(f"no {title}")
        return
    table = Table(title=title)
    columns = [c for c in COLUMNS.get(title, tuple(rows[0])) if c in rows[0]]
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    console.print(table)


def _print_map(result: dict[str, Any]) -> None:
    width = max((len(k) for k in result), default=0)
    for key, value in result.items():
        print(f"{key:<{width}}  {_cell(value)}")


def _cell(value: Any) -> str:
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list):
        return ",".join(map(str, value))
    return "" if value is None else str(value)


def add_verbs(sub: argparse._SubParsersAction) -> None:
    """Add the agent-talking subcommands to the top-level parser."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print the raw result as JSON")
    common.add_argument("--run-dir", default="/run/meshd", help="the agent's run dir (agent.run_dir)")
    common.add_argument("--timeout-s", type=float, default=10.0, help="how long to wait for the agent")

    def verb(parent, name: str, full: str, help_text: str) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help_text, description=help_text, parents=[common])
        p.set_defaults(func=lambda a, v=full: run_verb(v, a))
        return p

    verb(sub, "status", "status", "this host's agent: member, Raft and data-plane status")
    p = sub.add_parser("top", help="live status view of this host's agent (Ctrl-C to quit)",
                       description="A live view of members, Raft, networks, local endpoints with rx/tx "
                                   "rates, tunnels and recent events, polled from the local agent.",
                       parents=[common])
    p.add_argument("--interval-s", type=float, default=1.0, help="refresh period; default 1 s")
    p.add_argument("--once", action="store_true", help="print one frame and exit")
    p.set_defaults(func=_cmd_top)
    verb(sub, "members", "members", "gossip members as this host sees them")

    net = sub.add_parser("network", help="create, delete and list tenant networks").add_subparsers(
        dest="network_command", metavar="ACTION", required=True)
    p = verb(net, "create", "network create", "create a tenant network (replicated to every host)")
    p.add_argument("name")
    p.add_argument("subnet", help="IPv4 CIDR, e.g. 10.1.0.0/24")
    p.add_argument("--tenant", help="tenant owning it (subnets may overlap across tenants); default 'default'")
    p.add_argument("--gateway", help="default: the first host address")
    p.add_argument("--vni", type=int, help="VXLAN network id; default: the first free one")
    p.add_argument("--mode", choices=("vxlan", "routed", "flat", "dhcp"))
    p.add_argument("--mtu", type=int)
    p.add_argument("--egress-kbit", type=int, help="egress limit of the whole network on each host")
    p.add_argument("--external", action="store_true", help="let endpoints reach outside (masquerade)")
    p.add_argument("--label", action="append", metavar="KEY=VALUE")
    p = verb(net, "delete", "network delete", "delete a tenant network")
    p.add_argument("name")
    p.add_argument("--force", action="store_true", help="also disconnect its endpoints")
    p = verb(net, "list", "network list", "networks with used and free addresses")
    p.add_argument("--tenant")

    ep = sub.add_parser("endpoint", help="connect and disconnect containers").add_subparsers(
        dest="endpoint_command", metavar="ACTION", required=True)
    for name, full, text in (("connect", "endpoint connect", "connect a container to a network"),
                             ("qos", "endpoint qos", "change an endpoint's rate limit")):
        p = verb(ep, name, full, text)
        p.add_argument("container_id", help="container id (or name, on this host)")
        p.add_argument("network")
        if name == "connect":
            p.add_argument("--host", help="host running the container; default this one")
            p.add_argument("--ip")
            p.add_argument("--mac")
            p.add_argument("--pid", type=int, help="the container's PID, if Docker does not know it")
        p.add_argument("--rate-kbit", type=int)
        p.add_argument("--burst-bytes", type=int)
        p.add_argument("--latency-ms", type=int)
    p = verb(ep, "disconnect", "endpoint disconnect", "disconnect a container from a network")
    p.add_argument("container_id")
    p.add_argument("network")
    p = verb(ep, "move", "endpoint move", "move a container's endpoints to another host, keeping IPs")
    p.add_argument("container_id")
    p.add_argument("host")
    p = verb(ep, "list", "endpoint list", "endpoints, optionally of one host or network")
    p.add_argument("--host")
    p.add_argument("--network")

    pol = sub.add_parser("policy", help="isolation policies (seed 000 Table 4)").add_subparsers(
        dest="policy_command", metavar="ACTION", required=True)
    p = verb(pol, "add", "policy add", "add an isolation policy")
    p.add_argument("kind", choices=("isolate-within", "deny-one-way", "deny-both", "deny-all"))
    p.add_argument("network")
    p.add_argument("--peer", help="the other network (deny-one-way: NETWORK -> PEER is blocked)")
    p.add_argument("--policy-id")
    p = verb(pol, "delete", "policy delete", "delete a policy by id")
    p.add_argument("policy_id")
    p = verb(pol, "list", "policy list", "policies, optionally of one network")
    p.add_argument("--network")

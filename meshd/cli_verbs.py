"""CLI verbs that talk to the local agent: status, members, network, endpoint, policy, log-level.

Each verb is one or a few scheduler requests (docs/api.md) sent over the
root-only control socket ``<agent.run_dir>/control.sock``; ``--json`` prints
the raw result, otherwise a summary or a table.  Values are range-checked
here, before anything is sent, with the same limits the agent applies; the
agent's refusals are put in the CLI's words (:mod:`meshd.cli_errors`).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from meshd import state as st
from meshd.api import CONTROL_SOCKET, MsgType
from meshd.api.client import AgentNotRunning, ApiRequestError, SchedulerClient, probe_control_socket
from meshd.cli_errors import START_AGENT_HINT, CliError, UsageError, explain
from meshd.state import BURST_MAX_BYTES, LATENCY_MAX_MS, MTU_MAX, MTU_MIN, RATE_MAX_KBIT, VNI_MAX, VNI_MIN

Builder = Callable[[argparse.Namespace], dict[str, Any]]

#: the largest PID Linux hands out (pid_max's ceiling, 2^22)
PID_MAX = 4_194_304


# --- argument types: refuse bad values before anything is sent ------------------------


def int_in(low: int, high: int, unit: str = "") -> Callable[[str], int]:
    """An argparse type: a whole number in ``low..high``."""
    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is out of range: use {low}..{high}"
                                             + (f" ({unit})" if unit else ""))
        return value

    parse.__name__ = "number"  # argparse names the type in some messages
    return parse


def label(text: str) -> tuple[str, str]:
    """An argparse type: ``KEY=VALUE`` with a non-empty key."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r} must look like KEY=VALUE (e.g. team=blue)")
    return key.strip(), value


# --- request fields --------------------------------------------------------------------


def _fields(*names: str) -> Builder:
    """Request fields taken from same-named arguments that were given."""
    return lambda a: {n: getattr(a, n) for n in names if getattr(a, n, None) is not None}


def qos_fields(a: argparse.Namespace) -> dict[str, Any]:
    """``--rate-kbit`` (with ``--burst-bytes`` and ``--latency-ms`` defaulted as for container
    labels: docs/runtime.md) as request fields.

    Raises:
      UsageError: a burst or latency without a rate above 0.
    """

    if not a.rate_kbit:
        extra = [flag for flag, v in (("--burst-bytes", a.burst_bytes), ("--latency-ms", a.latency_ms)) if v]
        if extra:
            raise UsageError(f"{' and '.join(extra)} shape a rate limit, but no --rate-kbit above 0 is given",
                             "add --rate-kbit KBIT (kbit/s), or drop " + " and ".join(extra))
        return {} if a.rate_kbit is None else {"bandwidth_kbit": 0}
    qos = st.qos_with_defaults(a.rate_kbit, a.burst_bytes or 0, a.latency_ms or 0)
    return {"bandwidth_kbit": qos.rate_kbit, "burst_bytes": qos.burst_bytes, "latency_ms": qos.latency_ms}


def _qos_change(a: argparse.Namespace) -> dict[str, Any]:
    qos = qos_fields(a)
    if not qos:
        raise UsageError("endpoint qos: nothing to change",
                         "give --rate-kbit KBIT (kbit/s; --rate-kbit 0 removes the limit)")
    return {**_fields("container_id", "network")(a), **qos}


def _labels(a: argparse.Namespace) -> dict[str, Any]:
    return {"labels": dict(a.label)} if a.label else {}


def _network_update(a: argparse.Namespace) -> dict[str, Any]:
    fields = {**_fields("name", "mtu", "egress_kbit", "external")(a), **_labels(a)}
    if len(fields) == 1:
        raise UsageError("network update: nothing to change",
                         "give --mtu, --egress-kbit, --external/--no-external or --label")
    return fields


# verb name -> (message type, field builder, result key holding rows or None)
VERBS: dict[str, tuple[MsgType, Builder, str | None]] = {
    "members": (MsgType.QUERY_MEMBERS, _fields(), "members"),
    "network create": (MsgType.NETWORK_CREATE, lambda a: {
        **_fields("name", "subnet", "tenant", "gateway", "vni", "mode", "mtu", "egress_kbit")(a),
        "external": a.external, **_labels(a), **({"options": dict(a.opt)} if a.opt else {})}, None),
    "network delete": (MsgType.NETWORK_DELETE, lambda a: {"name": a.name, "force": a.force}, None),
    "network update": (MsgType.NETWORK_UPDATE, _network_update, None),
    "network list": (MsgType.NETWORK_LIST, _fields("tenant"), "networks"),
    "endpoint connect": (MsgType.ENDPOINT_CONNECT, lambda a: {
        **_fields("container_id", "network", "host", "ip", "mac", "pid")(a), **qos_fields(a),
        **({"host_expected": True} if a.host_expected else {})}, None),
    "endpoint disconnect": (MsgType.ENDPOINT_DISCONNECT, _fields("container_id", "network"), None),
    "endpoint move": (MsgType.ENDPOINT_MOVE, lambda a: {
        **_fields("container_id", "host")(a), **({"host_expected": True} if a.host_expected else {})}, None),
    "endpoint qos": (MsgType.QOS_SET, _qos_change, None),
    "endpoint list": (MsgType.QUERY_ENDPOINTS, _fields("host", "network"), "endpoints"),
    "policy add": (MsgType.POLICY_ADD, _fields("kind", "network", "peer", "policy_id"), None),
    "policy delete": (MsgType.POLICY_DELETE, _fields("policy_id"), None),
    "policy list": (MsgType.POLICY_LIST, _fields("network"), "policies"),
}


def call(args: argparse.Namespace, verb: str, msg_type: MsgType, **fields: Any) -> dict[str, Any]:
    """One request to this host's agent; every failure becomes a :class:`CliError`."""
    try:
        client = SchedulerClient.local(args.run_dir, timeout_s=args.timeout_s)
    except AgentNotRunning as exc:
        raise CliError(str(exc), START_AGENT_HINT) from None
    except PermissionError as exc:
        raise CliError(exc.strerror or str(exc), "the control socket admits root only") from None
    try:
        return client.request(msg_type, **fields)
    except ApiRequestError as exc:
        raise explain(verb, exc.code, exc.message) from None
    except TimeoutError as exc:
        raise CliError(str(exc), "look at the agent's log (journalctl -u meshd), or retry with a larger "
                       "--timeout-s") from None
    finally:
        client.close()


def run_verb(verb: str, args: argparse.Namespace) -> int:
    from meshd import cli_show

    msg_type, build, rows_key = VERBS[verb]
    result = call(args, verb, msg_type, **build(args))
    if rows_key is not None and not result.get(rows_key):
        check_filters(args, rows_key)
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    elif rows_key == "members":
        cli_show.print_members(result["members"], call(args, "members", MsgType.QUERY_STATUS).get("raft", {}))
    elif rows_key is not None:
        cli_show.print_rows(result.get(rows_key, []), rows_key)
    else:
        cli_show.print_map(result)
    return 0


def check_filters(args: argparse.Namespace, rows_key: str) -> None:
    """An empty list filtered by a network, tenant or host that does not exist is an error, not "none"."""
    network, host = getattr(args, "network", None), getattr(args, "host", None)
    if network:
        names = [n["name"] for n in call(args, "network list", MsgType.NETWORK_LIST)["networks"]]
        if network not in names:
            raise CliError(f"network {network!r} does not exist (networks: {', '.join(names) or 'none'})",
                           "list them with `meshd network ls`")
    if host and rows_key == "endpoints":
        members = [m["name"] for m in call(args, "members", MsgType.QUERY_MEMBERS)["members"]]
        if host not in members:
            raise CliError(f"host {host!r} is not a member and holds no endpoints (members: "
                           f"{', '.join(members)})", "list them with `meshd members`")


def _cmd_status(args: argparse.Namespace) -> int:
    from meshd import cli_show

    status = call(args, "status", MsgType.QUERY_STATUS)
    if args.json:
        print(json.dumps(status, indent=2, sort_keys=True))
    else:
        cli_show.print_status(status)
    return 0


def _cmd_log_level(args: argparse.Namespace) -> int:
    if args.level is None:
        print(call(args, "log-level", MsgType.QUERY_STATUS).get("log_level", "?"))
        return 0
    result = call(args, "log-level", MsgType.CONTROL_LOG_LEVEL, level=args.level)
    print(f"log level {result['previous']} -> {result['level']} (until the agent restarts; "
          "agent.log_level sets it for good)")
    return 0


def _cmd_top(args: argparse.Namespace) -> int:
    from meshd.tui import control_poll, run_top

    try:
        probe_control_socket(Path(args.run_dir) / CONTROL_SOCKET)
    except AgentNotRunning as exc:
        raise CliError(str(exc), START_AGENT_HINT) from None
    except PermissionError as exc:
        raise CliError(exc.strerror or str(exc), "the control socket admits root only") from None
    return run_top(control_poll(args.run_dir, min(args.timeout_s, args.interval_s * 2)),
                   interval_s=args.interval_s, once=args.once)


# --- the parser ------------------------------------------------------------------------

_RATE = int_in(0, RATE_MAX_KBIT, "kbit/s")
_RATE_HELP = ("egress rate limit, kbit/s (tc TBF; 0 = unlimited); the burst defaults to 10 ms at the rate "
              "(at least 32 KiB) and the latency to 50 ms, as for container labels")


def _qos_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rate-kbit", type=_RATE, metavar="KBIT", help=_RATE_HELP)
    p.add_argument("--burst-bytes", type=int_in(1, BURST_MAX_BYTES, "bytes"), metavar="BYTES",
                   help="TBF bucket size, bytes (needs --rate-kbit)")
    p.add_argument("--latency-ms", type=int_in(1, LATENCY_MAX_MS, "ms"), metavar="MS",
                   help="TBF queueing limit, ms (needs --rate-kbit)")


def _cmd_network_create(args: argparse.Namespace) -> int:
    """``network create``; ``--mode auto`` first asks the advisor (:mod:`meshd.cli_advise`) which mode."""
    from meshd import cli_advise

    if args.mode == "auto":
        args.mode = cli_advise.resolve_auto_mode(args)
    else:
        given = [flag for need, flag in cli_advise.WEIGHT_FLAGS.items() if getattr(args, need) is not None]
        given += [flag for flag, on in (("--l2-prefix", args.l2_prefix is not None),
                                        ("--no-shared-l2", args.no_shared_l2)) if on]
        if given:
            raise UsageError(f"{', '.join(given)} only count{'s' if len(given) == 1 else ''} with --mode auto",
                             "add --mode auto to let the advisor pick the mode, or drop them")
    return run_verb("network create", args)


def _network_verbs(net: argparse._SubParsersAction, verb: Callable[..., argparse.ArgumentParser]) -> None:
    from meshd import cli_advise, cli_inspect

    p = verb(net, "create", "network create", "create a tenant network (replicated to every host)",
             func=_cmd_network_create)
    p.add_argument("name", metavar="NAME")
    p.add_argument("subnet", metavar="SUBNET", help="IPv4 CIDR, e.g. 10.1.0.0/24")
    p.add_argument("--tenant", help="tenant owning it (subnets may overlap across tenants); default 'default'")
    p.add_argument("--gateway", help="default: the first host address")
    p.add_argument("--vni", type=int_in(VNI_MIN, VNI_MAX), help="VXLAN network id; default: the first free one")
    p.add_argument("--mode", choices=[*(m.value for m in st.Mode), "auto"],
                   help="how the network is built: vxlan (default; an overlay, one segment per network, "
                        "subnets may overlap across tenants) or flat (macvlan on each host's LAN NIC: the "
                        "containers' addresses are on the LAN; give a LAN subnet and its gateway) or vlan "
                        "(flat on an 802.1Q VLAN of that NIC: -o vlan=ID; needs module 8021q on every host) or dhcp "
                        "(flat, each address leased from the LAN's DHCP server by the container's host agent: give "
                        "the subnet and router the server hands out) or routed (hosts route the containers' packets "
                        "on the underlay, directly between hosts of one segment, through VXLAN beyond it); "
                        "auto: the advisor "
                        "picks vxlan or flat from --security, "
                        "--scale, --throughput and --extensibility (see `meshd network advise --help`)")
    p.add_argument("-o", "--opt", action="append", type=label, metavar="KEY=VALUE",
                   help="a mode option (repeatable): parent=NIC (flat: the host NIC the macvlans hang off; "
                        "default: each host's dataplane.parent, else its underlay device), macvlan_mode=bridge|"
                        "private (flat: private keeps containers on one host apart), ip_range=CIDR (addresses "
                        "handed out come from this part of the subnet only), vlan=ID (vlan: the 802.1Q VLAN id, "
                        "1..4094)")
    p.add_argument("--mtu", type=int_in(MTU_MIN, MTU_MAX, "bytes"),
                   help="containers' MTU; default 1450 (vxlan), 1500 or the smallest member underlay's (flat)")
    p.add_argument("--egress-kbit", type=_RATE, metavar="KBIT",
                   help="egress limit of the whole network on each host, kbit/s")
    p.add_argument("--external", action="store_true", help="let endpoints reach outside (masquerade)")
    p.add_argument("--label", action="append", type=label, metavar="KEY=VALUE", help="a label (repeatable)")
    cli_advise.add_weight_flags(p, required=False)
    p = verb(net, "advise", "network advise", "which network model fits your needs: vxlan or flat",
             func=cli_advise.cmd_advise)
    p.description = cli_advise.ADVISE_HELP
    p.add_argument("--tenant", help="the tenant the network is for: its networks must not need the overlay")
    p.add_argument("--subnet", type=cli_advise.cidr, metavar="CIDR",
                   help="the network's subnet: one that overlaps another tenant's network needs vxlan")
    cli_advise.add_weight_flags(p, required=True)
    p = verb(net, "update", "network update", "change a network's MTU, egress limit, external access or labels")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--mtu", type=int_in(MTU_MIN, MTU_MAX, "bytes"))
    p.add_argument("--egress-kbit", type=_RATE, metavar="KBIT", help="0 removes the limit")
    p.add_argument("--external", action=argparse.BooleanOptionalAction, default=None,
                   help="let endpoints reach outside (masquerade), or not")
    p.add_argument("--label", action="append", type=label, metavar="KEY=VALUE",
                   help="the network's labels (repeatable; replaces all of them)")
    p = verb(net, "delete", "network delete", "delete a tenant network", aliases=["rm"])
    p.add_argument("name", metavar="NAME")
    p.add_argument("--force", action="store_true", help="also disconnect its endpoints")
    p = verb(net, "list", "network list", "networks with used and free addresses", aliases=["ls"])
    p.add_argument("--tenant")
    p = verb(net, "inspect", "network inspect", "one network: settings, endpoints and policies",
             func=cli_inspect.cmd_network_inspect)
    p.add_argument("name", metavar="NAME")


def _endpoint_verbs(ep: argparse._SubParsersAction, verb: Callable[..., argparse.ArgumentParser]) -> None:
    from meshd import cli_inspect

    p = verb(ep, "connect", "endpoint connect", "connect a container to a network")
    p.add_argument("container_id", metavar="CONTAINER",
                   help="container id, name or unique id prefix (a name: of this host's Docker, or of a container "
                        "connected before)")
    p.add_argument("network", metavar="NETWORK")
    p.add_argument("--host", help="host running the container (a member); default this one")
    p.add_argument("--host-expected", action="store_true",
                   help="--host is not a member yet (it joins later): allocate the address anyway")
    p.add_argument("--ip", help="address to give it; default the next free one")
    p.add_argument("--mac", help="MAC to give it; default derived from the IP")
    p.add_argument("--pid", type=int_in(1, PID_MAX), help="the container's PID, if Docker does not know it")
    _qos_flags(p)
    p = verb(ep, "qos", "endpoint qos", "change an endpoint's rate limit")
    p.add_argument("container_id", metavar="CONTAINER", help="container id, name or unique id prefix (any host's)")
    p.add_argument("network", metavar="NETWORK")
    _qos_flags(p)
    p = verb(ep, "disconnect", "endpoint disconnect", "disconnect a container from a network (frees its IP)")
    p.add_argument("container_id", metavar="CONTAINER", help="container id, name or unique id prefix (any host's)")
    p.add_argument("network", metavar="NETWORK")
    p = verb(ep, "move", "endpoint move", "move a container's endpoints to another host, keeping IPs")
    p.add_argument("container_id", metavar="CONTAINER", help="container id, name or unique id prefix (any host's)")
    p.add_argument("host", metavar="HOST", help="a member")
    p.add_argument("--host-expected", action="store_true", help="HOST is not a member yet: move anyway")
    p = verb(ep, "list", "endpoint list", "endpoints, optionally of one host or network", aliases=["ls"])
    p.add_argument("--host")
    p.add_argument("--network")
    p = verb(ep, "inspect", "endpoint inspect", "one container's endpoints in every network, with its attach "
             "state and rates when it runs on this host", func=cli_inspect.cmd_endpoint_inspect)
    p.add_argument("container_id", metavar="CONTAINER", help="container id, unique id prefix or name")


def add_verbs(sub: argparse._SubParsersAction) -> None:
    """Add the agent-talking subcommands to the top-level parser."""
    from meshd import cli_inspect
    from meshd.config import LOG_LEVELS

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print the raw result as JSON")
    common.add_argument("--run-dir", default="/run/meshd", help="the agent's run dir (agent.run_dir)")
    common.add_argument("--timeout-s", type=float, default=10.0,
                        help="how long to wait for an answer from a running agent; default 10")

    def verb(parent, name: str, full: str, help_text: str, *, func=None, aliases=()) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help_text, description=help_text, parents=[common], aliases=list(aliases))
        p.set_defaults(func=func or (lambda a, v=full: run_verb(v, a)), verb=full)
        return p

    verb(sub, "status", "status", "this host's agent: Raft, members, networks, endpoints, health, events",
         func=_cmd_status)
    p = verb(sub, "top", "top", "live status view of this host's agent (Ctrl-C quits)", func=_cmd_top)
    p.add_argument("--interval-s", type=float, default=1.0, help="refresh period; default 1 s")
    p.add_argument("--once", action="store_true", help="print one frame and exit")
    verb(sub, "members", "members", "gossip members as this host sees them, with their Raft role")
    p = verb(sub, "why", "why", "why a container has no network: each attach step and the one that failed, "
             "with its last error", func=cli_inspect.cmd_why)
    p.add_argument("container_id", metavar="CONTAINER", help="container id, unique id prefix or name")
    p = verb(sub, "log-level", "log-level", "show or change the running agent's log level (no restart)",
             func=_cmd_log_level)
    p.add_argument("level", nargs="?", choices=LOG_LEVELS, help="the new level; none: print the current one")

    net = sub.add_parser("network", help="create, update, inspect, list and delete tenant networks")
    _network_verbs(net.add_subparsers(dest="network_command", metavar="ACTION", required=True), verb)
    ep = sub.add_parser("endpoint", help="connect, inspect and disconnect containers")
    _endpoint_verbs(ep.add_subparsers(dest="endpoint_command", metavar="ACTION", required=True), verb)

    from meshd import cli_service

    cli_service.add_verbs(sub, verb)

    pol = sub.add_parser("policy", help="isolation policies (seed 000 Table 4)").add_subparsers(
        dest="policy_command", metavar="ACTION", required=True)
    p = verb(pol, "add", "policy add", "add an isolation policy")
    p.add_argument("kind", metavar="KIND", choices=[k.value for k in st.PolicyKind],
                   help=", ".join(k.value for k in st.PolicyKind))
    p.add_argument("network", metavar="NETWORK")
    p.add_argument("--peer", help="the other network (deny-one-way: NETWORK -> PEER is blocked)")
    p.add_argument("--policy-id")
    p = verb(pol, "delete", "policy delete", "delete a policy by id", aliases=["rm"])
    p.add_argument("policy_id", metavar="POLICY_ID")
    p = verb(pol, "list", "policy list", "policies, optionally of one network", aliases=["ls"])
    p.add_argument("--network")

"""``meshd why``, ``meshd endpoint inspect`` and ``meshd network inspect``: one object, in full.

A container is named by its full id, a unique id prefix, or its name (names
are known for this host's containers: the status map's ``attach`` and
``endpoints`` carry them).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from rich.text import Text

from meshd import _humanize as hz
from meshd._attach import ATTACH_STEPS
from meshd.api import MsgType
from meshd.cli_errors import CliError
from meshd.cli_show import emit, endpoint_state, key_values, rows_table, table
from meshd.cli_verbs import call

#: what each attach step means when it is done
_DONE = {"labels": "its meshd.* labels (or seed-002 variables) parse, or it was connected through the API",
         "address": "{ip} allocated in network {network}",
         "running": "running on this host (PID known)",
         "interface": "interface built inside the container",
         "up": "up"}


def match_container(query: str, rows: list[dict[str, Any]], id_key: str) -> list[dict[str, Any]]:
    """The rows of the container ``query`` names: full id, name, or a unique id prefix.

    Raises:
      CliError: the prefix fits several containers.
    """
    exact = [r for r in rows if r.get(id_key) == query or query in (r.get("container"), r.get("container_name"))]
    if exact:
        return exact
    by_prefix = [r for r in rows if str(r.get(id_key, "")).startswith(query)]
    ids = sorted({r[id_key] for r in by_prefix})
    if len(ids) > 1:
        raise CliError(f"{query!r} fits {len(ids)} containers ({', '.join(hz.short_id(i) for i in ids)})",
                       "give more of the id, or the container's name")
    return by_prefix


def _not_here(args: argparse.Namespace, query: str, status: dict[str, Any]) -> CliError:
    """The error for a container this host's agent has no attach record of."""
    host = status.get("host", "this host")
    elsewhere = match_container(query, call(args, "why", MsgType.QUERY_ENDPOINTS)["endpoints"], "endpoint_id")
    if elsewhere and "attach" not in status:
        return CliError(f"the agent on {host} does not report attach steps (meshd {status.get('version', '?')} "
                        "is older than this CLI)", "upgrade the agent; `meshd endpoint inspect` shows the endpoint")
    if elsewhere:
        hosts = sorted({e["host"] for e in elsewhere})
        return CliError(f"container {query!r} runs on {', '.join(hosts)}, not on {host}",
                        f"run `meshd why {query}` on {hosts[0]}")
    return CliError(f"meshd on {host} knows no container {query!r}: it was never asked to network it here",
                    "a container on another host: run `meshd why` there (or give its id here); else start "
                    "it with --label meshd.network=NETWORK (docs/runtime.md) or connect it with `meshd endpoint "
                    "connect CONTAINER NETWORK`; with agent.container_labels set it must carry those labels too")


def cmd_why(args: argparse.Namespace) -> int:
    status = call(args, "why", MsgType.QUERY_STATUS)
    host = status.get("host", "this host")
    records = match_container(args.container_id, status.get("attach", []), "container_id")
    if not records:
        raise _not_here(args, args.container_id, status)
    if args.json:
        print(json.dumps(records, indent=2, sort_keys=True))
        return 0
    now, out = time.time(), []
    for rec in records:
        out.append(Text(f"{hz.container_label(rec)} ({hz.short_id(rec['container_id'])}) on {host}"
                        + (f", network {rec['network']}" if rec.get("network") else ""), style="bold"))
        out.append(table(["", "", ""], _steps(rec, now), indent=2))
    keys = [k for k in (records[0].get("container"), hz.short_id(records[0]["container_id"])) if k]
    events = [e for e in reversed(status.get("events", [])) if any(k in e.get("text", "") for k in keys)]
    if events:
        out.append(Text("Recent events about it", style="bold"))
        out.append(table(["when", "kind", "event"], [[hz.ago(e.get("time"), now), e.get("kind"), e.get("text")]
                                                     for e in events[:5]], indent=2))
    emit(*out)
    return 1 if any(r.get("error") for r in records) else 0


def _steps(rec: dict[str, Any], now: float) -> list[list[Any]]:
    """One row per attach step: done, stuck (with the error) or not reached."""
    at = ATTACH_STEPS.index(rec["step"]) if rec["step"] in ATTACH_STEPS else 0
    rows = []
    for i, step in enumerate(ATTACH_STEPS[:-1]):
        if i < at:
            rows.append([Text("ok", style="green"), step, _DONE[step].format(**rec)])
        elif i == at and rec.get("error"):
            when = f" ({hz.ago(rec['time'], now)})" if rec.get("time") else ""
            rows.append([Text("FAILED", style="bold red"), step, rec["error"] + when])
        elif i == at:
            rows.append([Text("waiting", style="yellow"), step, "in progress: the next reconcile pass does it"])
        else:
            rows.append([Text("-", style="dim"), step, ""])
    return rows


def cmd_endpoint_inspect(args: argparse.Namespace) -> int:
    status = call(args, "endpoint inspect", MsgType.QUERY_STATUS)
    local = {(e["endpoint_id"], e["network"]): e for e in status.get("endpoints", [])}
    rows = call(args, "endpoint inspect", MsgType.QUERY_ENDPOINTS)["endpoints"]
    for row in rows:  # names are known for this host's containers
        row.setdefault("container", local.get((row["endpoint_id"], row["network"]), {}).get("container", ""))
    found = match_container(args.container_id, rows, "endpoint_id")
    if not found:
        raise CliError(f"container {args.container_id!r} has no endpoint in any network",
                       "list them with `meshd endpoint ls`; `meshd why CONTAINER` on its host says why")
    if args.json:
        print(json.dumps(found, indent=2, sort_keys=True))
        return 0
    out: list[Any] = []
    for ep in found:
        here = local.get((ep["endpoint_id"], ep["network"]))
        qos = ep.get("qos") or {}
        fields = [("Container", f"{ep['endpoint_id']}" + (f" ({ep['container']})" if ep.get("container") else "")),
                  ("Network", ep["network"]), ("Host", ep["host"] + (" (stale)" if ep.get("stale") else "")),
                  ("IP", ep["ip"]), ("MAC", ep["mac"]), ("Rate limit", _qos_text(qos))]
        if here is not None:
            fields += [("State", endpoint_state(here)),
                       ("Traffic", f"rx {hz.rate(here.get('rx_bps')) or '-'}, tx {hz.rate(here.get('tx_bps')) or '-'}"
                                   f" ({here.get('rx_bytes', 0)} / {here.get('tx_bytes', 0)} bytes)")]
        out += [key_values(fields), Text("")]
    emit(*out)
    return 0


def _qos_text(qos: dict[str, Any]) -> str:
    if not qos.get("rate_kbit"):
        return "none"
    latency = f"{qos['latency_ms']} ms" if qos.get("latency_ms") else "the agent's default"
    return f"{hz.kbit(qos['rate_kbit'])}, burst {qos.get('burst_bytes', 0)} bytes, latency {latency}"


def cmd_network_inspect(args: argparse.Namespace) -> int:
    networks = call(args, "network inspect", MsgType.NETWORK_LIST)["networks"]
    net = next((n for n in networks if n["name"] == args.name), None)
    if net is None:
        raise CliError(f"network {args.name!r} does not exist (networks: "
                       f"{', '.join(n['name'] for n in networks) or 'none'})", "list them with `meshd network ls`")
    endpoints = call(args, "network inspect", MsgType.QUERY_ENDPOINTS, network=args.name)["endpoints"]
    policies = call(args, "network inspect", MsgType.POLICY_LIST, network=args.name)["policies"]
    if args.json:
        print(json.dumps({"network": net, "endpoints": endpoints, "policies": policies}, indent=2, sort_keys=True))
        return 0
    labels = " ".join(f"{k}={v}" for k, v in sorted((net.get("labels") or {}).items())) or "-"
    out: list[Any] = [key_values([
        ("Name", net["name"]), ("Tenant", net.get("tenant", "")), ("Subnet", net.get("subnet", "")),
        ("Gateway", net.get("gateway", "")), ("VNI", str(net.get("vni", ""))),
        ("Mode", net.get("mode", "")), ("MTU", str(net.get("mtu", ""))),
        ("Egress limit", hz.kbit(net.get("egress_kbit"))), ("External", "yes" if net.get("external") else "no"),
        ("Options", " ".join(f"{k}={v}" for k, v in sorted((net.get("options") or {}).items())) or "-"),
        ("Labels", labels), ("Addresses", f"{net.get('used', 0)} used, {net.get('free', 0)} free"),
        ("Hosts", ", ".join(net.get("hosts") or []) or "-")])]
    for title, rows in (("endpoints", endpoints), ("policies", policies)):
        out += [Text(f"\n{title.capitalize()}", style="bold"), rows_table(rows, title)]
    emit(*out)
    return 0

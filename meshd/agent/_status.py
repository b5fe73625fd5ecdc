"""The agent's status map: what QUERY_STATUS answers and ``meshd status``/``top``/``why`` show.

Keys (docs/api.md, QUERY_STATUS): ``host``, ``version``, ``uptime_s``,
``advertise``, ``log_level``, ``members``, ``raft``, ``networks``,
``endpoints`` (this host's), ``tunnels``, ``reconcile``, ``events`` and
``attach``.

``attach`` says, for each container of this host meshd was asked to
network, how far it got and why it stopped (``meshd why``).  One record per
(container, network), plus one per container refused before any network
(bad labels, a seed-002 type meshd does not build)::

    {"container_id": full id, "container": name or "", "network": name or "",
     "ip": address or "", "step": STEP, "error": "" or why STEP is stuck,
     "time": epoch seconds of the error (0: unknown)}

``STEP`` is the first step not done (:data:`meshd._attach.ATTACH_STEPS`).
Every value is read from the part that owns it; nothing is computed twice.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import netops
from meshd import __version__
from meshd import state as st
from meshd._attach import INTERFACE, RUNNING, UP

from ._liveness import HostState, Liveness
from ._members import MemberBook

if TYPE_CHECKING:
    from ._agent import Agent
    from ._replica import Replica


def status_map(agent: Agent) -> dict[str, Any]:
    """A msgpack-ready snapshot of every part of ``agent``."""
    out: dict[str, Any] = {
        "host": agent.name, "version": __version__, "uptime_s": time.time() - agent.started,
        "advertise": agent.advertise, "log_level": logging.getLevelName(logging.getLogger().level).lower(),
        "events": agent.events.recent(),
        "dataplane": {"link_kinds": sorted(agent.dataplane),
                      "missing": [netops.describe_link_kind(k) for k in netops.LINK_KINDS if k not in agent.dataplane]},
    }
    if agent.members is not None:
        out["members"] = member_maps(agent.members, agent.liveness)
    if agent.replica is None:
        return out
    out["raft"] = _raft(agent.replica)
    state = agent.replica.state
    out["networks"] = [
        {"name": i.network.name, "tenant": i.network.tenant, "subnet": i.network.subnet, "vni": i.network.vni,
         "used": i.used, "free": i.free} for i in state.networks()]
    out["endpoints"] = _endpoints(agent, state)
    out["tunnels"] = _tunnels(agent)
    out["attach"] = attach_records(agent, state)
    out["dhcp"] = agent.dhcp.status() if agent.dhcp is not None else []
    r = agent.reconciler.status()
    out["reconcile"] = {"passes": r.passes, "passes_skipped": r.passes_skipped,
                        "additions_applied": r.additions_applied,
                        "ops_applied": r.ops_applied, "errors_total": r.errors_total,
                        "last_errors": list(r.last_errors), "last_pass_ms": r.last_pass_ms,
                        "mtu_checks": r.mtu_checks, "mtu_failures": r.mtu_failures,
                        "mtu_postponed": r.mtu_postponed,
                        "mtu_problems": [agent.mtu_problem(c) for c in agent.reconciler.mtu_problems.values()]
                        + [p.as_map() for p in agent.underlay_problems()]}
    return out


def member_maps(members: MemberBook, liveness: Liveness) -> list[dict[str, Any]]:
    """Gossip's members, with the host verdict: a member whose agent gossip declared failed
    is ``agent-down`` while its data plane answers (its containers stay reachable)."""
    out = members.as_maps()
    for m in out:
        if liveness.state(m["name"]) is HostState.AGENT_DOWN:
            m["state"] = "agent-down"
    return out


def _raft(replica: Replica) -> dict[str, Any]:
    s = replica.raft.status()
    return {
        "role": s.role.name.lower(), "term": s.term, "leader": s.leader, "commit_index": s.commit,
        "applied_index": s.applied, "last_index": s.last_index, "voters": list(s.voters),
        "learners": list(s.learners),
        "followers": [{"id": p.id, "match": p.match, "lag": s.last_index - p.match, "voter": p.voter,
                       "responsive": p.responsive, "adopted": p.adopted} for p in s.peers],
    }


def _name(agent: Agent, ep: st.Endpoint) -> str:
    return agent.containers.names.get(ep.endpoint_id) or ep.name or ""


def _endpoints(agent: Agent, state: st.NetworkState) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    vnis = {i.network.name: i.network.vni for i in state.networks()}
    for ep in state.endpoints(host=agent.name):
        vni = vnis.get(ep.network, 0)
        stats = agent.stats.stats.get((ep.endpoint_id, vni), {})
        out.append({"endpoint_id": ep.endpoint_id, "container": _name(agent, ep), "network": ep.network,
                    "vni": vni, "ip": ep.ip, "mac": ep.mac, "running": agent.containers.running(ep.endpoint_id),
                    "up": agent.tracker.is_up((ep.endpoint_id, vni)), "rate_kbit": ep.qos.rate_kbit,
                    **{k: stats[k] for k in ("rx_bytes", "tx_bytes", "rx_bps", "tx_bps") if k in stats}})
    return out


def attach_records(agent: Agent, state: st.NetworkState) -> list[dict[str, Any]]:
    """The ``attach`` key: how far each local container got (module docstring)."""
    vnis = {i.network.name: i.network.vni for i in state.networks()}
    running, tracker = agent.containers.netns, agent.tracker
    out = []
    connected: set[tuple[str, str]] = set()
    for ep in state.endpoints(host=agent.name):
        key = (ep.endpoint_id, vnis.get(ep.network, 0))
        connected.add((ep.endpoint_id, ep.network))
        step, error, when = UP, "", 0.0
        problem = tracker.problems.get(key)
        if ep.endpoint_id not in running:
            step = RUNNING
            error = "the container is not running on this host (no PID known): start it (docker start)"
        elif problem is not None:
            step, error, when = INTERFACE, problem.error, problem.since
        elif not tracker.is_up(key):
            step = INTERFACE  # the next reconcile pass builds it
        out.append({"container_id": ep.endpoint_id, "container": _name(agent, ep), "network": ep.network,
                    "ip": ep.ip, "step": step, "error": error, "time": when})
    names = agent.containers.names
    for cid, err in sorted(agent.containers.errors.items()):
        if (cid, err.get("network", "")) not in connected:
            out.append({"container_id": cid, "container": names.get(cid, ""), "network": err.get("network", ""),
                        "ip": "", "step": err["step"], "error": err["error"], "time": err.get("time", 0.0)})
    return out


def _tunnels(agent: Agent) -> list[dict[str, Any]]:
    report = agent.reconciler.last_report
    if report is None:
        return []
    desired = report.desired
    local_vnis = {e.vni for e in desired.local}
    return [{"vni": vni, "peers": sorted(desired.vteps.get(vni, ())),
             "fdb_entries": sum(1 for r in desired.remote if r.vni == vni) + len(desired.vteps.get(vni, ()))}
            for vni in sorted(local_vnis)]


def metric_sources(agent: Agent) -> dict[str, Callable[[], Any]]:
    """What :class:`meshd.metrics.AgentMetrics` reads at each scrape (each None while absent).

    Every reader looks the part up when called: parts start later than the
    registry, and ``meshd join`` replaces the Raft node.
    """
    def replica() -> Replica | None:
        return agent.replica if agent.replica is not None and agent.replica.started else None

    def reconcile() -> dict[str, Any]:
        out = dataclasses.asdict(agent.reconciler.status())
        out["mtu_problems"] += len(agent.underlay_problems())
        return out

    return {
        "transport": lambda: agent.host.status() if agent.host is not None else None,
        "gossip": lambda: agent.members.gossip_status() if agent.members is not None else None,
        "raft": lambda: r.raft.status() if (r := replica()) is not None else None,
        "state": lambda: r.state.status() if (r := replica()) is not None else None,
        "reconcile": reconcile,
        "commit": lambda: dict(agent.committer.counters) if agent.committer is not None else None,
        "scheduler_server": lambda: dict(agent.api.counters) if agent.api is not None else None,
        "scheduler_service": lambda: dict(agent.api.service.counters) if agent.api is not None else None,
        "control_service": lambda: dict(agent.control.counters) if agent.control is not None else None,
        "endpoints": lambda: metric_endpoints(agent),
    }


def metric_endpoints(agent: Agent) -> list[dict[str, Any]]:
    """This host's endpoints with their labels (container name and id, network, tenant) and
    their byte counters (from the last ``api.stats_interval_s`` reading)."""
    if agent.replica is None:
        return []
    state = agent.replica.state
    nets = {i.network.name: i.network for i in state.networks()}
    out = []
    for ep in state.endpoints(host=agent.name):
        net = nets.get(ep.network)
        stats = agent.stats.stats.get((ep.endpoint_id, net.vni if net else 0))
        if net is None or not stats:
            continue
        out.append({"container": _name(agent, ep) or ep.endpoint_id[:12],
                    "container_id": ep.endpoint_id, "network": ep.network, "tenant": net.tenant,
                    "rx_bytes": stats["rx_bytes"], "tx_bytes": stats["tx_bytes"]})
    return out

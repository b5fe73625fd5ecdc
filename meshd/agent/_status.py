"""The agent's status map: what QUERY_STATUS answers and ``meshd status``/``top``/``why`` show.

Keys (docs/api.md, QUERY_STATUS): ``host``, ``version``, ``uptime_s``,
``advertise``, ``log_level``, ``members``, ``raft``, ``networks``,
``endpoints`` (this host's), ``tunnels``, ``reconcile``, ``events`` and
``attach``.

``attach`` says, for each container of this host meshd was asked to
network, how far it got and why it stopped (``meshd why``).  One record per
(container, network), plus one per container refused before any network
(bad labels)::

    {"container_id": full id, "container": name or "", "network": name or "",
     "ip": address or "", "step": STEP, "error": "" or why STEP is stuck,
     "time": epoch seconds of the error (0: unknown)}

``STEP`` is the first step not done (:data:`meshd._attach.ATTACH_STEPS`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import TYPE_CHECKING, Any, Callable

from meshd import __version__
from meshd._attach import INTERFACE, RUNNING, UP

if TYPE_CHECKING:
    from ._agent import Agent

def status_map(agent: Agent) -> dict[str, Any]:
    """A msgpack-ready snapshot of every part of ``agent``."""
    out: dict[str, Any] = {
        "host": agent.name, "version": __version__, "uptime_s": time.time() - agent.started,
        "advertise": agent.advertise, "log_level": logging.getLevelName(logging.getLogger().level).lower(),
        "events": list(agent.events),
    }
    if agent.members is not None:
        out["members"] = agent.members.as_maps()
    if agent.raft is not None:
        out["raft"] = _raft(agent)
    out["networks"] = [
        {"name": i.network.name, "tenant": i.network.tenant, "subnet": i.network.subnet, "vni": i.network.vni,
         "used": i.used, "free": i.free} for i in agent.state.networks()]
    out["endpoints"] = _endpoints(agent)
    out["tunnels"] = _tunnels(agent)
    out["attach"] = attach_records(agent)
    if agent.reconciler is not None:
        r = agent.reconciler.status()
        out["reconcile"] = {"passes": r.passes, "passes_skipped": agent._passes_skipped,
                            "additions_applied": r.additions_applied,
                            "ops_applied": r.ops_applied, "errors_total": r.errors_total,
                            "last_errors": list(r.last_errors), "last_pass_ms": r.last_pass_ms,
                            "mtu_failures": r.mtu_failures}
    return out


def _raft(agent: Agent) -> dict[str, Any]:
    s = agent.raft.status()  # type: ignore[union-attr]
    return {
        "role": s.role.name.lower(), "term": s.term, "leader": s.leader, "commit_index": s.commit,
        "applied_index": s.applied, "last_index": s.last_index, "voters": list(s.voters),
        "learners": list(s.learners),
        "followers": [{"id": p.id, "match": p.match, "lag": s.last_index - p.match, "voter": p.voter}
                      for p in s.peers],
    }


def _endpoints(agent: Agent) -> list[dict[str, Any]]:
    out = []
    vnis = {i.network.name: i.network.vni for i in agent.state.networks()}
    names = agent.container_names
    for ep in agent.state.endpoints(host=agent.name):
        vni = vnis.get(ep.network, 0)
        stats = agent.endpoint_stats.get((ep.endpoint_id, vni), {})
        out.append({"endpoint_id": ep.endpoint_id, "container": names.get(ep.endpoint_id, ""),
                    "network": ep.network, "vni": vni, "ip": ep.ip, "mac": ep.mac,
                    "running": ep.endpoint_id in agent.pids, "up": (ep.endpoint_id, vni) in agent._up,
                    "rate_kbit": ep.qos.rate_kbit,
                    **{k: stats[k] for k in ("rx_bytes", "tx_bytes", "rx_bps", "tx_bps") if k in stats}})
    return out


def attach_records(agent: Agent) -> list[dict[str, Any]]:
    """The ``attach`` key: how far each local container got (module docstring)."""
    names, errors = agent.container_names, agent.container_errors
    vnis = {i.network.name: i.network.vni for i in agent.state.networks()}
    out = []
    connected: set[tuple[str, str]] = set()
    for ep in agent.state.endpoints(host=agent.name):
        vni = vnis.get(ep.network, 0)
        connected.add((ep.endpoint_id, ep.network))
        step, error = UP, ""
        if ep.endpoint_id not in agent.pids:
            step = RUNNING
            error = "the container is not running on this host (no PID known): start it (docker start)"
        elif (ep.endpoint_id, vni) in agent._attach_errors:
            step, error = INTERFACE, agent._attach_errors[ep.endpoint_id, vni]
        elif (ep.endpoint_id, vni) not in agent._up:
            step = INTERFACE  # the next reconcile pass builds it
        out.append({"container_id": ep.endpoint_id, "container": names.get(ep.endpoint_id, ""),
                    "network": ep.network, "ip": ep.ip, "step": step, "error": error, "time": 0.0})
    for cid, err in sorted(errors.items()):
        if (cid, err.get("network", "")) not in connected:
            out.append({"container_id": cid, "container": names.get(cid, ""), "network": err.get("network", ""),
                        "ip": "", "step": err["step"], "error": err["error"], "time": err.get("time", 0.0)})
    return out


def _tunnels(agent: Agent) -> list[dict[str, Any]]:
    if agent.members is None or agent.underlay is None:
        return []
    desired = agent._desired()
    local_vnis = {e.vni for e in desired.local}
    return [{"vni": vni, "peers": sorted(desired.vteps.get(vni, ())),
             "fdb_entries": sum(1 for r in desired.remote if r.vni == vni) + len(desired.vteps.get(vni, ()))}
            for vni in sorted(local_vnis)]


def metric_sources(agent: Agent) -> dict[str, Callable[[], Any]]:
    """What :class:`meshd.metrics.AgentMetrics` reads at each scrape (each None while absent).

    Every reader looks the part up when called: parts start later than the
    registry, and ``meshd join`` replaces the Raft node.
    """
    def reconcile() -> dict[str, Any] | None:
        if agent.reconciler is None:
            return None
        return {**dataclasses.asdict(agent.reconciler.status()), "passes_skipped": agent._passes_skipped}

    return {
        "transport": lambda: agent.host.status() if agent.host is not None else None,
        "gossip": lambda: agent.members.gossip_status() if agent.members is not None else None,
        "raft": lambda: agent.raft.status() if agent.raft is not None else None,
        "state": lambda: agent.state.status(),
        "reconcile": reconcile,
        "scheduler_server": lambda: dict(agent.api.counters) if agent.api is not None else None,
        "scheduler_service": lambda: dict(agent.api.service.counters) if agent.api is not None else None,
        "control_service": lambda: (dict(agent._control_service.counters)
                                    if agent._control_service is not None else None),
        "endpoints": lambda: metric_endpoints(agent),
    }


def metric_endpoints(agent: Agent) -> list[dict[str, Any]]:
    """This host's endpoints with their labels (container name and id, network, tenant) and
    their byte counters (from the last ``api.stats_interval_s`` reading)."""
    nets = {i.network.name: i.network for i in agent.state.networks()}
    out = []
    for ep in agent.state.endpoints(host=agent.name):
        net = nets.get(ep.network)
        stats = agent.endpoint_stats.get((ep.endpoint_id, net.vni if net else 0))
        if net is None or not stats:
            continue
        out.append({"container": agent.container_names.get(ep.endpoint_id) or ep.endpoint_id[:12],
                    "container_id": ep.endpoint_id, "network": ep.network, "tenant": net.tenant,
                    "rx_bytes": stats["rx_bytes"], "tx_bytes": stats["tx_bytes"]})
    return out

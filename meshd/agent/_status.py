"""The agent's status map: what QUERY_STATUS answers and ``meshd top`` shows (docs/api.md)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from meshd import __version__

if TYPE_CHECKING:
    from ._agent import Agent


def status_map(agent: Agent) -> dict[str, Any]:
    """A msgpack-ready snapshot of every part of ``agent``."""
    out: dict[str, Any] = {
        "host": agent.name, "version": __version__, "uptime_s": time.time() - agent.started,
        "advertise": agent.advertise, "events": list(agent.events),
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
    if agent.reconciler is not None:
        r = agent.reconciler.status()
        out["reconcile"] = {"passes": r.passes, "passes_skipped": agent._passes_skipped,
                            "additions_applied": r.additions_applied,
                            "ops_applied": r.ops_applied, "errors_total": r.errors_total,
                            "last_errors": list(r.last_errors), "last_pass_ms": r.last_pass_ms}
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
    for ep in agent.state.endpoints(host=agent.name):
        stats = agent.endpoint_stats.get((ep.endpoint_id, vnis.get(ep.network, 0)), {})
        out.append({"endpoint_id": ep.endpoint_id, "network": ep.network, "ip": ep.ip, "mac": ep.mac,
                    "running": ep.endpoint_id in agent.pids, "rate_kbit": ep.qos.rate_kbit,
                    **{k: stats[k] for k in ("rx_bytes", "tx_bytes", "rx_bps", "tx_bps") if k in stats}})
    return out


def _tunnels(agent: Agent) -> list[dict[str, Any]]:
    if agent.members is None or agent.underlay is None:
        return []
    desired = agent._desired()
    local_vnis = {e.vni for e in desired.local}
    return [{"vni": vni, "peers": sorted(desired.vteps.get(vni, ())),
             "fdb_entries": sum(1 for r in desired.remote if r.vni == vni) + len(desired.vteps.get(vni, ()))}
            for vni in sorted(local_vnis)]

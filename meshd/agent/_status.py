"""The agent's status map: what QUERY_STATUS answers and ``meshd top`` shows (docs/api.md)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from meshd import __version__
from meshd import state as st

from ._liveness import HostState, Liveness
from ._members import MemberBook

if TYPE_CHECKING:
    from ._agent import Agent
    from ._replica import Replica


def status_map(agent: Agent) -> dict[str, Any]:
    """A msgpack-ready snapshot of every part of ``agent``."""
    out: dict[str, Any] = {
        "host": agent.name, "version": __version__, "uptime_s": time.time() - agent.started,
        "advertise": agent.advertise, "events": agent.events.recent(),
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
    r = agent.reconciler.status()
    out["reconcile"] = {"passes": r.passes, "passes_skipped": r.passes_skipped,
                        "additions_applied": r.additions_applied,
                        "ops_applied": r.ops_applied, "errors_total": r.errors_total,
                        "last_errors": list(r.last_errors), "last_pass_ms": r.last_pass_ms,
                        "mtu_checks": r.mtu_checks, "mtu_failures": r.mtu_failures,
                        "mtu_problems": [agent.mtu_problem(c) for c in agent.reconciler.mtu_problems.values()]}
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
        "followers": [{"id": p.id, "match": p.match, "lag": s.last_index - p.match, "voter": p.voter}
                      for p in s.peers],
    }


def _endpoints(agent: Agent, state: st.NetworkState) -> list[dict[str, Any]]:
    """This host's endpoints; ``attach`` is ``up``, ``failed`` (``error`` says why), ``stopped``
    (the container does not run here) or ``pending`` (not built yet)."""
    out = []
    vnis = {i.network.name: i.network.vni for i in state.networks()}
    pids = agent.containers.pids
    for ep in state.endpoints(host=agent.name):
        key = (ep.endpoint_id, vnis.get(ep.network, 0))
        stats = agent.stats.stats.get(key, {})
        problem = agent.tracker.problems.get(key)
        attach = ("up" if agent.tracker.is_up(key) else "failed" if problem is not None
                  else "pending" if ep.endpoint_id in pids else "stopped")
        out.append({"endpoint_id": ep.endpoint_id, "network": ep.network, "ip": ep.ip, "mac": ep.mac,
                    "running": ep.endpoint_id in pids, "rate_kbit": ep.qos.rate_kbit, "attach": attach,
                    **({"error": problem.error, "error_since": problem.since} if problem is not None else {}),
                    **{k: stats[k] for k in ("rx_bytes", "tx_bytes", "rx_bps", "tx_bps") if k in stats}})
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

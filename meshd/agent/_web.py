"""The web view's source: the cluster as this agent sees it, for :mod:`meshd.web`.

Every value is read from the part that owns it (the replica's state, the
member book with the liveness verdict, the Raft status, the reconciler's last
report, the endpoint counters); nothing is computed twice.  The whole cluster
comes from this host's replica; rates and tunnels are this host's own (each
agent reads only its own counters and builds only its own tunnels).

:func:`web_server` makes the server and feeds it the agent's event stream:
every event of the history goes to the page, and marks the cluster changed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from meshd import __version__, advisor
from meshd.web import AdviseQuery, WebServer

from ._dataplane import NEEDS
from ._events import Event
from ._status import _tunnels, member_maps

if TYPE_CHECKING:
    from ._agent import Agent

#: endpoints listed in one snapshot at most (a cluster of a million endpoints is not drawn)
MAX_ENDPOINTS = 5000


def web_server(agent: Agent) -> WebServer:
    """The web view of ``agent`` on ``api.web_address:api.web_port``, subscribed to its events."""
    cfg = agent.cfg.api
    server = WebServer(WebSource(agent), cfg.web_address, cfg.web_port, rates_interval_s=cfg.stats_interval_s,
                       hosts=cfg.web_hosts)

    def on_event(event: Event) -> None:
        if event.history:
            server.event(event.as_map())
            server.changed()

    agent.events.subscribe(on_event)
    return server


class WebSource:
    """:class:`meshd.web.ClusterSource` over a running :class:`~meshd.agent.Agent`."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def _replica(self) -> Any:
        replica = self.agent.replica
        return replica if replica is not None and replica.started else None

    def _members(self) -> list[dict[str, Any]]:
        a = self.agent
        return member_maps(a.members, a.liveness) if a.members is not None else []

    def cluster(self) -> dict[str, Any]:
        a = self.agent
        out: dict[str, Any] = {"host": a.name, "version": __version__, "time": time.time(), "advertise": a.advertise,
                               "events": a.events.recent()[-50:], "hosts": [], "networks": [], "endpoints": [],
                               "policies": [], "tunnels": [], "raft": None, "endpoints_omitted": 0}
        replica = self._replica()
        members = self._members()
        if replica is None:
            out["hosts"] = [_host(m, None, 0) for m in members]
            return out
        raft = replica.raft.status()
        state = replica.state
        out["raft"] = {"role": raft.role.name.lower(), "term": raft.term, "leader": raft.leader,
                       "voters": list(raft.voters), "learners": list(raft.learners)}
        infos = list(state.networks())
        endpoints = list(state.endpoints())
        per_host: dict[str, int] = {}
        for ep in endpoints:
            per_host[ep.host] = per_host.get(ep.host, 0) + 1
        out["hosts"] = [_host(m, raft, per_host.get(m["name"], 0)) for m in members]
        out["networks"] = [
            {"name": i.network.name, "tenant": i.network.tenant, "mode": i.network.mode.value,
             "subnet": i.network.subnet, "gateway": i.network.gateway, "vni": i.network.vni, "mtu": i.network.mtu,
             "external": i.network.external, "egress_kbit": i.network.egress_kbit, "used": i.used, "free": i.free,
             "hosts": list(i.hosts)} for i in infos]
        tenants = {i.network.name: i.network.tenant for i in infos}
        vnis = {i.network.name: i.network.vni for i in infos}
        out["endpoints"] = [self._endpoint(ep, tenants, vnis) for ep in endpoints[:MAX_ENDPOINTS]]
        out["endpoints_omitted"] = max(0, len(endpoints) - MAX_ENDPOINTS)
        out["policies"] = [{"policy_id": p.policy_id, "kind": p.kind.value, "network": p.network, "peer": p.peer}
                           for p in state.policies()]
        hosts_by_vtep = {m["address"]: m["name"] for m in members if m.get("address")}
        networks_by_vni = {vni: name for name, vni in vnis.items()}
        out["tunnels"] = [{**t, "network": networks_by_vni.get(t["vni"], ""),
                           "peer_hosts": [hosts_by_vtep.get(p, p) for p in t["peers"]]} for t in _tunnels(a)]
        return out

    def _endpoint(self, ep: Any, tenants: Mapping[str, str], vnis: Mapping[str, int]) -> dict[str, Any]:
        a = self.agent
        out: dict[str, Any] = {
            "endpoint_id": ep.endpoint_id, "container": a.containers.names.get(ep.endpoint_id) or ep.name or "",
            "network": ep.network, "tenant": tenants.get(ep.network, ""), "host": ep.host, "ip": ep.ip,
            "mac": ep.mac, "stale": ep.stale,
            "qos": {"rate_kbit": ep.qos.rate_kbit, "burst_bytes": ep.qos.burst_bytes, "latency_ms": ep.qos.latency_ms}}
        if ep.host == a.name:
            key = (ep.endpoint_id, vnis.get(ep.network, 0))
            out["running"] = a.containers.running(ep.endpoint_id)
            out["up"] = a.tracker.is_up(key)
            stats = a.stats.stats.get(key, {})
            out.update({k: stats[k] for k in ("rx_bps", "tx_bps", "rx_bytes", "tx_bytes") if k in stats})
        return out

    def rates(self) -> dict[str, Any]:
        a = self.agent
        replica = self._replica()
        names = {i.network.vni: i.network.name for i in replica.state.networks()} if replica is not None else {}
        return {"host": a.name, "time": time.time(), "interval_s": a.cfg.api.stats_interval_s, "endpoints": [
            {"endpoint_id": eid, "network": names.get(vni, ""), "rx_bps": s.get("rx_bps", 0.0),
             "tx_bps": s.get("tx_bps", 0.0), "rx_bytes": s.get("rx_bytes", 0), "tx_bytes": s.get("tx_bytes", 0)}
            for (eid, vni), s in a.stats.stats.items()]}

    def advise(self, query: AdviseQuery) -> dict[str, Any]:
        """The advisor within the cluster's constraints (the same as ``meshd network advise``'s).

        Raises:
          meshd.advisor.NoModelFits: the constraints rule out every model.
        """
        replica = self._replica()
        why = ""
        if replica is None:
            constraints = advisor.Constraints()
            why = "this agent's replica has not started yet"
        else:
            networks = [{"name": i.network.name, "tenant": i.network.tenant, "subnet": i.network.subnet}
                        for i in replica.state.networks()]
            constraints = advisor.cluster_constraints(
                self._members(), networks, query.tenant or "default", query.subnet,
                {str(mode): kinds for mode, kinds in NEEDS.items()}, l2_prefix=query.l2_prefix,
                local_address=self.agent.advertise or None)
        advice = advisor.choose_mode(query.weights, constraints)
        return {**advice.as_map(), "weights": dict(zip(advisor.NEEDS, query.weights.values(), strict=True)),
                "checked": constraints.checked, "not_checked_because": why or None,
                "command": advisor.create_command(advice.mode, query.tenant, query.subnet)}


def _host(member: Mapping[str, Any], raft: Any, endpoints: int) -> dict[str, Any]:
    name = member["name"]
    role = "none"
    if raft is not None:
        role = ("leader" if raft.leader == name else "voter" if name in raft.voters
                else "learner" if name in raft.learners else "none")
    return {"name": name, "state": member["state"], "address": member.get("address"), "raft_role": role,
            "version": member.get("version"), "underlay_mtu": member.get("underlay_mtu"),
            "dataplane": member.get("dataplane"), "dataplane_missing": member.get("dataplane_missing"),
            "endpoints": endpoints}

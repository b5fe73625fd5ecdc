"""From (replicated state, live members, local containers) to this host's desired data plane.

Pure: the agent calls :func:`host_desired` whenever any input changes and
hands the result to the reconciler.  Rules:

* every network of the state is described (the reconciler builds only those
  with a local endpoint, plus the legs its tenant router needs);
* a local endpoint is described only while its container runs (a PID is
  known, or it was attached by netns path and that netns exists); one that
  is not running keeps its address in the state but has no interface — it
  comes back with the same IP and MAC when the container does;
* remote endpoints and flood-list VTEPs come only from hosts that gossip says
  are alive: a failed or departed host's entries are withdrawn at once (its
  addresses stay allocated in the state, so they are not reused while the host
  is only failed), and only in the networks this host builds (those of its
  running endpoints and their tenant routers' legs): the cost of a pass
  follows what this host serves, not the size of the whole cluster;
* a network of mode ``routed`` is described as such (the reconciler routes
  it, :mod:`meshd.reconcile._routed`); every other mode is built as VXLAN;
* a container in several networks gets the interface name its attach asked
  for (the CNI plugin's ``CNI_IFNAME``, the Docker driver's pick), else
  ``eth0``, ``eth1``, ... in the order its networks were created (so connecting it later to an *older* network
  renumbers the newer ones: a known limit until the state records the slot).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TypedDict

from meshd import state as st
from meshd.reconcile import (
    HostDesired,
    LocalEndpoint,
    Network,
    NetworkMode,
    Policy,
    PolicyKind,
    RemoteEndpoint,
    active_vnis,
)
from netops import Qos

_POLICY_KINDS: dict[st.PolicyKind, PolicyKind] = {
    st.PolicyKind.ISOLATE_WITHIN: "isolate",
    st.PolicyKind.DENY_ONE_WAY: "deny",
    st.PolicyKind.DENY_BOTH: "deny_both",
    st.PolicyKind.DENY_ALL: "deny_all",
}


def host_desired(*, host: str, state: st.NetworkState, live_vteps: Mapping[str, str], pids: Mapping[str, int],
                 underlay_ip: str, underlay_dev: str, underlay_mtu: int, netns: Mapping[str, str] | None = None,
                 ifnames: Mapping[tuple[str, str], str] | None = None,
                 router_prefix: str | None = None, parent: str | None = None,
                 records_dir: str | None = None, underlay_subnet: str | None = None) -> HostDesired:
    """This host's desired data plane.

    Args:
      host: this host's member name.
      state: the local replica of the network state.
      live_vteps: ``{member name: VTEP address}`` of members gossip sees alive
        (this host may be included; it is skipped).
      pids: ``{endpoint id (container id): PID}`` of containers running here.
      netns: ``{endpoint id: netns path}`` of containers running here, attached by
        path (CNI, the Docker driver); it wins over ``pids``.
      ifnames: ``{(endpoint id, network): interface name}`` asked for by such attaches.
      underlay_ip, underlay_dev, underlay_mtu: this host's VTEP.
      router_prefix: tenant router netns prefix (only labs with several hosts
        on one machine set it).
      parent: this host's NIC for flat networks without a ``parent`` option
        (None: the underlay device).
      records_dir: where netops keeps this host's flat endpoint records (None: netops' default).
      underlay_subnet: this host's underlay L2 segment (CIDR): routed networks
        route directly to the hosts inside it (None: through VXLAN to all).
    """
    infos = sorted(state.networks(), key=lambda i: (i.network.created_index, i.network.name))
    nets = {i.network.name: i.network for i in infos}
    order = {name: n for n, name in enumerate(nets)}
    networks = tuple(_network(n, parent or underlay_dev) for n in nets.values())
    local: list[LocalEndpoint] = []
    remote: list[RemoteEndpoint] = []
    vteps: dict[int, set[str]] = {}
    mine = sorted(state.endpoints(host=host), key=lambda e: (e.endpoint_id, order.get(e.network, 0)))
    slot: dict[str, int] = {}
    for ep in mine:
        ifindex = slot.get(ep.endpoint_id, 0)
        slot[ep.endpoint_id] = ifindex + 1
        pid = pids.get(ep.endpoint_id)
        path = netns.get(ep.endpoint_id) if netns else None
        if path is None and pid is not None:
            path = f"/proc/{pid}/ns/net"
        if path is not None and ep.network in nets:
            ifname = (ifnames or {}).get((ep.endpoint_id, ep.network)) or f"eth{ifindex}"
            local.append(LocalEndpoint(key=ep.endpoint_id, vni=nets[ep.network].vni, netns=path,
                                       ip=ep.ip, mac=ep.mac, ifname=ifname, qos=_qos(ep.qos)))
    others = {h: v for h, v in live_vteps.items() if h != host}
    active = set(active_vnis(networks, {ep.vni for ep in local}))
    for net in nets.values():
        if net.vni not in active or net.mode in (st.Mode.FLAT, st.Mode.VLAN):
            continue  # a flat network's remote containers are reached on the LAN: no entries
        for ep in state.endpoints_on(net.name, others):
            remote.append(RemoteEndpoint(vni=net.vni, ip=ep.ip, mac=ep.mac, vtep=others[ep.host]))
            vteps.setdefault(net.vni, set()).add(others[ep.host])
    policies = tuple(
        Policy(kind=_POLICY_KINDS[p.kind], a=nets[p.network].vni,
               b=nets[p.peer].vni if p.peer in nets else None)
        for p in state.policies() if p.network in nets and (p.peer is None or p.peer in nets))
    extra: _Defaulted = {} if router_prefix is None else {"router_prefix": router_prefix}
    if records_dir is not None:
        extra["records_dir"] = records_dir
    return HostDesired(underlay_ip=underlay_ip, underlay_dev=underlay_dev, underlay_mtu=underlay_mtu,
                       networks=networks, local=tuple(local), remote=tuple(remote),
                       vteps={v: frozenset(s) for v, s in vteps.items()}, policies=policies,
                       underlay_subnet=underlay_subnet, **extra)


class _Defaulted(TypedDict, total=False):
    """The HostDesired fields passed only when set (else the field's default)."""

    router_prefix: str
    records_dir: str


def _network(n: st.Network, default_parent: str) -> Network:
    # vlan: a flat network on the parent's 802.1Q sub-interface; dhcp: a flat network whose endpoints'
    # addresses were leased (the state holds the leases: the data plane is the same)
    if n.mode in (st.Mode.FLAT, st.Mode.VLAN, st.Mode.DHCP):
        vlan = int(n.options["vlan"]) if n.mode is st.Mode.VLAN else None
        return _built_network(n.vni, n.tenant, n.subnet, n.gateway, n.mtu, None, False, "flat",
                              n.options.get("parent", default_parent), n.options.get("macvlan_mode", "bridge"), vlan)
    mode: NetworkMode = "routed" if n.mode is st.Mode.ROUTED else "vxlan"
    return _built_network(n.vni, n.tenant, n.subnet, n.gateway, n.mtu, n.egress_kbit or None, n.external, mode)


@functools.lru_cache(maxsize=4096)
def _built_network(vni: int, tenant: str, subnet: str, gateway: str | None, mtu: int, egress_kbit: int | None,
                   external: bool, mode: NetworkMode = "vxlan", parent: str | None = None,
                   macvlan_mode: str = "bridge", vlan: int | None = None) -> Network:
    """One :class:`Network` per distinct description: its checks parse addresses, and every
    pass describes every network (the state's record is not hashable: it holds labels)."""
    return Network(vni=vni, tenant=tenant, subnet=subnet, gateway=gateway, mtu=mtu, egress_kbit=egress_kbit,
                   external=external and mode == "vxlan", mode=mode, parent=parent, macvlan_mode=macvlan_mode,
                   vlan=vlan)


def _qos(q: st.Qos) -> Qos | None:
    if not q.rate_kbit:
        return None
    full = st.qos_with_defaults(q.rate_kbit, q.burst_bytes, q.latency_ms)  # older entries may lack a latency
    return Qos(rate_kbit=full.rate_kbit, burst_bytes=full.burst_bytes, latency_ms=float(full.latency_ms))

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

import dataclasses
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
        entry = _local(ep, ifindex, nets, pids, netns, ifnames)
        if entry is not None:
            local.append(entry)
    others = {h: v for h, v in live_vteps.items() if h != host}
    active = set(active_vnis(networks, {ep.vni for ep in local}))
    for net in nets.values():
        if net.vni not in active or net.mode in (st.Mode.FLAT, st.Mode.VLAN):
            continue  # a flat network's remote containers are reached on the LAN: no entries
        for r in _remote(state, net, others):
            remote.append(r)
            vteps.setdefault(net.vni, set()).add(r.vtep)
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


def _local(ep: st.Endpoint, ifindex: int, nets: Mapping[str, st.Network], pids: Mapping[str, int],
           netns: Mapping[str, str] | None, ifnames: Mapping[tuple[str, str], str] | None) -> LocalEndpoint | None:
    """The interface of local endpoint ``ep`` (its ``ifindex``-th network), or None while its container
    does not run here."""
    path = netns.get(ep.endpoint_id) if netns else None
    pid = pids.get(ep.endpoint_id)
    if path is None and pid is not None:
        path = f"/proc/{pid}/ns/net"
    if path is None or ep.network not in nets:
        return None
    ifname = (ifnames or {}).get((ep.endpoint_id, ep.network)) or f"eth{ifindex}"
    return LocalEndpoint(key=ep.endpoint_id, vni=nets[ep.network].vni, netns=path,
                         ip=ep.ip, mac=ep.mac, ifname=ifname, qos=_qos(ep.qos))


def _remote(state: st.NetworkState, net: st.Network, others: Mapping[str, str]) -> list[RemoteEndpoint]:
    return [RemoteEndpoint(vni=net.vni, ip=ep.ip, mac=ep.mac, vtep=others[ep.host])
            for ep in state.endpoints_on(net.name, others)]


#: change kinds that leave this host's desired data plane alone
_IGNORED = frozenset({st.ChangeKind.SERVICE_REGISTERED, st.ChangeKind.SERVICE_HEALTH, st.ChangeKind.SERVICE_REMOVED})
#: change kinds the builder folds in endpoint by endpoint; any other kind rebuilds everything
_FOLDED = frozenset({st.ChangeKind.ENDPOINT_ADDED, st.ChangeKind.ENDPOINT_REMOVED, st.ChangeKind.ENDPOINT_QOS})


@dataclasses.dataclass
class _Memo:
    key: tuple[object, ...]  #: every input but the state and the containers
    index: int  #: the state's last index it reflects
    full_at: float  #: when it was last built from scratch
    desired: HostDesired
    nets: dict[str, st.Network]
    order: dict[str, int]
    local: dict[str, tuple[LocalEndpoint, ...]]  #: endpoint id -> its interfaces, in network order
    local_vnis: frozenset[int]
    remote: dict[int, list[RemoteEndpoint]]  #: vni -> remote entries, for the networks built here


class DesiredBuilder:
    """:func:`host_desired`, folding in only what changed since the last call when it can.

    An attach used to rebuild the whole desired state (every local endpoint formatted and
    sorted again): the 1,000th attach on a host cost 3x the first.  The builder keeps the
    last result with each local endpoint's interfaces and each built network's remote
    entries; when the state's changes since then are endpoint changes (added, removed, QoS)
    in networks this host already builds or not, and the containers that changed are named,
    it recomputes only those endpoints and those networks' remote entries.  Anything else (a
    network, policy or host change; another member alive or gone; a network becoming built or
    not; an incomplete change log; ``full_every_s`` passed, which also catches a netns path that
    vanished) rebuilds from scratch.  The result is always equal to :func:`host_desired`'s
    (a property test checks it).
    """

    def __init__(self, *, full_every_s: float = 1.0) -> None:
        self.full_every_s = full_every_s
        self.builds = {"full": 0, "folded": 0}
        self._memo: _Memo | None = None

    def build(self, *, now: float, containers_changed: frozenset[str] | None, host: str,
              state: st.NetworkState, live_vteps: Mapping[str, str], pids: Mapping[str, int],
              underlay_ip: str, underlay_dev: str, underlay_mtu: int, netns: Mapping[str, str] | None = None,
              ifnames: Mapping[tuple[str, str], str] | None = None, router_prefix: str | None = None,
              parent: str | None = None, records_dir: str | None = None,
              underlay_subnet: str | None = None) -> HostDesired:
        """This host's desired data plane; ``containers_changed`` names the containers whose PID,
        netns path or interface names changed since the last call (None: unknown)."""
        key = (host, tuple(sorted(live_vteps.items())), underlay_ip, underlay_dev, underlay_mtu, router_prefix,
               parent, records_dir, underlay_subnet)
        memo = self._memo
        if memo is not None and containers_changed is not None and memo.key == key \
                and now - memo.full_at < self.full_every_s:
            folded = self._fold(memo, state, containers_changed, host, live_vteps, pids, netns, ifnames)
            if folded is not None:
                self.builds["folded"] += 1
                return folded
        desired = host_desired(host=host, state=state, live_vteps=live_vteps, pids=pids, underlay_ip=underlay_ip,
                               underlay_dev=underlay_dev, underlay_mtu=underlay_mtu, netns=netns, ifnames=ifnames,
                               router_prefix=router_prefix, parent=parent, records_dir=records_dir,
                               underlay_subnet=underlay_subnet)
        self.builds["full"] += 1
        nets = {n.name: n for n in sorted((i.network for i in state.networks()),
                                          key=lambda n: (n.created_index, n.name))}
        local: dict[str, list[LocalEndpoint]] = {}
        for entry in desired.local:
            local.setdefault(entry.key, []).append(entry)
        active = set(active_vnis(desired.networks, {e.vni for e in desired.local}))
        remote: dict[int, list[RemoteEndpoint]] = {  # every network built here with remote entries, even none yet
            n.vni: [] for n in nets.values() if n.vni in active and n.mode not in (st.Mode.FLAT, st.Mode.VLAN)}
        for r in desired.remote:
            remote.setdefault(r.vni, []).append(r)
        self._memo = _Memo(key, state.last_index, now, desired, nets, {name: n for n, name in enumerate(nets)},
                           {k: tuple(v) for k, v in local.items()}, frozenset(e.vni for e in desired.local),
                           remote)
        return desired

    def _fold(self, memo: _Memo, state: st.NetworkState, containers_changed: frozenset[str], host: str,
              live_vteps: Mapping[str, str], pids: Mapping[str, int], netns: Mapping[str, str] | None,
              ifnames: Mapping[tuple[str, str], str] | None) -> HostDesired | None:
        changes = state.changes_since(memo.index)
        if not changes.complete:
            return None
        endpoints, networks = set(containers_changed), set()
        for c in changes.changes:
            if c.kind in _IGNORED:
                continue
            if c.kind not in _FOLDED or c.network not in memo.nets:
                return None
            if c.host == host:
                endpoints.add(c.endpoint_id or "")
            else:
                networks.add(c.network)
        local = dict(memo.local)
        for eid in endpoints:
            mine = sorted((e for n in state.networks_of(eid) if (e := state.endpoint(eid, n)) is not None
                           and e.host == host), key=lambda e: memo.order.get(e.network, 0))
            entries = tuple(x for i, ep in enumerate(mine)
                            if (x := _local(ep, i, memo.nets, pids, netns, ifnames)) is not None)
            if entries:
                local[eid] = entries
            else:
                local.pop(eid, None)
        ordered = tuple(x for eid in sorted(local) for x in local[eid])
        if frozenset(e.vni for e in ordered) != memo.local_vnis:
            return None  # a network becomes built here, or stops being: rebuild its legs and entries
        others = {h: v for h, v in live_vteps.items() if h != host}
        remote = dict(memo.remote)
        for name in networks:
            net = memo.nets[name]
            if net.vni in remote:
                remote[net.vni] = _remote(state, net, others)
        built = [n.vni for n in memo.nets.values() if n.vni in remote]
        desired = dataclasses.replace(
            memo.desired, local=ordered, remote=tuple(r for v in built for r in remote[v]),
            vteps={v: frozenset(r.vtep for r in remote[v]) for v in built if remote[v]})
        memo.index, memo.desired, memo.local, memo.remote = state.last_index, desired, local, remote
        return desired


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

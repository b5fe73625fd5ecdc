"""The planner: desired host state + dumped kernel state → the operations that close the gap.

Theory of operation: pure — no I/O, no clock. ``plan(desired, actual, nft)``
compares what should exist with what netops dumped (only objects meshd owns:
name prefixes mb-/mx-/mv/mg-/mu/mq, router namespaces meshd-r-*, tables bridge meshd and ip meshd,
and the flat endpoints' records)
and returns netops operations in a safe order:

1. removals: stale endpoints and legs, withdrawn FDB/neighbour entries,
   tunnels and bridges of networks with no local endpoint left, routers;
2. tunnels: bridge, VXLAN, tenant egress TBF; VLAN sub-interfaces of vlan networks;
3. tenant routers and their legs (gateways);
4. FDB/neighbour additions (L2 population);
5. endpoint attaches (veths, and flat endpoints' macvlans) and QoS changes;
6. nftables: the whole table when missing or of another rules version,
   otherwise set-element updates only.

Networks of mode ``routed`` are planned by :mod:`meshd.reconcile._routed`
(no bridge, no tenant router leg); its operations are merged in at the same
steps (route and entry removals first, its routes after the endpoints, its
table ``ip meshd_routed`` beside the bridge table).

Half-built objects are recognised by their alias stamp, written as the last
step of building them: a VXLAN without ``meshd:ready``, a veth or leg whose
alias is not the stamp of its desired configuration. They are deleted and
built again, so an interrupted pass is finished by the next one. When
nothing differs, the plan is empty.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress

import netops
from meshd.reconcile import _routed, _rules
from meshd.reconcile._desired import HostDesired, LocalEndpoint, Network, active_networks
from netops import (
    VXLAN_READY,
    AttachEndpoint,
    AttachLeg,
    AttachMacvlan,
    AttachUplink,
    ClearQdisc,
    DeleteLink,
    DeleteRouter,
    DetachMacvlan,
    EnsureBridge,
    EnsureRouter,
    EnsureVlan,
    EnsureVxlan,
    FdbEntry,
    Link,
    NeighEntry,
    NftScript,
    Op,
    SetEndpointQos,
    SetMacvlanQos,
    SetTbf,
    bridge_name,
    leg_name,
    vlan_name,
    vxlan_name,
)

ZERO_MAC = "00:00:00:00:00:00"


def endpoint_stamp(ep: LocalEndpoint, net: Network, mtu: int) -> str:
    """``meshd ep <config hash> q=<qos>``: the config part forces a rebuild, the QoS part a QoS update."""
    cfg = f"{ep.vni}|{ep.netns}|{ep.ifname}|{ep.ip}/{net.prefixlen}|{ep.mac}|{mtu}|{net.gateway}"
    qos = ep.qos.stamp() if ep.qos else "-"
    return f"meshd ep {hashlib.sha1(cfg.encode()).hexdigest()[:12]} q={qos}"


def attach_op(ep: LocalEndpoint, net: Network, mtu: int) -> AttachEndpoint:
    return AttachEndpoint(ep.host_if, bridge_name(ep.vni), ep.netns, ep.ifname, ep.ip, net.prefixlen, ep.mac, mtu,
                          net.gateway, ep.qos, endpoint_stamp(ep, net, mtu))


def flat_stamp(ep: LocalEndpoint, net: Network, mtu: int) -> str:
    """:func:`endpoint_stamp` of a flat endpoint: its parent and macvlan mode are configuration too."""
    cfg = f"{ep.vni}|{ep.netns}|{ep.ifname}|{ep.ip}/{net.prefixlen}|{ep.mac}|{mtu}|{net.gateway}|" \
          f"{net.parent}|{net.macvlan_mode}|{net.vlan}"
    qos = ep.qos.stamp() if ep.qos else "-"
    return f"meshd ep {hashlib.sha1(cfg.encode()).hexdigest()[:12]} q={qos}"


def macvlan_parent(net: Network) -> str:
    """The link a flat network's macvlans hang off: its parent, or the parent's VLAN sub-interface."""
    assert net.parent is not None  # a flat Network checks it has one
    return net.parent if net.vlan is None else vlan_name(net.parent, net.vlan)


def attach_flat_op(d: HostDesired, ep: LocalEndpoint, net: Network, mtu: int) -> AttachMacvlan:
    return AttachMacvlan(ep.host_if, d.records_dir, macvlan_parent(net), net.macvlan_mode, ep.netns, ep.ifname,
                         ep.ip, net.prefixlen, ep.mac, mtu, net.gateway, ep.qos, flat_stamp(ep, net, mtu))


def vlan_stamp(parent: str, vid: int, mtu: int) -> str:
    return f"meshd vlan {parent} {vid} mtu={mtu}"


def network_mtu(d: HostDesired, net: Network) -> int:
    """The MTU of ``net``'s interfaces: its own, else what the underlay carries (VXLAN adds 50 bytes)."""
    return net.mtu or d.underlay_mtu - (netops.VXLAN_OVERHEAD if net.mode == "vxlan" else 0)


def plan_additions(before: HostDesired, after: HostDesired) -> list[Op] | None:
    """The operations from ``before`` to ``after`` without reading the kernel, or None.

    Valid only while the kernel matches ``before`` (the last pass was clean).
    Applies when ``after`` differs from ``before`` by new local endpoints in
    networks this host already builds (or in flat networks, which have
    nothing to build first), and by nothing else: then the plan is
    their veth pairs (macvlans) plus the rule-set elements they bring (an isolated or
    deny-all network's sets), and no dump of every link is needed. Anything
    else (a removal, a changed endpoint, a new network, a member change, a
    policy) returns None: a full pass.
    """
    if dataclasses.replace(after, local=before.local) != before:
        return None
    have = set(before.local)
    added = [ep for ep in after.local if ep not in have]
    if not added or len(after.local) != len(before.local) + len(added):
        return None  # nothing new, or something was removed or changed
    nets, active = {n.vni: n for n in after.networks}, set(active_networks(before))
    taken = {ep.host_if for ep in before.local}
    flat = {v for v, n in nets.items() if n.mode == "flat"}
    if any(ep.vni not in nets or (ep.vni not in active and ep.vni not in flat) or ep.host_if in taken
           for ep in added):
        return None
    if any(nets[ep.vni].vlan is not None and ep.vni not in active for ep in added):
        return None  # its VLAN sub-interface may not exist yet: a full pass makes it
    ops: list[Op] = [attach_flat_op(after, ep, nets[ep.vni], network_mtu(after, nets[ep.vni])) if ep.vni in flat
                     else attach_op(ep, nets[ep.vni], network_mtu(after, nets[ep.vni])) for ep in added]
    delta = _rules.delta_script(_rules.desired_sets(before), _rules.desired_sets(after))
    if delta:
        ops.append(NftScript(delta))
    return ops


def leg_stamp(router: str, net: Network, mtu: int) -> str:
    return f"meshd leg {router} {net.gateway}/{net.prefixlen} mtu={mtu}"


class _Plan:
    def __init__(self, d: HostDesired, actual: netops.Actual) -> None:
        self.d, self.actual = d, actual
        self.nets = {n.vni: n for n in d.networks}
        self.local = [ep for ep in d.local if ep.vni in self.nets and self.nets[ep.vni].mode == "vxlan"]
        self.flat = [ep for ep in d.local if ep.vni in self.nets and self.nets[ep.vni].mode == "flat"]
        self.routed_eps = _routed.routed_keys(d)  # built by _routed: kept here
        self.active = [v for v in active_networks(d) if self.nets[v].mode == "vxlan"]
        self.removals: list[Op] = []
        self.tunnels: list[Op] = []
        self.routers: list[Op] = []
        self.l2: list[Op] = []
        self.endpoints: list[Op] = []
        self.fresh_bridges: set[str] = set()  # (re)created this pass: nothing on them survives
        self.fresh_vxlans: set[str] = set()
        self.fresh_vlans: set[str] = set()  # VLAN sub-interfaces (re)created this pass
        self.uplinks = False

    def mtu(self, vni: int) -> int:
        return network_mtu(self.d, self.nets[vni])

    def link(self, name: str, kind: str) -> Link | None:
        link = self.actual.links.get(name)
        return link if link is not None and link.kind == kind else None

    def master_ok(self, link: Link | None, vni: int) -> bool:
        bridge = self.link(bridge_name(vni), "bridge")
        return link is not None and bridge is not None and link.master == bridge.index \
            and bridge_name(vni) not in self.fresh_bridges

    # ------------------------------------------------------------ tunnels
    def tunnel(self, vni: int) -> None:
        net, mtu = self.nets[vni], self.mtu(vni)
        br, vx = bridge_name(vni), vxlan_name(vni)
        if self.link(br, "bridge") is None:
            if br in self.actual.links:
                self.removals.append(DeleteLink(br))
            self.tunnels.append(EnsureBridge(br, mtu))
            self.fresh_bridges.add(br)
        x = self.link(vx, "vxlan")
        ok = x is not None and self.master_ok(x, vni) and (x.vni, x.vxlan_local, x.alias, x.mtu) == (
            vni, self.d.underlay_ip, VXLAN_READY, mtu)
        if not ok:
            if vx in self.actual.links:
                self.removals.append(DeleteLink(vx))
            self.tunnels.append(EnsureVxlan(vx, vni, self.d.underlay_ip, self.d.underlay_dev, br, mtu,
                                            self.d.vxlan_tx_csum_offload))
            self.fresh_vxlans.add(vx)
        have = None if vx in self.fresh_vxlans else self.actual.tbf_bps.get(vx)
        if net.egress_kbit and have != net.egress_kbit * 1000 // 8:
            self.tunnels.append(SetTbf(vx, net.egress_kbit))
        elif not net.egress_kbit and have:
            self.tunnels.append(ClearQdisc(vx))

    def stale_tunnels(self) -> None:
        active = {str(v) for v in self.active}
        for prefix in (netops.VXLAN_PREFIX, netops.BRIDGE_PREFIX):  # VXLANs before their bridges
            for name in sorted(self.actual.links):
                if name.startswith(prefix) and name[len(prefix):] not in active:
                    self.removals.append(DeleteLink(name))

    # ------------------------------------------------------------ endpoints
    def endpoints_ops(self) -> None:
        wanted = {ep.host_if: ep for ep in self.local}
        for name in sorted(self.actual.links):
            if name.startswith(netops.VETH_PREFIX) and name not in wanted and name not in self.routed_eps:
                self.removals.append(DeleteLink(name))
        for ep in self.local:
            self.endpoint(ep)

    def endpoint(self, ep: LocalEndpoint) -> None:
        net, mtu = self.nets[ep.vni], self.mtu(ep.vni)
        stamp = endpoint_stamp(ep, net, mtu)
        link = self.link(ep.host_if, "veth")
        same_cfg = link is not None and link.alias.split(" q=")[0] == stamp.split(" q=")[0]
        if link is not None and same_cfg and self.master_ok(link, ep.vni):
            if link.alias != stamp:
                self.endpoints.append(SetEndpointQos(ep.host_if, ep.netns, ep.ifname, ep.qos, stamp))
            return
        if ep.host_if in self.actual.links:
            self.removals.append(DeleteLink(ep.host_if))
        self.endpoints.append(attach_op(ep, net, mtu))

    # ------------------------------------------------------------ flat endpoints
    def vlan_ops(self) -> None:
        """The VLAN sub-interfaces the local flat endpoints of vlan networks hang off; stale ones deleted."""
        wanted: dict[str, EnsureVlan] = {}
        for ep in self.flat:
            net = self.nets[ep.vni]
            if net.vlan is not None and net.parent is not None:
                name, mtu = vlan_name(net.parent, net.vlan), self.mtu(ep.vni)
                if name not in wanted or wanted[name].mtu < mtu:
                    wanted[name] = EnsureVlan(name, net.parent, net.vlan, mtu, vlan_stamp(net.parent, net.vlan, mtu))
        for name in sorted(self.actual.links):
            if name.startswith(netops.VLAN_PREFIX) and name not in wanted:
                self.removals.append(DeleteLink(name))
        for name, op in sorted(wanted.items()):
            link = self.link(name, "vlan")
            if link is None or link.alias != op.stamp:
                if name in self.actual.links:
                    self.removals.append(DeleteLink(name))
                self.tunnels.append(op)
                self.fresh_vlans.add(name)

    def flat_ops(self) -> None:
        """Flat endpoints against their records: stale ones detached, missing or changed ones (re)attached
        (also those on a VLAN sub-interface this pass makes again: deleting it took their macvlans)."""
        d, records = self.d, self.actual.macvlans
        wanted = {ep.host_if: ep for ep in self.flat}
        for name, stale in sorted(records.items()):
            if name not in wanted:
                self.removals.append(DetachMacvlan(name, d.records_dir, stale.netns, stale.ifname, stale.stamp))
        for ep in self.flat:
            net = self.nets[ep.vni]
            op = attach_flat_op(d, ep, net, self.mtu(ep.vni))
            rec = records.get(ep.host_if)
            if rec is not None and rec.alias == rec.stamp and (rec.netns, rec.ifname) == (ep.netns, ep.ifname) \
                    and rec.stamp.split(" q=")[0] == op.stamp.split(" q=")[0] and op.parent not in self.fresh_vlans:
                if rec.stamp != op.stamp:
                    self.endpoints.append(SetMacvlanQos(ep.host_if, d.records_dir, ep.netns, ep.ifname, ep.qos,
                                                        op.stamp))
                continue
            if rec is not None:
                self.removals.append(DetachMacvlan(rec.name, d.records_dir, rec.netns, rec.ifname, rec.stamp))
            self.endpoints.append(op)

    # ------------------------------------------------------------ L2 population
    def wanted_l2(self) -> tuple[set[tuple[str, str, str]], dict[tuple[str, str], str]]:
        fdb: set[tuple[str, str, str]] = set()
        neigh: dict[tuple[str, str], str] = {}
        by_vni: dict[int, list] = {}
        for r in self.d.remote:
            by_vni.setdefault(r.vni, []).append(r)
        for vni in self.active:
            vx = vxlan_name(vni)
            live = set(self.d.vteps.get(vni, frozenset())) - {self.d.underlay_ip}
            fdb |= {(vx, ZERO_MAC, vtep) for vtep in live}
            for r in by_vni.get(vni, ()):
                if r.vtep in live:
                    fdb |= {(vx, r.mac, r.vtep), (vx, r.mac, "")}
                    neigh[(vx, r.ip)] = r.mac
        return fdb, neigh

    def l2_ops(self) -> None:
        want_fdb, want_neigh = self.wanted_l2()
        kept = {f"{netops.VXLAN_PREFIX}{v}" for v in self.active} - self.fresh_vxlans
        have_fdb = {e for e in self.actual.fdb if e[0] in kept}
        have_neigh = {(dev, ip): mac for dev, ip, mac in self.actual.neigh if dev in kept}
        for dev, mac, dst in sorted(have_fdb - want_fdb):
            self.removals.append(FdbEntry(False, dev, mac, dst or None))
        for (dev, ip), mac in sorted(have_neigh.items()):
            if (dev, ip) not in want_neigh:
                self.removals.append(NeighEntry(False, dev, ip, mac))
        for dev, mac, dst in sorted(want_fdb - have_fdb):
            self.l2.append(FdbEntry(True, dev, mac, dst or None))
        for (dev, ip), mac in sorted(want_neigh.items()):
            if have_neigh.get((dev, ip)) != mac:
                self.l2.append(NeighEntry(True, dev, ip, mac))

    # ------------------------------------------------------------ tenant routers
    def router_ops(self) -> None:
        routed = [v for v in self.active if self.nets[v].gateway]
        wanted = {self.d.router_name(self.nets[v].tenant) for v in routed}
        for name in sorted(self.actual.routers - wanted):
            self.removals.append(DeleteRouter(name))
        missing = wanted - self.actual.routers
        self.routers += [EnsureRouter(name) for name in sorted(missing)]
        for name in sorted(self.actual.links):
            if name.startswith(netops.LEG_PREFIX) and int(name[len(netops.LEG_PREFIX):] or 0) not in routed:
                self.removals.append(DeleteLink(name))
        for vni in routed:
            net, mtu = self.nets[vni], self.mtu(vni)
            link = self.link(leg_name(vni), "veth")
            router = self.d.router_name(net.tenant)
            stamp = leg_stamp(router, net, mtu)
            ok = link is not None and link.alias == stamp and self.master_ok(link, vni) and router not in missing
            if not ok:
                if leg_name(vni) in self.actual.links:
                    self.removals.append(DeleteLink(leg_name(vni)))
                assert net.gateway  # routed networks are those with one
                self.routers.append(AttachLeg(router, vni, bridge_name(vni), net.gateway,
                                              net.prefixlen, mtu, stamp))


def uplink_slots(tenants: list[str]) -> dict[str, int]:
    """A /31 of 100.64.0.0/10 per tenant with external access: hash, then linear probing in name order."""
    used: dict[str, int] = {}
    taken: set[int] = set()
    for tenant in sorted(tenants):
        slot = int(hashlib.sha1(tenant.encode()).hexdigest(), 16) % (1 << 21)
        while slot in taken:
            slot = (slot + 1) % (1 << 21)
        taken.add(slot)
        used[tenant] = slot
    return used


def _uplink_ops(p: _Plan) -> None:
    routed = [v for v in p.active if p.nets[v].gateway and p.nets[v].external]
    slots = uplink_slots(sorted({p.nets[v].tenant for v in routed}))
    base = int(ipaddress.ip_network(_rules.UPLINK_NET).network_address)
    wanted = {}
    for tenant, slot in slots.items():
        router = p.d.router_name(tenant)
        host_if = netops.UPLINK_PREFIX + hashlib.sha1(router.encode()).hexdigest()[:12]
        host_ip, router_ip = (str(ipaddress.ip_address(base + 2 * slot + k)) for k in (0, 1))
        wanted[host_if] = AttachUplink(router, host_if, host_ip, router_ip, f"meshd up {router} {host_ip} {router_ip}")
    fresh = {op.name for op in p.routers if isinstance(op, EnsureRouter)}
    for name in sorted(p.actual.links):
        if name.startswith(netops.UPLINK_PREFIX) and name not in wanted:
            p.removals.append(DeleteLink(name))
    for host_if, op in sorted(wanted.items()):
        link = p.link(host_if, "veth")
        if link is None or link.alias != op.stamp or op.router in fresh:
            if host_if in p.actual.links:
                p.removals.append(DeleteLink(host_if))
            p.routers.append(op)
    p.uplinks = bool(wanted)


def plan(d: HostDesired, actual: netops.Actual, nft: netops.NftTable | None,
         nat: netops.NftTable | None = None, routed: netops.NftTable | None = None) -> list[Op]:
    """Operations that turn ``actual`` (+ ``nft``, the meshd bridge table,
    ``nat``, the ``ip meshd`` table, and ``routed``, the ``ip meshd_routed``
    table, each None when absent) into ``d``.

    Returns an empty list when the kernel already matches.
    """
    p = _Plan(d, actual)
    for vni in p.active:
        p.tunnel(vni)
    p.endpoints_ops()
    p.vlan_ops()
    p.flat_ops()
    p.router_ops()
    _uplink_ops(p)
    p.l2_ops()
    p.stale_tunnels()
    r = _routed.plan_routed(d, actual, routed)
    ops = (r.first + p.removals + r.removals + p.tunnels + r.tunnels + p.routers + p.l2 + r.l2 + p.endpoints
           + r.endpoints + r.routes + r.nft)
    wanted = _rules.desired_sets(d)
    # A bridge-family base chain created while no bridge exists in the netns is never
    # called for frames of bridges made later (seen on Linux 6.18): the pass that
    # makes this host's first bridge replaces the table after the bridge exists.
    had_bridge = any(name.startswith(netops.BRIDGE_PREFIX) for name in actual.links)
    first_bridge = not had_bridge and any(isinstance(op, EnsureBridge) for op in p.tunnels)
    if nft is None or nft.tag != _rules.TAG or first_bridge:
        ops.append(NftScript(_rules.full_script(wanted)))
    else:
        delta = _rules.delta_script(nft.sets, wanted)
        if delta:
            ops.append(NftScript(delta))
    if p.uplinks and (nat is None or nat.tag != _rules.NAT_TAG):
        ops.append(NftScript(_rules.nat_script()))
    elif not p.uplinks and nat is not None:
        ops.append(NftScript(_rules.nat_delete_script()))
    return ops

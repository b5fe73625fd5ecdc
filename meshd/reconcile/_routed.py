"""The planner of ``routed`` networks (direct routing; seeds 003 Calico and 004 Flannel DirectRouting).

Theory of operation: pure, like :mod:`meshd.reconcile._plan`, which calls
:func:`plan_routed` for the networks of mode ``routed`` that this host builds
(:func:`~meshd.reconcile._desired.routed_networks`). What a host builds:

* per local endpoint a veth ``mv<hash>`` with no bridge: the container side
  holds ``ip/32`` and a default route ``via <gateway> onlink``; the host side
  holds the gateway address as a /32 (so it answers the container's ARP, as
  CNI's ptp plugin does, with no proxy ARP and no dependency on the host's own
  routes), and the host routes ``ip/32 dev mv<hash>``. Containers of one host
  reach each other through the host too (every packet is routed, so the
  policies below see all of it);
* per remote endpoint of a live host, a route ``ip/32``: ``via <its VTEP> dev
  <underlay>`` when the VTEP lies in this host's underlay subnet (same L2
  segment: no encapsulation), else ``via <its VTEP> dev mr-<vni> onlink``
  through the network's VXLAN device ``mr-<vni>`` (on no bridge; fixed MAC
  :func:`routed_mac` of the host's VTEP) with, per live remote host, a
  permanent neighbour entry ``<VTEP> lladdr routed_mac(VTEP)`` and an FDB entry
  ``routed_mac(VTEP) dst <VTEP>`` (Flannel's VXLAN backend, keyed by the VTEP
  address instead of a per-host subnet). ``mr-<vni>`` exists on every host
  that builds the network, so a peer that counts this host as another segment
  can still reach it;
* every route carries protocol :data:`netops.RTPROT_MESHD`; the dump reads only
  those, so the host's own routes are never touched;
* table ``ip meshd_routed`` (:func:`full_script`): tenant isolation and the
  policies on the host's forward path, from address sets only.

Stamps and rebuilds as for VXLAN networks: a veth whose alias is not its
stamp (``meshd rep …``) is rebuilt, a VXLAN device without ``meshd:ready`` or
with another configuration too; a rebuilt device loses its routes and
entries, which are planned again in the same pass.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass, field

import netops
from meshd.reconcile import _rules
from meshd.reconcile._desired import HostDesired, LocalEndpoint, Network, routed_networks
from netops import VXLAN_READY, AttachEndpoint, DeleteLink, EnsureVxlan, FdbEntry, NeighEntry, Op, Route, RouteKey

FAMILY, TABLE = "ip", "meshd_routed"
SETS = ("ports", "sources", "gateways", "pairs")
# Rules never change with the state, only the sets and the verdict map. A routed packet costs
# four lookups (two ifname hashes, the source check, one verdict map): each further lookup
# measurably lowered single-stream TCP on this machine (7 lookups: 0.91 of plain routing).
# The forward chain comes first: its first rule's comment is the table's tag.
_BODY = """\
  set ports { type ifname; }
  set sources { type ifname . ipv4_addr; }
  set gateways { type ipv4_addr; }
  map pairs { type ipv4_addr . ipv4_addr : verdict; flags interval; }
  chain forward {
    type filter hook forward priority 0; policy accept;
    iifname != @ports oifname != @ports accept comment "%(tag)s"
    iifname "mv*" iifname . ip saddr != @sources counter drop comment "spoofed"
    ip saddr . ip daddr vmap @pairs
    counter drop comment "tenant"
  }
  chain input {
    type filter hook input priority 0; policy accept;
    iifname @ports ip daddr @gateways icmp type echo-request accept
    iifname @ports counter drop comment "to-host"
  }
  chain isolate {
    counter drop comment "isolate"
  }
  chain deny_all {
    counter drop comment "deny_all"
  }
  chain deny {
    tcp flags & (syn | ack) == syn counter drop comment "deny"
    icmp type echo-request counter drop comment "deny"
    meta l4proto udp counter drop comment "deny"
    accept
  }
"""
TAG = "meshd routed=" + hashlib.sha1(_BODY.encode()).hexdigest()[:12]


def routed_mac(vtep: str) -> str:
    """The MAC of every ``mr-<vni>`` device of the host whose VTEP is ``vtep``: 02:6d + its four octets."""
    return "02:6d:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(vtep).packed)


def endpoint_stamp(ep: LocalEndpoint, net: Network, mtu: int) -> str:
    """``meshd rep <config hash> q=<qos>``, as :func:`meshd.reconcile.endpoint_stamp` for routed endpoints."""
    cfg = f"routed|{ep.vni}|{ep.netns}|{ep.ifname}|{ep.ip}/32|{ep.mac}|{mtu}|{net.gateway}"
    qos = ep.qos.stamp() if ep.qos else "-"
    return f"meshd rep {hashlib.sha1(cfg.encode()).hexdigest()[:12]} q={qos}"


def attach_op(ep: LocalEndpoint, net: Network, mtu: int) -> AttachEndpoint:
    return AttachEndpoint(ep.host_if, None, ep.netns, ep.ifname, ep.ip, 32, ep.mac, mtu, net.gateway, ep.qos,
                          endpoint_stamp(ep, net, mtu), host_address=net.gateway)


@dataclass
class RoutedPlan:
    """The routed networks' operations, by where :func:`meshd.reconcile.plan` puts them."""

    first: list[Op] = field(default_factory=list)  # route and entry removals: before any link goes
    removals: list[Op] = field(default_factory=list)
    tunnels: list[Op] = field(default_factory=list)
    l2: list[Op] = field(default_factory=list)
    endpoints: list[Op] = field(default_factory=list)
    routes: list[Op] = field(default_factory=list)
    nft: list[Op] = field(default_factory=list)


class _Routed:
    def __init__(self, d: HostDesired, actual: netops.Actual) -> None:
        self.d, self.actual = d, actual
        self.nets = {n.vni: n for n in d.networks}
        self.vnis = routed_networks(d)
        self.local = [ep for ep in d.local if ep.vni in self.vnis]
        self.segment = ipaddress.ip_network(d.underlay_subnet, strict=False) if d.underlay_subnet else None
        self.fresh: set[str] = set()  # devices (re)built this pass: their routes and entries are gone
        self.out = RoutedPlan()

    def mtu(self, vni: int) -> int:
        return self.nets[vni].mtu or self.d.underlay_mtu - netops.VXLAN_OVERHEAD

    def live(self, vni: int) -> frozenset[str]:
        return frozenset(self.d.vteps.get(vni, frozenset())) - {self.d.underlay_ip}

    def same_segment(self, vtep: str) -> bool:
        return self.segment is not None and ipaddress.ip_address(vtep) in self.segment

    # ------------------------------------------------------------ devices
    def tunnels(self) -> None:
        wanted = {netops.routed_vxlan_name(v) for v in self.vnis}
        for name in sorted(self.actual.links):
            if name.startswith(netops.ROUTED_VXLAN_PREFIX) and name not in wanted:
                self.out.removals.append(DeleteLink(name))
        mac = routed_mac(self.d.underlay_ip)
        for vni in self.vnis:
            name, mtu = netops.routed_vxlan_name(vni), self.mtu(vni)
            x = self.actual.links.get(name)
            if x is not None and x.kind == "vxlan" and not x.master and (
                    x.vni, x.vxlan_local, x.alias, x.mtu, x.mac) == (vni, self.d.underlay_ip, VXLAN_READY, mtu, mac):
                continue
            if x is not None:
                self.out.removals.append(DeleteLink(name))
            self.out.tunnels.append(EnsureVxlan(name, vni, self.d.underlay_ip, self.d.underlay_dev, None, mtu,
                                                self.d.vxlan_tx_csum_offload, mac))
            self.fresh.add(name)

    def endpoints(self) -> None:
        for ep in self.local:
            net, mtu = self.nets[ep.vni], self.mtu(ep.vni)
            stamp = endpoint_stamp(ep, net, mtu)
            link = self.actual.links.get(ep.host_if)
            if link is not None and link.kind == "veth" and not link.master \
                    and link.alias.split(" q=")[0] == stamp.split(" q=")[0]:
                if link.alias != stamp:
                    self.out.endpoints.append(netops.SetEndpointQos(ep.host_if, ep.netns, ep.ifname, ep.qos, stamp))
                continue
            if link is not None:
                self.out.removals.append(DeleteLink(ep.host_if))
            self.out.endpoints.append(attach_op(ep, net, mtu))
            self.fresh.add(ep.host_if)

    # ------------------------------------------------------------ entries and routes
    def l2(self) -> None:
        want_fdb = {(netops.routed_vxlan_name(v), routed_mac(t), t) for v in self.vnis for t in self.live(v)}
        want_neigh = {(netops.routed_vxlan_name(v), t, routed_mac(t)) for v in self.vnis for t in self.live(v)}
        mine = lambda dev: dev.startswith(netops.ROUTED_VXLAN_PREFIX) and dev not in self.fresh  # noqa: E731
        have_fdb = {e for e in self.actual.fdb if mine(e[0])}
        have_neigh = {e for e in self.actual.neigh if mine(e[0])}
        gone = {op.name for op in self.out.removals if isinstance(op, DeleteLink)}
        for dev, mac, dst in sorted(have_fdb - want_fdb):
            if dev not in gone:
                self.out.first.append(FdbEntry(False, dev, mac, dst or None))
        for dev, ip, mac in sorted(have_neigh - want_neigh):
            if dev not in gone:
                self.out.first.append(NeighEntry(False, dev, ip, mac))
        self.out.l2 += [FdbEntry(True, dev, mac, dst) for dev, mac, dst in sorted(want_fdb - have_fdb)]
        self.out.l2 += [NeighEntry(True, dev, ip, mac) for dev, ip, mac in sorted(want_neigh - have_neigh)]

    def wanted_routes(self) -> dict[RouteKey, Route]:
        out: dict[RouteKey, Route] = {}
        for ep in self.local:
            out[RouteKey(f"{ep.ip}/32", ep.host_if)] = Route(True, f"{ep.ip}/32", ep.host_if)
        vnis = set(self.vnis)
        for r in self.d.remote:
            if r.vni not in vnis or r.vtep not in self.live(r.vni):
                continue
            dst = f"{r.ip}/32"
            if self.same_segment(r.vtep):
                out[RouteKey(dst, self.d.underlay_dev, r.vtep)] = Route(True, dst, self.d.underlay_dev, r.vtep)
            else:
                dev = netops.routed_vxlan_name(r.vni)
                out[RouteKey(dst, dev, r.vtep)] = Route(True, dst, dev, r.vtep, onlink=True)
        return out

    def routes(self) -> None:
        want = self.wanted_routes()
        gone = self.fresh | {op.name for op in self.out.removals if isinstance(op, DeleteLink)}
        have = {k for k in self.actual.routes if k.dev not in gone and not k.dev.startswith("#")}
        wanted_dsts = {k.dst for k in want}
        for k in sorted(have - want.keys()):
            if k.dst not in wanted_dsts:  # a changed route is replaced by its add (NLM_F_REPLACE)
                self.out.first.append(Route(False, k.dst, k.dev, k.gateway or None))
        self.out.routes += [op for k, op in sorted(want.items()) if k not in have]

    # ------------------------------------------------------------ rules
    def nft(self, table: netops.NftTable | None) -> None:
        if not self.vnis:
            if table is not None:
                self.out.nft.append(netops.NftScript(f"delete table {FAMILY} {TABLE}\n"))
            return
        wanted = desired_sets(self.d)
        if table is None or table.tag != TAG:
            self.out.nft.append(netops.NftScript(full_script(wanted)))
            return
        delta = delta_script(table.sets, wanted)
        if delta:
            self.out.nft.append(netops.NftScript(delta))


def plan_routed(d: HostDesired, actual: netops.Actual, table: netops.NftTable | None) -> RoutedPlan:
    """The operations for this host's ``routed`` networks (``table``: the dumped ``ip meshd_routed``)."""
    p = _Routed(d, actual)
    p.tunnels()
    p.endpoints()
    p.l2()
    p.routes()
    p.nft(table)
    return p.out


def routed_keys(d: HostDesired) -> frozenset[str]:
    """Host veths of this host's routed endpoints (the VXLAN planner must keep them)."""
    vnis = set(routed_networks(d))
    return frozenset(ep.host_if for ep in d.local if ep.vni in vnis)


def desired_sets(d: HostDesired) -> dict[str, frozenset[str]]:
    """The elements of table ``ip meshd_routed``'s sets and verdict map for this host.

    ``ports``: local routed veths and ``mr-<vni>`` devices (traffic through
    neither is not meshd's and passes untouched); ``sources``: each local veth
    with its container's address (anything else from a veth is spoofed);
    ``gateways``: answer pings; ``pairs``: (source subnet, destination subnet)
    → verdict for every ordered pair of routed networks of one tenant (with
    itself): ``accept``, or the chain of the policy (seed 000 Table 4) that
    applies — ``deny_all`` (either side under deny-all), ``isolate`` (within an
    isolated network), ``deny`` (A→B denied: new flows only, stateless as in
    the bridge table). A routed packet of no pair is dropped ("tenant"):
    tenants never reach each other, nor anything outside their routed networks.
    """
    vnis = routed_networks(d)
    nets = {n.vni: n for n in d.networks}
    here = [nets[v] for v in vnis]
    active = set(vnis)
    local = [ep for ep in d.local if ep.vni in active]
    isolated, denied_all, denied = set(), set(), set()
    for p in d.policies:
        if p.a not in active:
            continue
        if p.kind == "isolate":
            isolated.add(p.a)
        elif p.kind == "deny_all":
            denied_all.add(p.a)
        elif p.b is not None and p.b in active:
            denied |= {(p.a, p.b), (p.b, p.a)} if p.kind == "deny_both" else {(p.a, p.b)}

    def verdict(a: Network, b: Network) -> str:
        if a.vni in denied_all or b.vni in denied_all:
            return "jump deny_all"
        if a.vni == b.vni and a.vni in isolated:
            return "jump isolate"
        return "jump deny" if (a.vni, b.vni) in denied else "accept"

    return {
        "ports": frozenset({ep.host_if for ep in local} | {netops.routed_vxlan_name(v) for v in vnis}),
        "sources": frozenset(f"{ep.host_if} . {ep.ip}" for ep in local),
        "gateways": frozenset(n.gateway for n in here if n.gateway),
        "pairs": frozenset(f"{a.subnet} . {b.subnet} : {verdict(a, b)}" for a in here for b in here
                           if a.tenant == b.tenant),
    }


def full_script(sets: dict[str, frozenset[str]]) -> str:
    """Replace the whole table atomically (create-if-missing, delete, define, fill)."""
    return _rules.table_script(FAMILY, TABLE, _BODY % {"tag": TAG}, SETS, sets)


def delta_script(actual: dict[str, frozenset[str]], wanted: dict[str, frozenset[str]]) -> str:
    """Set-element updates turning ``actual`` into ``wanted`` ("" when equal)."""
    return _rules.elements_delta(FAMILY, TABLE, SETS, actual, wanted)

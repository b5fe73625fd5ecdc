"""The planner of routed networks on a simulated kernel: direct routes on the segment,
VXLAN beyond it, withdrawal of failed hosts, the fixed point, and the rule sets."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

import netops
from meshd.reconcile import HostDesired, LocalEndpoint, Network, Policy, RemoteEndpoint, _routed, plan, plan_additions
from netops import AttachEndpoint, DeleteLink, EnsureVxlan, NftScript, Route, RouteKey
from tests.unit.reconcile.test_reconcile_plan import SimKernel


class RoutedSimKernel(SimKernel):
    """SimKernel plus meshd's routes, unbridged devices and the ``ip meshd_routed`` table."""

    def __init__(self) -> None:
        super().__init__()
        self.routes: set[RouteKey] = set()
        self.routed: netops.NftTable | None = None

    def actual(self) -> netops.Actual:
        return dataclasses.replace(super().actual(), routes=frozenset(self.routes))

    def _delete(self, name: str) -> None:
        super()._delete(name)
        self.routes = {r for r in self.routes if r.dev != name}

    def do_EnsureVxlan(self, op: EnsureVxlan) -> None:
        if op.bridge is not None:
            return super().do_EnsureVxlan(op)
        if op.name not in self.links:
            self._add(op.name, "vxlan", mtu=op.mtu, alias=netops.VXLAN_READY, vni=op.vni, vxlan_local=op.local_ip)
            self.links[op.name] = dataclasses.replace(self.links[op.name], mac=op.mac)

    def do_AttachEndpoint(self, op: AttachEndpoint) -> None:
        if op.bridge is not None:
            return super().do_AttachEndpoint(op)
        assert op.host_if not in self.links and op.host_address == op.gateway and op.prefixlen == 32
        self._add(op.host_if, "veth", mtu=op.mtu, alias=op.stamp)

    def do_Route(self, op: Route) -> None:
        if op.add:
            assert op.dev in self.links or op.dev == "eth0", op
            self.routes = {r for r in self.routes if r.dst != op.dst} | {RouteKey(op.dst, op.dev, op.gateway or "")}
        else:
            self.routes.discard(RouteKey(op.dst, op.dev, op.gateway or ""))

    def do_NftScript(self, op: NftScript) -> None:
        if f"{_routed.FAMILY} {_routed.TABLE}" not in op.script:
            return super().do_NftScript(op)
        if op.script.startswith("delete table"):
            self.routed = None
            return
        sets = {n: frozenset[str]() for n in _routed.SETS} if "delete table" in op.script or self.routed is None \
            else dict(self.routed.sets)
        for line in op.script.splitlines():
            if line.startswith(("add element", "delete element")):
                verb, _e, _f, _t, name, rest = line.split(" ", 5)
                elems = {e.strip().replace('"', "") for e in rest.strip("{} \n").split(",")}
                sets[name] = sets[name] | elems if verb == "add" else sets[name] - elems
        self.routed = netops.NftTable(_routed.TAG, sets)

    def converge(self, d: HostDesired) -> list:
        ops = plan(d, self.actual(), self.nft, self.nat, self.routed)
        self.apply(ops)
        return ops


# host h1 = 192.0.2.11 on 192.0.2.0/24; h2 = 192.0.2.12 (same segment); h3 = 198.51.100.13 (another segment)
H2, H3 = "192.0.2.12", "198.51.100.13"
R1 = Network(vni=700, tenant="red", subnet="10.70.0.0/24", gateway="10.70.0.1", mode="routed")
R2 = Network(vni=701, tenant="red", subnet="10.71.0.0/24", gateway="10.71.0.1", mode="routed")
B1 = Network(vni=800, tenant="blue", subnet="10.80.0.0/24", gateway="10.80.0.1", mode="routed")
VX = Network(vni=900, tenant="red", subnet="10.70.0.0/24", gateway="10.70.0.1")  # vxlan: may reuse a subnet


def ep(key: str, vni: int, ip: str) -> LocalEndpoint:
    return LocalEndpoint(key=key, vni=vni, netns=f"/proc/{abs(hash(key)) % 9999}/ns/net", ip=ip,
                         mac="02:00:00:00:00:" + ip.split(".")[-1].zfill(2)[-2:])


def remote(vni: int, ip: str, vtep: str) -> RemoteEndpoint:
    return RemoteEndpoint(vni=vni, ip=ip, mac="02:00:00:00:01:" + ip.split(".")[-1].zfill(2)[-2:], vtep=vtep)


def desired(local=(), rem=(), policies=(), vteps=None, networks=(R1, R2, B1, VX)) -> HostDesired:
    if vteps is None:
        vteps = {}
        for r in rem:
            vteps.setdefault(r.vni, set()).add(r.vtep)
    return HostDesired(underlay_ip="192.0.2.11", underlay_dev="eth0", underlay_mtu=1500, networks=tuple(networks),
                       local=tuple(local), remote=tuple(rem), policies=tuple(policies),
                       vteps={v: frozenset(s) for v, s in vteps.items()}, underlay_subnet="192.0.2.0/24")


def routes(k: RoutedSimKernel) -> set[tuple[str, str, str]]:
    return {(r.dst, r.dev, r.gateway) for r in k.routes}


BASE = desired(local=[ep("c1", 700, "10.70.0.2")],
               rem=[remote(700, "10.70.0.3", H2), remote(700, "10.70.0.4", H3), remote(701, "10.71.0.5", H2)])


def test_same_segment_is_routed_directly_and_another_segment_through_the_network_vxlan() -> None:
    k = RoutedSimKernel()
    ops = k.converge(BASE)
    host_if = BASE.local[0].host_if
    assert routes(k) == {
        ("10.70.0.2/32", host_if, ""),                 # the local container
        ("10.70.0.3/32", "eth0", H2),                  # same L2 segment: via its underlay address, no tunnel
        ("10.70.0.4/32", "mr-700", H3),                # another segment: through the routed network's VXLAN
        ("10.71.0.5/32", "eth0", H2),                  # the tenant's other routed network is routed too
    }
    attach = next(o for o in ops if isinstance(o, AttachEndpoint))
    assert (attach.bridge, attach.prefixlen, attach.gateway, attach.host_address) == (None, 32, "10.70.0.1",
                                                                                      "10.70.0.1")
    assert next(o for o in ops if isinstance(o, Route) and o.dev == "mr-700").onlink
    # no bridge, no bridged VXLAN, no tenant router for routed networks; one VXLAN device each, on no bridge
    assert sorted(k.links) == sorted([host_if, "mr-700", "mr-701"]) and not k.routers
    assert {k.links["mr-700"].mac, k.links["mr-701"].mac} == {_routed.routed_mac("192.0.2.11")} == {"02:6d:c0:00:02:0b"}
    # per live remote host and network: the VTEP's fixed MAC, for the hosts of other segments' routes
    assert ("mr-700", _routed.routed_mac(H3), H3) in k.fdb and k.neigh[("mr-700", H3)] == _routed.routed_mac(H3)
    # the order: devices, then the endpoint, then routes (a route needs its device)
    names = [type(o).__name__ for o in ops]
    assert names.index("EnsureVxlan") < names.index("AttachEndpoint") < names.index("Route")
    assert k.converge(BASE) == []  # a second pass (a restarted agent) changes nothing


def test_a_failed_host_loses_its_routes_and_entries_and_gets_them_back() -> None:
    k = RoutedSimKernel()
    k.converge(BASE)
    failed = desired(local=BASE.local, rem=BASE.remote, vteps={700: {H2}, 701: {H2}})  # H3 failed: not live
    ops = k.converge(failed)
    assert Route(False, "10.70.0.4/32", "mr-700", H3) in ops
    assert ("10.70.0.4/32", "mr-700", H3) not in routes(k)
    assert not any(e[2] == H3 for e in k.fdb) and not any(ip == H3 for _, ip in k.neigh)
    assert {o.dst for o in ops if isinstance(o, Route)} == {"10.70.0.4/32"}  # nothing else moves
    k.converge(BASE)
    assert ("10.70.0.4/32", "mr-700", H3) in routes(k)


def test_the_last_local_endpoint_gone_takes_the_network_with_it() -> None:
    k = RoutedSimKernel()
    k.converge(BASE)
    ops = k.converge(desired(rem=BASE.remote))
    assert DeleteLink(BASE.local[0].host_if) in ops and not k.links and not k.routes
    assert k.routed is None  # the table goes with the last routed network


def test_a_rebuilt_endpoint_gets_its_route_again_and_a_half_built_one_is_rebuilt() -> None:
    k = RoutedSimKernel()
    k.converge(BASE)
    host_if = BASE.local[0].host_if
    k.links[host_if] = dataclasses.replace(k.links[host_if], alias="meshd:building")
    ops = k.converge(BASE)
    assert [type(o).__name__ for o in ops] == ["DeleteLink", "AttachEndpoint", "Route"]
    assert ("10.70.0.2/32", host_if, "") in routes(k) and k.converge(BASE) == []
    # a VXLAN device of another configuration is replaced, with its entries and routes
    k.links["mr-700"] = dataclasses.replace(k.links["mr-700"], mac="02:00:00:00:00:99")
    ops = k.converge(BASE)
    assert DeleteLink("mr-700") in ops and Route(True, "10.70.0.4/32", "mr-700", H3, onlink=True) in ops
    assert k.converge(BASE) == []


def test_a_host_route_the_operator_left_is_never_touched_but_a_stale_meshd_route_goes() -> None:
    k = RoutedSimKernel()
    k.converge(BASE)
    k.routes.add(RouteKey("10.70.0.99/32", "eth0", H2))  # a meshd route no longer wanted (protocol meshd)
    assert k.converge(BASE) == [Route(False, "10.70.0.99/32", "eth0", H2)]


def test_a_vxlan_network_beside_a_routed_one_keeps_its_bridge_and_the_routed_veth_stays() -> None:
    k = RoutedSimKernel()
    d = dataclasses.replace(BASE, local=(*BASE.local, ep("c2", 900, "10.70.0.2")))
    k.converge(d)
    assert {"mb-900", "mx-900", "mr-700"} <= set(k.links)
    assert all(k.links[e.host_if].master == (k.links["mb-900"].index if e.vni == 900 else 0) for e in d.local)
    assert k.converge(d) == []
    # a new routed endpoint is never a bridged addition: a full pass builds it
    more = dataclasses.replace(d, local=(*d.local, ep("c3", 700, "10.70.0.7")))
    assert plan_additions(d, more) is None


def test_sets_isolate_tenants_and_carry_the_policies() -> None:
    pols = (Policy(kind="isolate", a=700), Policy(kind="deny", a=700, b=701), Policy(kind="deny_all", a=701))
    d = desired(local=[ep("c1", 700, "10.70.0.2"), ep("c9", 800, "10.80.0.9")], rem=BASE.remote, policies=pols)
    sets = _routed.desired_sets(d)
    c1, c9 = (e.host_if for e in d.local)
    a, b, z = "10.70.0.0/24", "10.71.0.0/24", "10.80.0.0/24"
    assert sets["pairs"] == {  # red never pairs with blue: no pair → dropped as another tenant's
        f"{a} . {a} : jump isolate", f"{a} . {b} : jump deny_all", f"{b} . {a} : jump deny_all",
        f"{b} . {b} : jump deny_all", f"{z} . {z} : accept"}
    assert sets["sources"] == {f"{c1} . 10.70.0.2", f"{c9} . 10.80.0.9"}
    assert sets["ports"] == {c1, c9, "mr-700", "mr-701", "mr-800"}
    assert sets["gateways"] == {"10.70.0.1", "10.71.0.1", "10.80.0.1"}
    deny = _routed.desired_sets(dataclasses.replace(d, policies=(Policy(kind="deny", a=700, b=701),)))
    assert deny["pairs"] >= {f"{a} . {b} : jump deny", f"{b} . {a} : accept", f"{a} . {a} : accept"}
    both = _routed.desired_sets(dataclasses.replace(d, policies=(Policy(kind="deny_both", a=700, b=701),)))
    assert both["pairs"] >= {f"{a} . {b} : jump deny", f"{b} . {a} : jump deny"}
    k = RoutedSimKernel()
    k.converge(d)
    assert k.routed is not None and k.routed.sets == sets
    # a new endpoint is a set-element update, never a new table; a policy change swaps verdicts
    more = dataclasses.replace(d, local=(*d.local, ep("c3", 700, "10.70.0.7")))
    scripts = [o.script for o in k.converge(more) if isinstance(o, NftScript)]
    assert len(scripts) == 1 and scripts[0].startswith("add element ip meshd_routed ports")
    [script] = [o.script for o in k.converge(dataclasses.replace(more, policies=())) if isinstance(o, NftScript)]
    assert f"delete element ip meshd_routed pairs {{ {a} . {a} : jump isolate" in script
    assert f"add element ip meshd_routed pairs {{ {a} . {a} : accept" in script
    # the bridge table holds nothing of routed networks
    assert k.nft is not None and not any(k.nft.sets.values())


def test_without_a_known_segment_every_remote_host_goes_through_vxlan() -> None:
    k = RoutedSimKernel()
    k.converge(dataclasses.replace(BASE, underlay_subnet=None))
    assert {dev for _, dev, gw in routes(k) if gw} == {"mr-700", "mr-701"}


_IPS = st.sampled_from(["10.70.0.3", "10.70.0.4", "10.71.0.5", "10.80.0.6"])
_VTEPS = st.sampled_from([H2, H3])


@st.composite
def _states(draw) -> HostDesired:
    local = draw(st.lists(st.sampled_from([ep("c1", 700, "10.70.0.2"), ep("c2", 701, "10.71.0.2"),
                                           ep("c8", 800, "10.80.0.2"), ep("c9", 900, "10.70.0.9")]), unique=True))
    rem = []
    for ip in draw(st.lists(_IPS, unique=True)):
        vni = {"10.70": 700, "10.71": 701, "10.80": 800}[ip[:5]]
        rem.append(remote(vni, ip, draw(_VTEPS)))
    live = draw(st.sets(_VTEPS))
    vteps = {r.vni: {v for v in (r.vtep,) if v in live} for r in rem}
    pols = draw(st.lists(st.sampled_from([Policy(kind="isolate", a=700), Policy(kind="deny_both", a=700, b=701),
                                          Policy(kind="deny_all", a=800)]), unique=True))
    return desired(local=local, rem=rem, vteps=vteps, policies=pols)


@settings(max_examples=60, deadline=None)
@given(_states(), _states())
def test_from_any_routed_state_one_pass_reaches_the_fixed_point(a: HostDesired, b: HostDesired) -> None:
    k = RoutedSimKernel()
    k.converge(a)
    k.converge(b)
    assert k.converge(b) == []


def test_a_failed_route_of_a_local_endpoint_fails_that_endpoint_only() -> None:
    from meshd.reconcile import PassKind, PassReport
    from netops import NetopsError, OpFailure

    d = desired(local=[ep("c1", 700, "10.70.0.2"), ep("c2", 700, "10.70.0.3")])
    bad = Route(True, "10.70.0.2/32", d.local[0].host_if)
    report = PassReport.of(PassKind.FULL, d, (bad,), (OpFailure(bad, NetopsError("add route", "x", 22)),))
    assert set(report.endpoint_failures) == {("c1", 700)} and report.built == {("c2", 700)}

"""The pure planner: ordering, minimal changes, crash leftovers, and the fixed point.

``SimKernel`` interprets netops operations the way the kernel does (as far as
the planner can observe through a dump), so a property test can check that
applying a plan and planning again gives an empty plan, from any start.
"""

from __future__ import annotations

import dataclasses
import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import netops
from meshd.reconcile import HostDesired, LocalEndpoint, Network, Policy, RemoteEndpoint, _rules, plan, plan_additions
from netops import (
    AttachEndpoint,
    AttachLeg,
    AttachMacvlan,
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
    SetEndpointQos,
    SetMacvlanQos,
    SetTbf,
)


class SimKernel:
    """A model of one host's owned kernel objects, driven by netops operations."""

    def __init__(self) -> None:
        self.links: dict[str, Link] = {}
        self.fdb: set[tuple[str, str, str]] = set()
        self.neigh: dict[tuple[str, str], str] = {}
        self.tbf: dict[str, int] = {}
        self.routers: set[str] = set()
        self.nft: netops.NftTable | None = None
        self.nat: netops.NftTable | None = None
        self.next_index = 10
        #: flat endpoints: their records as netops reads them back (alias: the interface's, None if gone)
        self.macvlans: dict[str, netops.MacvlanRecord] = {}
        self.macvlan_parent: dict[str, str] = {}

    def actual(self) -> netops.Actual:
        return netops.Actual(dict(self.links), frozenset(self.fdb),
                             frozenset((d, ip, m) for (d, ip), m in self.neigh.items()), dict(self.tbf),
                             frozenset(self.routers), dict(self.macvlans))

    def _add(self, name: str, kind: str, master: str | None = None, **kw) -> None:
        self.next_index += 1
        m = self.links[master].index if master in self.links else 0
        self.links[name] = Link(index=self.next_index, name=name, kind=kind, master=m, mtu=kw.pop("mtu", 1450),
                                up=True, alias=kw.pop("alias", ""), mac="", **kw)

    def _delete(self, name: str) -> None:
        gone = self.links.pop(name, None)
        if gone is None:
            return
        self.fdb = {e for e in self.fdb if e[0] != name}
        self.neigh = {k: v for k, v in self.neigh.items() if k[0] != name}
        self.tbf.pop(name, None)
        for other in list(self.links.values()):  # ports of a deleted bridge are released
            if other.master == gone.index:
                self.links[other.name] = dataclasses.replace(other, master=0)
        for rec_name, parent in self.macvlan_parent.items():  # macvlans die with their lower device
            if parent == name and rec_name in self.macvlans:
                self.macvlans[rec_name] = dataclasses.replace(self.macvlans[rec_name], alias=None)

    def apply(self, ops) -> None:
        for op in ops:
            getattr(self, "do_" + type(op).__name__)(op)

    def do_EnsureBridge(self, op: EnsureBridge) -> None:
        if op.name not in self.links:
            self._add(op.name, "bridge", mtu=op.mtu)

    def do_EnsureVxlan(self, op: EnsureVxlan) -> None:
        if op.name not in self.links:
            self._add(op.name, "vxlan", op.bridge, mtu=op.mtu, alias=netops.VXLAN_READY, vni=op.vni,
                      vxlan_local=op.local_ip)

    def do_DeleteLink(self, op: DeleteLink) -> None:
        self._delete(op.name)

    def do_FdbEntry(self, op: FdbEntry) -> None:
        entry = (op.dev, op.mac, op.dst or "")
        if op.add and op.dev in self.links:
            self.fdb.add(entry)
        else:
            self.fdb.discard(entry)

    def do_NeighEntry(self, op: NeighEntry) -> None:
        if op.add and op.dev in self.links:
            self.neigh[(op.dev, op.ip)] = op.mac
        else:
            self.neigh.pop((op.dev, op.ip), None)

    def do_SetTbf(self, op: SetTbf) -> None:
        self.tbf[op.dev] = op.rate_kbit * 1000 // 8

    def do_ClearQdisc(self, op: ClearQdisc) -> None:
        self.tbf.pop(op.dev, None)

    def do_AttachEndpoint(self, op: AttachEndpoint) -> None:
        assert op.host_if not in self.links and op.bridge in self.links
        self._add(op.host_if, "veth", op.bridge, mtu=op.mtu, alias=op.stamp)

    def do_SetEndpointQos(self, op: SetEndpointQos) -> None:
        self.links[op.host_if] = dataclasses.replace(self.links[op.host_if], alias=op.stamp)

    def do_AttachMacvlan(self, op: AttachMacvlan) -> None:
        assert op.name not in self.macvlans and (op.parent == "eth0" or self.links[op.parent].kind == "vlan")
        self.macvlans[op.name] = netops.MacvlanRecord(op.name, op.netns, op.ifname, op.stamp, op.stamp)
        self.macvlan_parent[op.name] = op.parent

    def do_EnsureVlan(self, op: EnsureVlan) -> None:
        assert op.name not in self.links and op.parent == "eth0"
        self._add(op.name, "vlan", mtu=op.mtu, alias=op.stamp)

    def do_DetachMacvlan(self, op: DetachMacvlan) -> None:
        self.macvlans.pop(op.name, None)

    def do_SetMacvlanQos(self, op: SetMacvlanQos) -> None:
        self.macvlans[op.name] = dataclasses.replace(self.macvlans[op.name], stamp=op.stamp, alias=op.stamp)

    def do_EnsureRouter(self, op: EnsureRouter) -> None:
        self.routers.add(op.name)

    def do_DeleteRouter(self, op: DeleteRouter) -> None:
        self.routers.discard(op.name)
        for name in [n for n, link in self.links.items() if n.startswith(("mg-", "mu")) and op.name in link.alias]:
            self._delete(name)  # the leg's peer lived in the router: the pair dies with it

    def do_AttachLeg(self, op: AttachLeg) -> None:
        assert op.router in self.routers and netops.leg_name(op.vni) not in self.links
        self._add(netops.leg_name(op.vni), "veth", op.bridge, mtu=op.mtu, alias=op.stamp)

    def do_AttachUplink(self, op) -> None:
        assert op.router in self.routers and op.host_if not in self.links
        self._add(op.host_if, "veth", alias=op.stamp)

    def do_NftScript(self, op: NftScript) -> None:
        if "table ip meshd" in op.script:
            self.nat = None if op.script.startswith("delete") else netops.NftTable(_rules.NAT_TAG, {})
            return
        sets = dict(self.nft.sets) if self.nft else {n: frozenset() for n in _rules.SETS}
        for line in op.script.splitlines():
            if line.startswith(("add element", "delete element")):
                verb, _, _fam, _tab, name, rest = line.split(" ", 5)
                elems = {e.strip().replace('"', "") for e in rest.strip("{} \n").split(",")}
                sets[name] = sets[name] | elems if verb == "add" else sets[name] - elems
        if "delete table" in op.script:
            sets = {n: frozenset() for n in _rules.SETS}
            for line in op.script.splitlines():
                if line.startswith("add element"):
                    _v, _e, _f, _t, name, rest = line.split(" ", 5)
                    sets[name] = frozenset(e.strip().replace('"', "") for e in rest.strip("{} \n").split(","))
        self.nft = netops.NftTable(_rules.TAG, {k: frozenset(v) for k, v in sets.items()})

    def converge(self, d: HostDesired) -> list:
        ops = plan(d, self.actual(), self.nft, self.nat)
        self.apply(ops)
        return ops


RED = Network(vni=100, tenant="red", subnet="10.1.0.0/24", gateway="10.1.0.1", external=True)
BLUE = Network(vni=200, tenant="blue", subnet="10.1.0.0/24", gateway="10.1.0.1", egress_kbit=50_000)
L2 = Network(vni=300, tenant="red", subnet="10.3.0.0/24")
FLAT = Network(vni=400, tenant="red", subnet="10.4.0.0/24", gateway="10.4.0.1", mtu=1500, mode="flat", parent="eth0")


def ep(key: str, vni: int, ip: str, qos: netops.Qos | None = None) -> LocalEndpoint:
    return LocalEndpoint(key=key, vni=vni, netns=f"/proc/{abs(hash(key)) % 9999}/ns/net", ip=ip,
                         mac="02:00:00:00:00:" + ip.split(".")[-1].zfill(2)[-2:], qos=qos)


def host(**kw) -> HostDesired:
    base = dict(underlay_ip="192.0.2.11", underlay_dev="eth0", underlay_mtu=1500, networks=(RED, BLUE, L2, FLAT))
    return HostDesired(**(base | kw))


def kinds(ops) -> list[str]:
    return [type(o).__name__ for o in ops]


def test_from_scratch_the_plan_builds_in_dependency_order() -> None:
    d = host(local=(ep("r1", 100, "10.1.0.2"),), remote=(RemoteEndpoint(vni=100, ip="10.1.0.3", mac="02:aa:00:00:00:03",
                                                                     vtep="192.0.2.12"),),
             vteps={100: frozenset({"192.0.2.12"})})
    ops = plan(d, SimKernel().actual(), None)
    assert kinds(ops) == ["EnsureBridge", "EnsureVxlan", "EnsureRouter", "AttachLeg", "AttachUplink", "FdbEntry",
                          "FdbEntry", "FdbEntry", "NeighEntry", "AttachEndpoint", "NftScript", "NftScript"]
    attach = ops[9]
    assert (attach.mtu, attach.gateway, attach.prefixlen, attach.bridge) == (1450, "10.1.0.1", 24, "mb-100")
    assert {(o.mac, o.dst) for o in ops if isinstance(o, FdbEntry)} == {
        ("00:00:00:00:00:00", "192.0.2.12"), ("02:aa:00:00:00:03", "192.0.2.12"), ("02:aa:00:00:00:03", None)}


def test_second_pass_is_empty_and_a_qos_change_is_one_op() -> None:
    k = SimKernel()
    d = host(local=(ep("r1", 100, "10.1.0.2"), ep("b1", 200, "10.1.0.2")))
    assert k.converge(d)
    assert k.converge(d) == []
    d2 = host(local=(ep("r1", 100, "10.1.0.2", qos=netops.Qos(1000)), ep("b1", 200, "10.1.0.2")))
    assert kinds(k.converge(d2)) == ["SetEndpointQos"]
    assert k.tbf == {"mx-200": 50_000 * 125}  # tenant egress on blue's tunnel


def test_a_changed_address_rebuilds_only_that_endpoint() -> None:
    k = SimKernel()
    k.converge(host(local=(ep("r1", 100, "10.1.0.2"), ep("r2", 100, "10.1.0.4"))))
    ops = k.converge(host(local=(ep("r1", 100, "10.1.0.2"), ep("r2", 100, "10.1.0.5"))))
    assert kinds(ops) == ["DeleteLink", "AttachEndpoint"] and ops[1].address == "10.1.0.5"


def test_crash_leftovers_are_removed_or_finished() -> None:
    k = SimKernel()
    d = host(local=(ep("r1", 100, "10.1.0.2"),))
    k.converge(d)
    e = d.local[0]
    k.links[e.host_if] = dataclasses.replace(k.links[e.host_if], alias="meshd:building")
    k.links["mx-100"] = dataclasses.replace(k.links["mx-100"], alias="")  # vxlan never got its port flags
    k.links["mv0123456789ab"] = dataclasses.replace(k.links[e.host_if], name="mv0123456789ab", index=99)
    ops = k.converge(d)
    assert DeleteLink("mv0123456789ab") in ops and DeleteLink(e.host_if) in ops and DeleteLink("mx-100") in ops
    assert k.converge(d) == []


def test_a_dead_vtep_loses_exactly_its_entries() -> None:
    remotes = (RemoteEndpoint(vni=100, ip="10.1.0.3", mac="02:aa:00:00:00:03", vtep="192.0.2.12"),
               RemoteEndpoint(vni=100, ip="10.1.0.4", mac="02:aa:00:00:00:04", vtep="192.0.2.13"))
    k = SimKernel()
    both = host(local=(ep("r1", 100, "10.1.0.2"),), remote=remotes,
                vteps={100: frozenset({"192.0.2.12", "192.0.2.13"})})
    k.converge(both)
    ops = k.converge(dataclasses.replace(both, vteps={100: frozenset({"192.0.2.12"})}))
    assert sorted(kinds(ops)) == ["FdbEntry"] * 3 + ["NeighEntry"]
    assert all(not o.add for o in ops)
    assert {(o.mac, getattr(o, "dst", None)) for o in ops if isinstance(o, FdbEntry)} == {
        ("00:00:00:00:00:00", "192.0.2.13"), ("02:aa:00:00:00:04", "192.0.2.13"), ("02:aa:00:00:00:04", None)}


def test_policies_become_set_elements_and_an_endpoint_is_a_set_update() -> None:
    k = SimKernel()
    d = host(local=(ep("r1", 100, "10.1.0.2"),), policies=(Policy(kind="isolate", a=100),))
    k.converge(d)
    assert k.nft.sets["icc_off"] == {f"{d.local[0].host_if} . 10.1.0.2"}
    d2 = dataclasses.replace(d, local=d.local + (ep("r2", 100, "10.1.0.9"),))
    ops = k.converge(d2)
    [nft] = [o for o in ops if isinstance(o, NftScript)]
    assert nft.script.startswith("add element bridge meshd icc_off") and "delete table" not in nft.script


def test_deny_policies_key_the_router_leg_of_the_destination() -> None:
    other = Network(vni=101, tenant="red", subnet="10.9.0.0/24", gateway="10.9.0.1")
    d = host(networks=(RED, other), local=(ep("r1", 100, "10.1.0.2"),),
             policies=(Policy(kind="deny", a=100, b=101), Policy(kind="deny_all", a=100)))
    sets = _rules.desired_sets(d)
    assert sets["deny_to"] == {"mg-101 . 10.1.0.0/24"}
    assert sets["deny_all"] == {d.local[0].host_if}
    both = dataclasses.replace(d, policies=(Policy(kind="deny_both", a=100, b=101),))
    assert _rules.desired_sets(both)["deny_to"] == {"mg-101 . 10.1.0.0/24", "mg-100 . 10.9.0.0/24"}


def test_descriptions_validate_in_plain_words() -> None:
    with pytest.raises(ValueError, match="outside its subnet"):
        Network(vni=1, tenant="t", subnet="10.0.0.0/24", gateway="10.0.1.1")
    with pytest.raises(ValueError, match="out of range"):
        Network(vni=1 << 24, tenant="t", subnet="10.0.0.0/24")
    with pytest.raises(ValueError, match="needs second network"):
        Policy(kind="deny", a=1)


_eps = st.lists(st.tuples(st.sampled_from([100, 200, 300, 400]), st.integers(2, 9), st.booleans()), max_size=6,
                unique_by=lambda t: (t[0], t[1]))
_vteps = st.sets(st.sampled_from(["192.0.2.12", "192.0.2.13"]))
_pol = st.lists(st.sampled_from([Policy(kind="isolate", a=100), Policy(kind="deny", a=100, b=200),
                                 Policy(kind="deny_all", a=300)]), max_size=2, unique=True)


def _desired(eps, vteps, pols) -> HostDesired:
    local = tuple(ep(f"k{v}-{i}", v, f"10.{v // 100}.0.{i}", netops.Qos(1000 * i) if q else None)
                  for v, i, q in eps)
    remote = tuple(RemoteEndpoint(vni=v, ip=f"10.{v // 100}.0.{20 + n}", mac=f"02:bb:00:00:00:{n:02x}", vtep=vt)
                   for n, vt in enumerate(sorted(vteps)) for v in (100, 200, 300))
    return host(local=local, remote=remote, vteps={v: frozenset(vteps) for v in (100, 200, 300)},
                policies=tuple(pols))


@settings(max_examples=60, deadline=None)
@given(_eps, _vteps, _pol, _eps, _vteps, _pol)
def test_from_any_state_one_pass_reaches_the_fixed_point(e1, v1, p1, e2, v2, p2) -> None:
    k = SimKernel()
    k.converge(_desired(e1, v1, p1))
    k.converge(_desired(e2, v2, p2))
    assert plan(_desired(e2, v2, p2), k.actual(), k.nft, k.nat) == []


@settings(max_examples=80, deadline=None)
@given(_eps, _vteps, _pol, _eps)
def test_plan_additions_reaches_what_a_full_pass_would(e1, v1, p1, more) -> None:
    """From a clean pass, the no-dump plan for added endpoints leaves nothing for a full pass to do."""
    k = SimKernel()
    before = _desired(e1, v1, p1)
    k.converge(before)
    after = _desired(e1 + [e for e in more if (e[0], e[1]) not in {(v, i) for v, i, _ in e1}], v1, p1)
    ops = plan_additions(before, after)
    added = {e.host_if for e in after.local} - {e.host_if for e in before.local}
    built = {v for v, _, _ in e1}
    if ops is None:  # only when a new endpoint's network is not built yet (or nothing was added)
        assert not added or any(e.vni not in built and e.host_if in added for e in after.local)
        return
    assert {o.host_if for o in ops if isinstance(o, AttachEndpoint)} | {
        o.name for o in ops if isinstance(o, AttachMacvlan)} == added
    k.apply(ops)
    assert plan(after, k.actual(), k.nft, k.nat) == []


def test_plan_additions_refuses_anything_but_additions() -> None:
    base = host(local=(ep("r1", 100, "10.1.0.2"), ep("r2", 100, "10.1.0.4")), vteps={100: frozenset({"192.0.2.12"})})
    assert plan_additions(base, base) is None  # nothing new
    assert plan_additions(base, dataclasses.replace(base, local=base.local[:1])) is None  # a removal
    moved = dataclasses.replace(base, local=(base.local[0], ep("r2", 100, "10.1.0.9")))
    assert plan_additions(base, moved) is None  # a changed endpoint
    plus = base.local + (ep("r3", 100, "10.1.0.5"),)
    assert plan_additions(base, dataclasses.replace(base, local=plus, vteps={})) is None  # and a member change
    assert plan_additions(base, dataclasses.replace(base, local=base.local + (ep("b1", 200, "10.1.0.2"),))) is None
    [attach] = plan_additions(base, dataclasses.replace(base, local=plus))
    assert (attach.host_if, attach.bridge, attach.mtu) == (plus[2].host_if, "mb-100", 1450)


def test_external_access_adds_one_uplink_per_tenant_and_the_nat_table() -> None:
    k = SimKernel()
    d = host(local=(ep("r1", 100, "10.1.0.2"), ep("b1", 200, "10.1.0.2")))
    ops = k.converge(d)
    [up] = [o for o in ops if isinstance(o, netops.AttachUplink)]
    assert up.router == d.router_name("red") and up.host_if.startswith("mu")
    assert ipaddress.ip_address(up.router_ip) in ipaddress.ip_network("100.64.0.0/10")
    assert int(ipaddress.ip_address(up.router_ip)) == int(ipaddress.ip_address(up.host_ip)) + 1
    assert k.nat is not None and k.converge(d) == []
    no_ext = dataclasses.replace(d, networks=(dataclasses.replace(RED, external=False), BLUE, L2))
    ops = k.converge(no_ext)
    assert DeleteLink(up.host_if) in ops and k.nat is None


def test_uplink_slots_are_distinct_and_stable() -> None:
    from meshd.reconcile._plan import uplink_slots

    tenants = [f"t{i}" for i in range(500)]
    slots = uplink_slots(tenants)
    assert len(set(slots.values())) == 500 and uplink_slots(list(reversed(tenants))) == slots
    with pytest.raises(ValueError, match="no gateway"):
        Network(vni=5, tenant="t", subnet="10.0.0.0/24", external=True)


def test_the_pass_making_the_first_bridge_replaces_the_rules_table() -> None:
    """A bridge-family chain made before any bridge existed sees no frames (Linux 6.18):
    the first bridge's pass rewrites the table after the bridge, later passes do not."""
    k = SimKernel()
    k.converge(host())  # no endpoint: no bridge, but the rules table exists
    assert k.nft is not None and not any(n.startswith("mb-") for n in k.links)
    ops = k.converge(host(local=(ep("r1", 100, "10.1.0.2"),)))
    names = kinds(ops)
    assert names.index("EnsureBridge") < names.index("NftScript")
    assert any(isinstance(o, NftScript) and o.script.startswith("table bridge meshd {}\ndelete table") for o in ops)
    second = k.converge(host(local=(ep("r1", 100, "10.1.0.2"), ep("b1", 200, "10.1.0.2"))))
    assert "EnsureBridge" in kinds(second)  # blue's bridge: not the first one any more
    assert not any(isinstance(o, NftScript) and "delete table" in o.script for o in second)


# --- flat (macvlan) endpoints ------------------------------------------------------------


def test_a_flat_endpoint_is_one_macvlan_on_the_parent_and_nothing_else() -> None:
    k = SimKernel()
    d = host(local=(ep("f1", 400, "10.4.0.2"),), remote=(
        RemoteEndpoint(vni=400, ip="10.4.0.3", mac="02:aa:00:00:00:03", vtep="192.0.2.12"),),
        vteps={400: frozenset({"192.0.2.12"})})
    ops = k.converge(d)
    assert kinds(ops) == ["AttachMacvlan", "NftScript"]  # the table every host has; no bridge, tunnel or router
    [attach] = ops[:1]
    assert (attach.parent, attach.macvlan_mode, attach.mtu, attach.gateway, attach.prefixlen, attach.ifname) == (
        "eth0", "bridge", 1500, "10.4.0.1", 24, "eth0")
    assert attach.name == d.local[0].host_if and attach.records_dir == netops.RECORDS_DIR
    assert k.converge(d) == []
    assert not any(name.startswith(("mb-", "mx-", "mg-")) for name in k.links)


def test_flat_endpoint_changes_qos_in_place_and_rebuilds_on_a_new_address_or_parent() -> None:
    k = SimKernel()
    k.converge(host(local=(ep("f1", 400, "10.4.0.2"),)))
    assert kinds(k.converge(host(local=(ep("f1", 400, "10.4.0.2", qos=netops.Qos(2000)),)))) == ["SetMacvlanQos"]
    ops = k.converge(host(local=(ep("f1", 400, "10.4.0.7"),)))
    assert kinds(ops) == ["DetachMacvlan", "AttachMacvlan"] and ops[1].address == "10.4.0.7"
    private = dataclasses.replace(FLAT, macvlan_mode="private")
    ops = k.converge(host(networks=(RED, private), local=(ep("f1", 400, "10.4.0.7"),)))
    assert kinds(ops) == ["DetachMacvlan", "AttachMacvlan"] and ops[1].macvlan_mode == "private"


def test_a_released_flat_endpoint_and_a_gone_or_half_built_one_are_detached() -> None:
    k = SimKernel()
    d = host(local=(ep("f1", 400, "10.4.0.2"), ep("f2", 400, "10.4.0.3")))
    k.converge(d)
    f1, f2 = (e.host_if for e in d.local)
    # f1's container netns vanished under a PID that is still listed; f2's attach was interrupted
    k.macvlans[f1] = dataclasses.replace(k.macvlans[f1], alias=None)
    k.macvlans[f2] = dataclasses.replace(k.macvlans[f2], stamp="meshd:building", alias="meshd:building")
    ops = k.converge(d)
    assert kinds(ops) == ["DetachMacvlan", "DetachMacvlan", "AttachMacvlan", "AttachMacvlan"]
    assert ops[1].stamp == "meshd:building"  # detached by the stamp it has, so netops deletes the leftover
    assert k.converge(d) == []
    ops = k.converge(host(local=(ep("f2", 400, "10.4.0.3"),)))  # f1 disconnected
    assert kinds(ops) == ["DetachMacvlan"] and (ops[0].name, ops[0].netns, ops[0].ifname) == (
        f1, d.local[0].netns, "eth0")
    assert set(k.macvlans) == {f2}


def test_flat_networks_get_no_router_leg_even_beside_a_routed_vxlan_network_of_their_tenant() -> None:
    d = host(local=(ep("r1", 100, "10.1.0.2"), ep("f1", 400, "10.4.0.2")))
    ops = plan(d, SimKernel().actual(), None)
    assert [o.vni for o in ops if isinstance(o, AttachLeg)] == [100]
    assert not any(isinstance(o, (EnsureBridge, EnsureVxlan)) and "400" in o.name for o in ops)


def test_descriptions_refuse_a_flat_network_without_a_parent() -> None:
    with pytest.raises(ValueError, match="needs a parent"):
        Network(vni=1, tenant="t", subnet="10.0.0.0/24", mode="flat")


VLAN7 = Network(vni=500, tenant="red", subnet="10.5.0.0/24", gateway="10.5.0.1", mtu=1500, mode="flat",
                parent="eth0", vlan=7)


def test_a_vlan_network_hangs_its_macvlans_off_one_8021q_sub_interface_made_first() -> None:
    k = SimKernel()
    nets = (RED, FLAT, VLAN7)
    d = host(networks=nets, local=(ep("v1", 500, "10.5.0.2"), ep("v2", 500, "10.5.0.3"), ep("f1", 400, "10.4.0.2")))
    ops = k.converge(d)
    sub = netops.vlan_name("eth0", 7)
    assert kinds(ops) == ["EnsureVlan", "AttachMacvlan", "AttachMacvlan", "AttachMacvlan", "NftScript"]
    assert (ops[0].name, ops[0].parent, ops[0].vid, ops[0].mtu) == (sub, "eth0", 7, 1500)
    assert [o.parent for o in ops if isinstance(o, AttachMacvlan)] == [sub, sub, "eth0"]
    assert k.converge(d) == []
    # a sub-interface of another configuration (here: changed by hand) is made again, and the
    # macvlans that hung off it (gone with it) are attached again
    k.links[sub] = dataclasses.replace(k.links[sub], alias="")
    ops = k.converge(d)
    assert kinds(ops) == ["DeleteLink", "DetachMacvlan", "DetachMacvlan", "EnsureVlan", "AttachMacvlan",
                          "AttachMacvlan"]
    # the last endpoint of the VLAN gone: its sub-interface goes too
    ops = k.converge(host(networks=nets, local=(ep("f1", 400, "10.4.0.2"),)))
    assert sorted(kinds(ops)) == ["DeleteLink", "DetachMacvlan", "DetachMacvlan"] and sub not in k.links


def test_a_new_endpoint_of_a_vlan_not_built_here_yet_needs_a_full_pass() -> None:
    before = host(networks=(RED, VLAN7), local=(ep("r1", 100, "10.1.0.2"),))
    after = dataclasses.replace(before, local=before.local + (ep("v1", 500, "10.5.0.2"),))
    assert plan_additions(before, after) is None
    more = dataclasses.replace(after, local=after.local + (ep("v2", 500, "10.5.0.3"),))
    assert kinds(plan_additions(after, more)) == ["AttachMacvlan"]

"""Routed networks on the real kernel, bare namespaces as containers (issue 15 item 4).

Two lab hosts on one underlay segment: containers are routed directly (the
route is ``via`` the peer's underlay address and the VXLAN device carries
nothing); with a host's segment narrowed to itself, the same traffic takes
the network's VXLAN device. Tenants stay apart, the seed-000 policies hold,
a second pass is empty, a failed host's routes go, and a removed endpoint
leaves nothing.
"""

from __future__ import annotations

import dataclasses
import subprocess

import pytest

import netops
from meshd.reconcile import HostDesired, Network, Policy, host_if_name
from tests.integration.netops.cluster import Cluster, Placement, can_ping, in_ns

pytestmark = pytest.mark.root


@dataclasses.dataclass
class RoutedCluster(Cluster):
    segments: dict[str, str] = dataclasses.field(default_factory=dict)  # host name -> underlay subnet

    def desired(self, host) -> HostDesired:
        return dataclasses.replace(super().desired(host), underlay_subnet=self.segments.get(host.name, "192.0.2.0/24"))


@pytest.fixture
def two_hosts(make_lab):
    return make_lab(2).hosts()


RED = Network(vni=70, tenant="red", subnet="10.70.0.0/24", gateway="10.70.0.1", mode="routed")
RED2 = Network(vni=71, tenant="red", subnet="10.71.0.0/24", gateway="10.71.0.1", mode="routed")
BLUE = Network(vni=80, tenant="blue", subnet="10.80.0.0/24", gateway="10.80.0.1", mode="routed")


def cluster(hosts, make_ns) -> RoutedCluster:
    h1, h2 = hosts
    eps = [Placement("r1", h1, 70, "10.70.0.2", make_ns()), Placement("r2", h2, 70, "10.70.0.3", make_ns()),
           Placement("r3", h1, 70, "10.70.0.4", make_ns()), Placement("s2", h2, 71, "10.71.0.2", make_ns()),
           Placement("b1", h1, 80, "10.80.0.2", make_ns()), Placement("b2", h2, 80, "10.80.0.3", make_ns())]
    return RoutedCluster(list(hosts), [RED, RED2, BLUE], eps)


def ns_of(c: Cluster, key: str) -> str:
    return next(e.netns for e in c.endpoints if e.key == key)


def ip_cmd(host, *argv: str) -> str:
    return subprocess.run(["ip", "-n", host.netns, *argv], capture_output=True, text=True, check=True).stdout


def vxlan_tx(host, dev: str) -> int:
    with netops.in_netns(f"/run/netns/{host.netns}"):
        return netops.counters([dev])[dev].tx_packets


def burst(netns: str, ip: str) -> str:
    return in_ns(netns, "ping", "-n", "-q", "-c", "30", "-i", "0.01", "-W1", ip).stdout


def test_same_segment_is_routed_without_encapsulation_and_tenants_stay_apart(two_hosts, make_ns) -> None:
    h1, h2 = two_hosts
    c = cluster(two_hosts, make_ns)
    assert c.reconcile_all() > 0
    assert c.reconcile_all() == 0  # idempotent
    routes = ip_cmd(h1, "-4", "route", "show", "proto", str(netops.RTPROT_MESHD))
    assert f"10.70.0.3 via {h2.underlay_ip} dev " in routes and "mr-70" not in routes, routes
    assert f"10.70.0.2 dev {host_if_name('r1', 70)} scope link" in routes, routes
    before = vxlan_tx(h1, "mr-70")
    out = burst(ns_of(c, "r1"), "10.70.0.3")
    assert " 0% packet loss" in out, out
    assert vxlan_tx(h1, "mr-70") == before  # not one packet went into the tunnel
    assert can_ping(ns_of(c, "r1"), "10.70.0.4")  # same host, through the host's routes
    assert can_ping(ns_of(c, "r1"), "10.71.0.2")  # the tenant's other routed network
    assert can_ping(ns_of(c, "r1"), "10.70.0.1")  # its gateway answers
    assert can_ping(ns_of(c, "b1"), "10.80.0.3")
    # tenants never reach each other, nor the host behind the gateway
    assert not can_ping(ns_of(c, "b1"), "10.70.0.3", "-W0.5")
    assert not can_ping(ns_of(c, "r2"), "10.80.0.2", "-W0.5")
    assert not can_ping(ns_of(c, "r1"), h1.underlay_ip, "-W0.5")
    # a spoofed source is dropped at the host veth
    in_ns(ns_of(c, "b1"), "ip", "addr", "add", "10.70.0.9/32", "dev", "eth0")
    assert not can_ping(ns_of(c, "b1"), "10.70.0.3", "-W0.5", "-I", "10.70.0.9")
    # the container sees a /32 and an on-link default route via the gateway
    inside = in_ns(ns_of(c, "r1"), "ip", "-4", "route").stdout
    assert "default via 10.70.0.1 dev eth0 proto static onlink" in inside, inside


def test_another_segment_goes_through_the_networks_vxlan_device(two_hosts, make_ns) -> None:
    h1, h2 = two_hosts
    c = cluster(two_hosts, make_ns)
    c.segments = {h1.name: f"{h1.underlay_ip}/32"}  # h1 counts h2 as another segment; h2 still routes directly
    c.reconcile_all()
    routes = ip_cmd(h1, "-4", "route", "show", "proto", str(netops.RTPROT_MESHD))
    assert f"10.70.0.3 via {h2.underlay_ip} dev mr-70 onlink" in routes, routes
    before = vxlan_tx(h1, "mr-70")
    out = burst(ns_of(c, "r1"), "10.70.0.3")
    assert " 0% packet loss" in out, out
    assert vxlan_tx(h1, "mr-70") - before >= 30
    assert not can_ping(ns_of(c, "b1"), "10.70.0.3", "-W0.5")
    # back on one segment: the routes move, nothing else
    c.segments = {}
    assert c.reconcile_all() > 0 and c.reconcile_all() == 0
    assert "mr-70" not in ip_cmd(h1, "-4", "route", "show", "10.70.0.3")


@pytest.mark.parametrize("policy, blocked", [
    (Policy(kind="isolate", a=70), {"r1>r2", "r1>r3"}),
    (Policy(kind="deny", a=70, b=71), {"r1>s2"}),
    (Policy(kind="deny_both", a=70, b=71), {"r1>s2", "s2>r1"}),
    (Policy(kind="deny_all", a=70), {"r1>r2", "r1>r3", "r1>s2", "s2>r1"}),
])
def test_each_policy_blocks_exactly_what_it_says(two_hosts, make_ns, policy, blocked) -> None:
    c = cluster(two_hosts, make_ns)
    c.policies = [policy]
    c.reconcile_all()
    assert c.reconcile_all() == 0
    ip = {e.key: e.ip for e in c.endpoints}
    pairs = ["r1>r2", "r1>r3", "r1>s2", "s2>r1"]
    got = {p: can_ping(ns_of(c, p.split(">")[0]), ip[p.split(">")[1]], "-W0.5") for p in pairs}
    assert got == {p: p not in blocked for p in pairs}
    if policy.kind == "deny":  # stateless like the bridge table: new flows only, B may still ping A
        assert can_ping(ns_of(c, "s2"), "10.70.0.2")


def test_a_failed_host_is_withdrawn_and_a_removed_endpoint_leaves_nothing(two_hosts, make_ns) -> None:
    h1, h2 = two_hosts
    c = cluster(two_hosts, make_ns)
    c.reconcile_all()
    c.dead = {h2.name}
    c.reconcile_all()
    routes = ip_cmd(h1, "-4", "route", "show", "proto", str(netops.RTPROT_MESHD))
    assert h2.underlay_ip not in routes and "10.70.0.4" in routes, routes  # r3 is on h1
    assert h2.underlay_ip not in ip_cmd(h1, "neigh", "show", "dev", "mr-70")
    c.dead = set()
    c.reconcile_all()
    assert "10.70.0.3" in ip_cmd(h1, "-4", "route", "show", "proto", str(netops.RTPROT_MESHD))
    # one of two endpoints of a network on h1 goes: the other keeps its gateway (same /32 on both veths)
    c.endpoints = [e for e in c.endpoints if e.key != "r3"]
    c.reconcile_all()
    assert "10.70.0.4" not in ip_cmd(h1, "-4", "route", "show", "proto", str(netops.RTPROT_MESHD))
    assert can_ping(ns_of(c, "r1"), "10.70.0.1") and can_ping(ns_of(c, "r1"), "10.70.0.3")
    # every endpoint of h1 disconnected: its veths, routes, VXLAN devices and table go
    c.endpoints = [e for e in c.endpoints if e.host is not h1]
    c.reconcile_all()
    assert ip_cmd(h1, "-4", "route", "show", "proto", str(netops.RTPROT_MESHD)).strip() == ""
    with netops.in_netns(f"/run/netns/{h1.netns}"):
        assert not netops.dump_owned(f"{h1.netns}-r-").links
    assert netops.list_table("ip", "meshd_routed", f"/run/netns/{h1.netns}") is None

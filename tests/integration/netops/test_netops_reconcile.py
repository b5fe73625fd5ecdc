"""The reconciler on the real kernel with bare namespaces as containers (fast tier).

Two tenants with overlapping subnets and gateways, idempotence, membership
changes, crash-safety, and the seed-000 policies across two lab hosts.
"""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
import time

import pytest

import netops
from meshd.reconcile import Network, Policy
from tests.integration.netops.cluster import ALL, Cluster, Placement, can_ping, drop_counts, in_ns, reach

pytestmark = pytest.mark.root


@pytest.fixture
def two_hosts(make_lab):
    lab = make_lab(2)
    hosts = lab.hosts()
    yield hosts
    for h in hosts:  # router namespaces share /run/netns with the lab: remove this host's
        netops.remove_routers(f"{h.netns}-r-")


def owned(host) -> netops.Actual:
    with netops.in_netns(f"/run/netns/{host.netns}"):
        return netops.dump_owned(f"{host.netns}-r-")


def overlapping_tenants(hosts, make_ns) -> Cluster:
    h1, h2 = hosts
    nets = [Network(vni=100, tenant="red", subnet="10.1.0.0/24", gateway="10.1.0.1"),
            Network(vni=200, tenant="blue", subnet="10.1.0.0/24", gateway="10.1.0.1")]
    eps = [Placement("red1", h1, 100, "10.1.0.2", make_ns()), Placement("red2", h2, 100, "10.1.0.3", make_ns()),
           Placement("blue1", h1, 200, "10.1.0.2", make_ns()), Placement("blue2", h2, 200, "10.1.0.3", make_ns())]
    return Cluster(list(hosts), nets, eps)


def rx_packets(host, host_if: str) -> int:
    with netops.in_netns(f"/run/netns/{host.netns}"):
        return netops.counters([host_if])[host_if].tx_packets  # host side tx = delivered to the container


def test_overlapping_tenants_reach_only_their_own_and_second_pass_is_empty(two_hosts, make_ns) -> None:
    c = overlapping_tenants(two_hosts, make_ns)
    assert c.reconcile_all() > 0
    assert c.reconcile_all() == 0  # idempotent: nothing left to do
    red1, red2, blue1, blue2 = c.endpoints
    from meshd.reconcile import host_if_name
    blue2_if = host_if_name("blue2", 200)
    assert can_ping(blue1.netns, "10.1.0.3") and can_ping(blue2.netns, "10.1.0.1")
    before = rx_packets(two_hosts[1], blue2_if)
    burst = in_ns(red1.netns, "ping", "-n", "-q", "-c", "50", "-i", "0.01", "-W1", "10.1.0.3")
    assert " 0% packet loss" in burst.stdout, burst.stdout
    # red's 50 pings to 10.1.0.3 went to red2 only: blue2, same address, saw none of them
    # (at most blue's own neighbour probes, a packet or two)
    assert rx_packets(two_hosts[1], blue2_if) - before <= 2
    # the host itself has no route into any tenant, and its bridges no address
    for h in two_hosts:
        routes = subprocess.run(["ip", "-n", h.netns, "-4", "route"], capture_output=True, text=True).stdout
        assert "10.1.0." not in routes
    a = owned(two_hosts[0])
    assert {"mb-100", "mx-100", "mb-200", "mx-200", "mg-100", "mg-200"} <= set(a.links)
    assert len(a.routers) == 2  # one router namespace per tenant


def test_a_remote_host_leaving_withdraws_its_entries_and_returning_restores_them(two_hosts, make_ns) -> None:
    c = overlapping_tenants(two_hosts, make_ns)
    c.reconcile_all()
    h1, h2 = two_hosts
    full = owned(h1)
    assert {e for e in full.fdb if e[2] == h2.underlay_ip}
    c.dead = {"h2"}
    assert c.reconcile_all() > 0
    gone = owned(h1)
    assert not {e for e in gone.fdb if e[2] == h2.underlay_ip} and gone.neigh == frozenset()
    assert not can_ping(c.endpoints[0].netns, "10.1.0.3", "-W0.5")
    c.dead = set()
    c.reconcile_all()
    back = owned(h1)
    assert (back.fdb, back.neigh) == (full.fdb, full.neigh)
    assert can_ping(c.endpoints[0].netns, "10.1.0.3")


def test_removed_endpoint_and_emptied_network_leave_nothing_behind(two_hosts, make_ns) -> None:
    c = overlapping_tenants(two_hosts, make_ns)
    c.reconcile_all()
    blue1_ns = c.endpoints[2].netns
    c.endpoints = [e for e in c.endpoints if e.key != "blue1"]
    c.reconcile_all()
    a = owned(two_hosts[0])
    assert not {n for n in a.links if n.endswith("-200")}  # blue's bridge, tunnel and leg are gone on h1
    assert len(a.routers) == 1  # and so is blue's router namespace
    assert "eth0" not in in_ns(blue1_ns, "ip", "link").stdout
    assert can_ping(c.endpoints[0].netns, "10.1.0.3")  # red untouched
    assert c.reconcile_all() == 0


_CRASHER = """
import sys, netops
from meshd.reconcile import reconcile_once
import pickle
desired = pickle.loads(sys.stdin.buffer.read())
with netops.in_netns(sys.argv[1]):
    reconcile_once(desired, check_mtu=False)
"""


def test_a_pass_killed_midway_is_finished_by_the_next_one(two_hosts, make_ns) -> None:
    import pickle

    h1 = two_hosts[0]
    net = Network(vni=300, tenant="t", subnet="10.3.0.0/24", gateway="10.3.0.1")
    eps = [Placement(f"c{i}", h1, 300, f"10.3.0.{i + 10}", make_ns()) for i in range(24)]
    c = Cluster([h1], [net], eps)
    desired = pickle.dumps(c.desired(h1))
    proc = subprocess.Popen([sys.executable, "-c", _CRASHER, f"/run/netns/{h1.netns}"], stdin=subprocess.PIPE)
    proc.stdin.write(desired)
    proc.stdin.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len([n for n in owned(h1).links if n.startswith("mv")]) < 6:
        time.sleep(0.001)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    half = owned(h1)
    assert 0 < len([n for n in half.links if n.startswith("mv")]) < 24  # really interrupted
    assert c.reconcile_all() > 0
    done = owned(h1)
    stamps = {e.key: e for e in c.desired(h1).local}
    assert sorted(n for n in done.links if n.startswith("mv")) == sorted(ep.host_if for ep in stamps.values())
    assert all(done.links[ep.host_if].alias.startswith("meshd ep ") for ep in stamps.values())
    assert c.reconcile_all() == 0
    assert can_ping(eps[0].netns, "10.3.0.33") and can_ping(eps[23].netns, "10.3.0.1")


def test_a_half_built_endpoint_is_rebuilt(two_hosts, make_ns) -> None:
    from netops import _links, _nl

    h1 = two_hosts[0]
    c = Cluster([h1], [Network(vni=301, tenant="t", subnet="10.4.0.0/24", gateway="10.4.0.1")],
                [Placement("solo", h1, 301, "10.4.0.2", make_ns())])
    c.reconcile_all()
    ep = c.desired(h1).local[0]
    with netops.in_netns(f"/run/netns/{h1.netns}"):  # what a crash after batch 1 leaves: alias "building"
        with _nl.NlSocket() as nl:
            assert nl.batch([_links.set_link(0, ep.host_if, alias="meshd:building")]) == []
    assert c.reconcile_all() == 2  # delete + attach
    assert owned(h1).links[ep.host_if].alias.startswith("meshd ep ")
    assert can_ping(ep.netns, "10.4.0.1")


def policy_cluster(hosts, make_ns) -> Cluster:
    h1, h2 = hosts
    nets = [Network(vni=10, tenant="acme", subnet="10.10.0.0/24", gateway="10.10.0.1"),
            Network(vni=11, tenant="acme", subnet="10.11.0.0/24", gateway="10.11.0.1")]
    eps = [Placement("a1", h1, 10, "10.10.0.2", make_ns()), Placement("a2", h2, 10, "10.10.0.3", make_ns()),
           Placement("b1", h1, 11, "10.11.0.2", make_ns()), Placement("b2", h2, 11, "10.11.0.3", make_ns())]
    return Cluster(list(hosts), nets, eps)


@pytest.mark.parametrize("policy, blocked", [
    (None, set()),
    (Policy(kind="isolate", a=10), {"a1>a2"}),
    (Policy(kind="deny", a=10, b=11), {"a1>b2", "a1>b1"}),
    (Policy(kind="deny_both", a=10, b=11), {"a1>b2", "a1>b1", "b2>a1"}),
    (Policy(kind="deny_all", a=10), {"a1>a2", "a1>b2", "a1>b1", "b2>a1", "a1>gw"}),
])
def test_each_policy_blocks_exactly_what_it_says(two_hosts, make_ns, policy, blocked) -> None:
    c = policy_cluster(two_hosts, make_ns)
    c.policies = [policy] if policy else []
    c.reconcile_all()
    assert c.reconcile_all() == 0
    assert reach(c) == {k: k not in blocked for k in ALL}
    counted = drop_counts(two_hosts[0])
    if policy is None:
        assert sum(v for k, v in counted.items() if k != "to-host") == 0
    else:  # the policy's own rules counted the blocked packets
        name = {"isolate": "isolate", "deny": "deny", "deny_both": "deny", "deny_all": "deny_all"}[policy.kind]
        assert counted.get(name, 0) + (counted.get("tag", 0) if name == "deny_all" else 0) > 0, counted


def test_a_new_tunnel_runs_the_mtu_self_check(two_hosts, make_ns) -> None:
    from meshd.reconcile import reconcile_once

    h1, h2 = two_hosts
    c = Cluster([h1, h2], [Network(vni=60, tenant="t", subnet="10.60.0.0/24")],
                [Placement("x", h1, 60, "10.60.0.2", make_ns()), Placement("y", h2, 60, "10.60.0.3", make_ns())])
    with netops.in_netns(f"/run/netns/{h1.netns}"):
        report = reconcile_once(c.desired(h1))
    [check] = report.mtu_checks
    assert check.ok and check.remote_ip == h2.underlay_ip and check.mtu == 1500


def test_external_access_is_masqueraded_per_tenant_and_only_where_asked(two_hosts, make_ns) -> None:
    h1, h2 = two_hosts
    nets = [Network(vni=50, tenant="red", subnet="10.5.0.0/24", gateway="10.5.0.1", external=True),
            Network(vni=51, tenant="blue", subnet="10.5.0.0/24", gateway="10.5.0.1", external=True),
            Network(vni=52, tenant="green", subnet="10.5.0.0/24", gateway="10.5.0.1")]
    eps = [Placement("r", h1, 50, "10.5.0.2", make_ns()), Placement("b", h1, 51, "10.5.0.2", make_ns()),
           Placement("g", h1, 52, "10.5.0.2", make_ns())]
    c = Cluster([h1], nets, eps)
    c.reconcile_all()
    assert c.reconcile_all() == 0
    outside = h2.underlay_ip  # a machine outside every tenant
    assert can_ping(eps[0].netns, outside) and can_ping(eps[1].netns, outside)  # same address, both tenants
    assert not can_ping(eps[2].netns, outside, "-W0.5")
    a = owned(h1)
    uplinks = [link for n, link in a.links.items() if n.startswith(netops.UPLINK_PREFIX)]
    assert len(uplinks) == 2
    # tenants never meet on the host: red cannot reach blue's router through the uplinks
    blue_router_ip = next(link.alias.split()[-1] for link in uplinks if "blue" in link.alias)
    assert not can_ping(eps[0].netns, blue_router_ip, "-W0.5")
    nets = [dataclasses.replace(n, external=False) for n in nets]
    c.networks = nets
    c.reconcile_all()
    assert not [n for n in owned(h1).links if n.startswith(netops.UPLINK_PREFIX)]
    with netops.in_netns(f"/run/netns/{h1.netns}"):
        assert netops.dump_table("ip", "meshd") is None
    assert not can_ping(eps[0].netns, outside, "-W0.5")


def test_tenant_egress_rate_shapes_the_tunnel_and_follows_changes(two_hosts, make_ns) -> None:
    h1, h2 = two_hosts
    net = Network(vni=70, tenant="t", subnet="10.70.0.0/24", egress_kbit=80_000)
    c = Cluster([h1, h2], [net], [Placement("x", h1, 70, "10.70.0.2", make_ns()),
                                  Placement("y", h2, 70, "10.70.0.3", make_ns())])
    c.reconcile_all()
    assert c.reconcile_all() == 0
    assert owned(h1).tbf_bps["mx-70"] == 80_000 * 125
    qd = subprocess.run(["tc", "-n", h1.netns, "qdisc", "show", "dev", "mx-70"], capture_output=True, text=True)
    assert "tbf" in qd.stdout and "rate 80Mbit" in qd.stdout
    c.networks = [dataclasses.replace(net, egress_kbit=20_000)]
    assert c.reconcile_all() == 2  # one SetTbf per host, nothing else
    assert owned(h1).tbf_bps["mx-70"] == 20_000 * 125
    c.networks = [dataclasses.replace(net, egress_kbit=None)]
    c.reconcile_all()
    assert "mx-70" not in owned(h1).tbf_bps
    assert can_ping(c.endpoints[0].netns, "10.70.0.3")

"""The data plane with real Docker containers (``--network none``) on lab hosts.

Containers are attached by PID (``/proc/<pid>/ns/net``), exactly as the agent
does; traffic is generated inside them with their own busybox (ping, nc) or,
for iperf3, with the host's binary entered into the container's netns.
"""

from __future__ import annotations

import json
import re
import subprocess
import time

import pytest

import netops
from meshd.reconcile import Network, host_if_name
from tests.integration.netops.cluster import ALL, Cluster, Placement, can_ping, drop_counts, in_ns, reach
from tools.lab import Lab

pytestmark = [pytest.mark.root, pytest.mark.docker]


def dexec(c, *argv: str, timeout: float = 15) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", "exec", c.id, *argv], capture_output=True, text=True, timeout=timeout)


def ping(c, ip: str, *extra: str) -> bool:
    return dexec(c, "ping", "-c2", "-i0.2", "-W1", *extra, ip).returncode == 0  # any reply of two


def tcp_probe(src, dst, ip: str, port: int) -> str:
    """Send a line from src to ip:port while dst listens; returns what dst received."""
    dexec(dst, "sh", "-c", "rm -f /tmp/got")
    subprocess.run(["docker", "exec", "-d", dst.id, "sh", "-c", f"nc -l -p {port} > /tmp/got"], check=True)
    listening = re.compile(rf":{port:04X} [0-9A-F]+:0000 0A")  # /proc/net/tcp{,6}: local port, state LISTEN
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # a fixed sleep lost the race under load: nobody listened yet
        if listening.search(dexec(dst, "cat", "/proc/net/tcp", "/proc/net/tcp6").stdout):
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"nc -l -p {port} in {dst.name} did not listen within 10 s")
    dexec(src, "sh", "-c", f"echo hello-from-{src.name} | nc -w1 {ip} {port}")
    deadline = time.monotonic() + 3  # under load the listener may write what it got a little later
    while not (got := dexec(dst, "cat", "/tmp/got").stdout.strip()) and time.monotonic() < deadline:
        time.sleep(0.1)
    dexec(dst, "sh", "-c", f"pkill -f 'nc -l -p {port}' || true")
    return got


def netns_of(c) -> str:
    return f"/proc/{c.pid}/ns/net"


def cleanup_routers(lab: Lab) -> None:
    for h in lab.hosts():
        netops.remove_routers(f"{h.netns}-r-")


@pytest.fixture
def lab3d(make_lab, docker_available):
    lab = make_lab(3)
    yield lab
    cleanup_routers(lab)


@pytest.fixture
def lab2d(make_lab, docker_available):
    lab = make_lab(2)
    yield lab
    cleanup_routers(lab)


def tenants(lab: Lab) -> tuple[Cluster, dict]:
    h1, h2, h3 = lab.hosts()
    ctr = {name: lab.container(h, name) for name, h in
           [("red1", h1), ("red2", h2), ("red3", h3), ("blue1", h1), ("blue2", h2)]}
    nets = [Network(vni=100, tenant="red", subnet="10.1.0.0/24", gateway="10.1.0.1"),
            Network(vni=200, tenant="blue", subnet="10.1.0.0/24", gateway="10.1.0.1")]
    eps = [Placement("red1", h1, 100, "10.1.0.2", netns_of(ctr["red1"])),
           Placement("red2", h2, 100, "10.1.0.3", netns_of(ctr["red2"])),
           Placement("red3", h3, 100, "10.1.0.4", netns_of(ctr["red3"])),
           Placement("blue1", h1, 200, "10.1.0.2", netns_of(ctr["blue1"])),
           Placement("blue2", h2, 200, "10.1.0.3", netns_of(ctr["blue2"]))]
    return Cluster(lab.hosts(), nets, eps), ctr


def test_three_hosts_two_tenants_same_subnet_never_cross(lab3d) -> None:
    c, ctr = tenants(lab3d)
    assert c.reconcile_all() > 0
    assert c.reconcile_all() == 0
    assert ping(ctr["red1"], "10.1.0.3") and ping(ctr["red1"], "10.1.0.4") and ping(ctr["red3"], "10.1.0.1")
    assert ping(ctr["blue1"], "10.1.0.3") and not ping(ctr["blue1"], "10.1.0.4")  # .4 is red's only
    # TCP: blue2 listens on the address red2 has; red1's connection lands at red2 only
    assert tcp_probe(ctr["red1"], ctr["blue2"], "10.1.0.3", 7001) == ""
    assert tcp_probe(ctr["red1"], ctr["red2"], "10.1.0.3", 7002) == "hello-from-red1"
    assert tcp_probe(ctr["blue1"], ctr["blue2"], "10.1.0.3", 7003) == "hello-from-blue1"
    # L2 population: red1 resolved red2 from the proxy ARP table, the tunnel never floods unknown unicast
    h1 = lab3d.hosts()[0]
    fdb = subprocess.run(["bridge", "-n", h1.netns, "fdb", "show", "dev", "mx-100"], capture_output=True,
                         text=True).stdout
    assert "dst 192.0.2.12 self permanent" in fdb and "dst 192.0.2.13 self permanent" in fdb
    neigh = subprocess.run(["ip", "-n", h1.netns, "neigh", "show", "dev", "mx-100"], capture_output=True,
                           text=True).stdout
    assert "10.1.0.3 lladdr" in neigh and "10.1.0.4 lladdr" in neigh


def test_member_loss_withdraws_and_return_restores_the_tunnel_entries(lab3d) -> None:
    c, ctr = tenants(lab3d)
    c.reconcile_all()
    h1 = lab3d.hosts()[0]
    with netops.in_netns(f"/run/netns/{h1.netns}"):
        before = netops.dump_owned(f"{h1.netns}-r-")
    c.dead = {"h3"}
    lab3d.cut("h3")
    c.reconcile_all()
    with netops.in_netns(f"/run/netns/{h1.netns}"):
        during = netops.dump_owned(f"{h1.netns}-r-")
    assert not [e for e in during.fdb if e[2] == "192.0.2.13"]
    assert ("mx-100", "10.1.0.4") not in {(d, ip) for d, ip, _m in during.neigh}
    assert ping(ctr["red1"], "10.1.0.3")  # the others are untouched
    lab3d.heal("h3")
    c.dead = set()
    c.reconcile_all()
    with netops.in_netns(f"/run/netns/{h1.netns}"):
        after = netops.dump_owned(f"{h1.netns}-r-")
    assert (after.fdb, after.neigh) == (before.fdb, before.neigh)
    assert ping(ctr["red1"], "10.1.0.4")


def test_docker_rm_removes_the_host_device_and_the_next_pass_cleans_up(lab2d) -> None:
    h1, h2 = lab2d.hosts()
    a, b = lab2d.container(h1, "a"), lab2d.container(h1, "b")
    c = Cluster([h1, h2], [Network(vni=7, tenant="t", subnet="10.7.0.0/24", gateway="10.7.0.1")],
                [Placement("a", h1, 7, "10.7.0.2", netns_of(a)), Placement("b", h1, 7, "10.7.0.3", netns_of(b))])
    c.reconcile_all()
    assert ping(a, "10.7.0.3")
    subprocess.run(["docker", "rm", "-f", b.id], check=True, capture_output=True)
    gone = host_if_name("b", 7)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with netops.in_netns(f"/run/netns/{h1.netns}"):
            if gone not in netops.dump_owned().links:
                break
        time.sleep(0.05)
    else:
        pytest.fail(f"host side {gone} of a removed container still exists")
    r = c.reconcile(h1)  # the endpoint is still desired: attach fails clearly, leaves nothing
    [failure] = r.failures
    assert "container exited?" in str(failure.error)
    assert dict(r.endpoint_failures) == {("b", 7): failure} and r.built == {("a", 7)}
    c.endpoints = c.endpoints[:1]
    c.reconcile_all()
    assert c.reconcile_all() == 0
    with netops.in_netns(f"/run/netns/{h1.netns}"):
        assert [n for n in netops.dump_owned().links if n.startswith("mv")] == [host_if_name("a", 7)]
    assert ping(a, "10.7.0.1")


def test_full_size_df_ping_passes_and_one_more_byte_fails(lab2d) -> None:
    h1, h2 = lab2d.hosts()
    a, b = lab2d.container(h1, "a"), lab2d.container(h2, "b")
    c = Cluster([h1, h2], [Network(vni=8, tenant="t", subnet="10.8.0.0/24")],
                [Placement("a", h1, 8, "10.8.0.2", netns_of(a)), Placement("b", h2, 8, "10.8.0.3", netns_of(b))])
    c.reconcile_all()
    mtu = int(dexec(a, "cat", "/sys/class/net/eth0/mtu").stdout)
    assert mtu == 1500 - 50
    # busybox ping has no -M: the host's ping, entered into the container's netns
    assert can_ping(netns_of(a), "10.8.0.3", "-M", "do", "-s", str(mtu - 28))  # 1450 bytes cross whole
    assert not can_ping(netns_of(a), "10.8.0.3", "-M", "do", "-s", str(mtu - 27))
    d = c.desired(h1)
    with netops.in_netns(f"/run/netns/{h1.netns}"):
        check = netops.check_path_mtu(h2.underlay_ip, d.underlay_mtu)
    assert check.ok, check


def test_tbf_shapes_a_container_to_its_rate_within_5_percent(lab2d) -> None:
    h1, h2 = lab2d.hosts()
    a, b = lab2d.container(h1, "a"), lab2d.container(h2, "b")
    rate_kbit = 40_000
    c = Cluster([h1, h2], [Network(vni=9, tenant="t", subnet="10.9.0.0/24")],
                [Placement("a", h1, 9, "10.9.0.2", netns_of(a), qos=netops.Qos(rate_kbit, 32 * 1024, 50)),
                 Placement("b", h2, 9, "10.9.0.3", netns_of(b))])
    c.reconcile_all()
    server = subprocess.Popen(["nsenter", f"--net={netns_of(b)}", "iperf3", "-s", "-1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        out = in_ns(netns_of(a), "iperf3", "-c", "10.9.0.3", "-t", "3", "-O", "1", "-J", timeout=30)
    finally:
        server.wait(timeout=10)
    goodput = json.loads(out.stdout)["end"]["sum_received"]["bits_per_second"] / 1000
    # TBF meters whole frames; iperf3 counts TCP payload: 1398 of every 1464 bytes at MTU 1450
    on_wire = goodput * (1450 + 14) / (1450 - 52)
    assert abs(on_wire / rate_kbit - 1) <= 0.05, (goodput, on_wire)
    assert 0.90 <= goodput / rate_kbit <= 1.05


_KILL_MIDWAY = """
import os, pickle, signal, sys
import netops, netops._endpoint as ep
from meshd.reconcile import reconcile_once
real, calls = ep._peer_msgs, []
def dying(ns, op):  # the veth exists (alias "building"); die before configuring the container side
    calls.append(op)
    if len(calls) == int(sys.argv[2]):
        os.kill(os.getpid(), signal.SIGKILL)
    return real(ns, op)
ep._peer_msgs = dying
desired = pickle.loads(sys.stdin.buffer.read())
with netops.in_netns(sys.argv[1]):
    reconcile_once(desired, check_mtu=False)
"""


def test_killed_in_the_middle_of_an_attach_the_next_pass_finishes_exactly(lab2d) -> None:
    import pickle
    import sys

    h1, h2 = lab2d.hosts()
    ctrs = [lab2d.container(h1, f"k{i}") for i in range(4)]
    c = Cluster([h1, h2], [Network(vni=6, tenant="t", subnet="10.6.0.0/24", gateway="10.6.0.1")],
                [Placement(f"k{i}", h1, 6, f"10.6.0.{i + 2}", netns_of(x)) for i, x in enumerate(ctrs)])
    proc = subprocess.run([sys.executable, "-c", _KILL_MIDWAY, f"/run/netns/{h1.netns}", "3"],
                          input=pickle.dumps(c.desired(h1)), capture_output=True, timeout=60)
    assert proc.returncode == -9
    with netops.in_netns(f"/run/netns/{h1.netns}"):
        half = netops.dump_owned(f"{h1.netns}-r-")
    aliases = sorted(link.alias for n, link in half.links.items() if n.startswith("mv"))
    assert len(aliases) == 3 and aliases[-1] == "meshd:building"  # two complete, the third half-built
    c.reconcile_all()
    assert c.reconcile_all() == 0
    with netops.in_netns(f"/run/netns/{h1.netns}"):
        done = netops.dump_owned(f"{h1.netns}-r-")
    want = {e.host_if for e in c.desired(h1).local}
    assert {n for n in done.links if n.startswith("mv")} == want
    assert all(ping(x, "10.6.0.1") for x in ctrs)
    assert all(dexec(x, "ip", "-o", "-4", "addr", "show", "eth0").stdout.count("inet ") == 1 for x in ctrs)


def test_seed_000_policies_on_docker_containers_block_exactly_their_pairs(lab2d) -> None:
    from meshd.reconcile import Policy

    h1, h2 = lab2d.hosts()
    ctr = {k: lab2d.container(h, k) for k, h in (("a1", h1), ("a2", h2), ("b1", h1), ("b2", h2))}
    nets = [Network(vni=10, tenant="acme", subnet="10.10.0.0/24", gateway="10.10.0.1"),
            Network(vni=11, tenant="acme", subnet="10.11.0.0/24", gateway="10.11.0.1")]
    c = Cluster([h1, h2], nets, [Placement("a1", h1, 10, "10.10.0.2", netns_of(ctr["a1"])),
                                 Placement("a2", h2, 10, "10.10.0.3", netns_of(ctr["a2"])),
                                 Placement("b1", h1, 11, "10.11.0.2", netns_of(ctr["b1"])),
                                 Placement("b2", h2, 11, "10.11.0.3", netns_of(ctr["b2"]))])
    cases = [(None, set()), (Policy(kind="isolate", a=10), {"a1>a2"}),
             (Policy(kind="deny", a=10, b=11), {"a1>b2", "a1>b1"}),
             (Policy(kind="deny_both", a=10, b=11), {"a1>b2", "a1>b1", "b2>a1"}),
             (Policy(kind="deny_all", a=10), {"a1>a2", "a1>b2", "a1>b1", "b2>a1", "a1>gw"})]
    for policy, blocked in cases:  # switching policies is a set update on the running containers
        c.policies = [policy] if policy else []
        c.reconcile_all()
        assert c.reconcile_all() == 0
        assert reach(c) == {k: k not in blocked for k in ALL}, policy
    # TCP obeys the same rules: deny a→b blocks a's connection, b's connection to a goes through
    c.policies = [Policy(kind="deny", a=10, b=11)]
    c.reconcile_all()
    assert tcp_probe(ctr["a1"], ctr["b2"], "10.11.0.3", 7010) == ""
    assert tcp_probe(ctr["b2"], ctr["a1"], "10.10.0.2", 7011) == "hello-from-b2"
    assert drop_counts(h1)["deny"] > 0

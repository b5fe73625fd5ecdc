"""The multi-host lab against the real kernel and dockerd."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys

import pytest

from tools.lab import IMAGE, Lab, LabError, unique_prefix

pytestmark = pytest.mark.root


def pings(lab: Lab, src: str, dst_ip: str) -> bool:
    """True when at least one of two echo requests is answered (within 1 s each)."""
    return lab.exec(src, "ping", "-c2", "-i0.2", "-W1", dst_ip, check=False, timeout=10).returncode == 0


def netns_inode(path: str) -> int:
    return os.stat(path).st_ino


def test_up_makes_hosts_on_the_underlay(lab3: Lab) -> None:
    hosts = lab3.hosts()
    assert [(h.name, h.netns, h.underlay_ip, h.underlay_dev) for h in hosts] == [
        (f"h{i}", f"{lab3.prefix}-h{i}", f"192.0.2.{10 + i}", "eth0") for i in (1, 2, 3)
    ]
    st = lab3.status()
    assert st.underlay
    assert [h.addresses for h in st.hosts] == [(f"192.0.2.{10 + i}/24",) for i in (1, 2, 3)]
    assert all(h.link_up and not h.cut for h in st.hosts)
    for h in hosts:
        lo = json.loads(lab3.exec(h, "ip", "-j", "link", "show", "lo").stdout)
        assert "UP" in lo[0]["flags"]
        assert lab3.exec(h, "ip", "-6", "addr").stdout == ""  # IPv4-only: no link-local noise


def test_no_namespace_routes_outside_the_lab(lab3: Lab) -> None:
    for h in lab3.hosts():
        assert lab3.exec(h, "ip", "route", "show", "default").stdout.strip() == ""
        outside = lab3.exec(h, "ip", "route", "get", "198.51.100.1", check=False)
        assert outside.returncode != 0 and "unreachable" in outside.stderr
    ul = f"{lab3.prefix}-ul"
    addrs = subprocess.run(["ip", "-n", ul, "-4", "addr", "show", "scope", "global"], capture_output=True, text=True)
    assert addrs.stdout == ""


def test_up_is_idempotent_and_repairs(lab3: Lab) -> None:
    before = {h.netns: netns_inode(f"/run/netns/{h.netns}") for h in lab3.hosts()}
    # a crashed run may leave a host without its underlay port: up() rewires it
    subprocess.run(["ip", "-n", f"{lab3.prefix}-ul", "link", "del", "h2"], check=True)
    assert not pings(lab3, "h1", "192.0.2.12")
    again = lab3.up(3)
    assert {h.netns: netns_inode(f"/run/netns/{h.netns}") for h in again} == before
    assert pings(lab3, "h1", "192.0.2.12")


def test_hosts_reach_each_other_over_the_underlay(lab3: Lab) -> None:
    hosts = lab3.hosts()
    for src, dst in itertools.permutations(hosts, 2):
        assert pings(lab3, src.name, dst.underlay_ip), f"{src.name} cannot reach {dst.name}"


def test_cut_and_heal_partition_one_host(lab3: Lab) -> None:
    assert pings(lab3, "h1", "192.0.2.12")
    lab3.cut("h2")
    assert [h.cut for h in lab3.status().hosts] == [False, True, False]
    assert not pings(lab3, "h1", "192.0.2.12")
    assert not pings(lab3, "h2", "192.0.2.13")
    assert pings(lab3, "h1", "192.0.2.13"), "cutting h2 must not cut h1 from h3"
    lab3.cut("h2")  # idempotent
    lab3.heal("h2")
    assert not any(h.cut for h in lab3.status().hosts)
    assert pings(lab3, "h1", "192.0.2.12")
    assert pings(lab3, "h2", "192.0.2.13")
    lab3.heal("h2")  # healing a connected host is a no-op


RECV = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 9999)); s.settimeout(2.0); print("ready", flush=True)
try:
    print(s.recv(64).decode(), flush=True)
except TimeoutError:
    print("timeout", flush=True)
"""
SEND = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(5):
    s.sendto(b"hello", (sys.argv[1], 9999)); time.sleep(0.1)
"""


def udp_delivers(lab: Lab, src: str, dst: str) -> bool:
    """True when a UDP datagram sent from `src` arrives at `dst` (no reply needed)."""
    dst_ip = lab.host(dst).underlay_ip
    recv = lab.popen(dst, sys.executable, "-c", RECV, dst_ip, stdout=subprocess.PIPE, text=True)
    try:
        assert recv.stdout.readline() == "ready\n"
        lab.exec(src, sys.executable, "-c", SEND, dst_ip)
        return recv.stdout.readline() == "hello\n"
    finally:
        recv.kill()
        recv.wait()


def test_pairwise_and_one_way_cuts(lab3: Lab) -> None:
    lab3.cut("h1", "h2")
    assert not pings(lab3, "h1", "192.0.2.12") and not pings(lab3, "h2", "192.0.2.11")
    assert pings(lab3, "h1", "192.0.2.13") and pings(lab3, "h3", "192.0.2.12"), "h3 still reaches both"
    assert [h.cut_to for h in lab3.status().hosts] == [("h2",), ("h1",), ()]
    lab3.heal("h2", "h1")
    assert pings(lab3, "h1", "192.0.2.12")
    lab3.cut("h1", "h2", oneway=True)
    assert [h.cut_to for h in lab3.status().hosts] == [("h2",), (), ()]
    assert not udp_delivers(lab3, "h1", "h2")
    assert udp_delivers(lab3, "h2", "h1")
    lab3.cut("h3")
    lab3.heal("h1")  # heals every cut involving h1, leaves h3's
    assert udp_delivers(lab3, "h1", "h2")
    assert [(h.cut, h.cut_to) for h in lab3.status().hosts] == [(False, ())] * 2 + [(True, ())]
    with pytest.raises(LabError, match="one-way cut needs a peer"):
        lab3.cut("h1", oneway=True)


def test_labs_with_different_prefixes_coexist(make_lab) -> None:
    a, b = make_lab(hosts=2), make_lab(hosts=2)
    b.cut("h2")
    assert pings(a, "h1", "192.0.2.12"), "a cut in lab b must not affect lab a"
    assert not pings(b, "h1", "192.0.2.12")


def test_errors_name_the_object_and_the_fix(lab3: Lab) -> None:
    with pytest.raises(LabError, match=r"lab host .*-h9 does not exist: create it with"):
        lab3.exec("h9", "true")
    with pytest.raises(LabError, match="is not h<N>"):
        lab3.cut("db1")
    with pytest.raises(LabError, match=r"lab prefix 'Bad-Prefix' is invalid"):
        Lab("Bad-Prefix")
    with pytest.raises(LabError, match=r"failed \(exit 1\)"):
        lab3.exec("h1", "false")


@pytest.mark.docker
def test_container_per_host_in_its_own_netns(lab3: Lab) -> None:
    containers = [lab3.container(h, "c1") for h in lab3.hosts()]
    assert [(c.host, c.name) for c in containers] == [("h1", "c1"), ("h2", "c1"), ("h3", "c1")]
    assert len({c.id for c in containers}) == 3
    root_ns = netns_inode("/proc/self/ns/net")
    for c, h in zip(containers, lab3.hosts(), strict=True):
        c_ns = netns_inode(f"/proc/{c.pid}/ns/net")
        assert c_ns not in (root_ns, netns_inode(f"/run/netns/{h.netns}"))
        links = subprocess.run(["nsenter", "-t", str(c.pid), "-n", "ip", "-o", "link"], capture_output=True, text=True)
        assert [line.split(":")[1].strip() for line in links.stdout.splitlines()] == ["lo"]  # --network none
    assert lab3.container("h1", "c1") == containers[0]  # idempotent
    assert lab3.containers() == sorted(containers, key=lambda c: c.host)
    out = subprocess.run(["docker", "exec", containers[0].docker_name, "sh", "-c", "echo hi"],
                         capture_output=True, text=True)
    assert out.stdout == "hi\n", f"{IMAGE} shell does not work: {out.stderr}"


@pytest.mark.docker
def test_down_after_crash_leaves_nothing(tmp_path) -> None:
    """A lab made by another process (the CLI) is found and removed by prefix alone."""
    prefix = unique_prefix()
    cli = [sys.executable, "-m", "tools.lab", "--prefix", prefix]
    try:
        subprocess.run([*cli, "up", "--hosts", "2"], check=True, capture_output=True)
        pid = int(subprocess.run([*cli, "container", "h1", "web"], check=True, capture_output=True, text=True).stdout)
        subprocess.run([*cli, "cut", "h2"], check=True)
        daemon = Lab(prefix).popen("h2", "sleep", "600")
        assert os.path.exists(f"/proc/{pid}")
    finally:
        report = Lab(prefix).down()  # a fresh object: no state from `up`
    assert daemon.wait(timeout=10) != 0, "down must stop processes running in lab namespaces"
    assert len(report.removed_netns) == 3 and report.removed_containers == 1
    assert [ns for ns in os.listdir("/run/netns") if ns.startswith(prefix)] == []
    names = subprocess.run(["docker", "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True).stdout
    assert prefix not in names
    links = json.loads(subprocess.run(["ip", "-j", "link"], capture_output=True, text=True).stdout)
    assert [link["ifname"] for link in links if link["ifname"].startswith(prefix)] == []
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    assert prefix not in tables
    assert Lab(prefix).down().removed_netns == ()  # down is idempotent

"""Flat networks end to end (issue 15 item 1): macvlan interfaces on the lab hosts' LAN NIC, real agents,
real Docker containers, through the API, the CLI, Docker labels and the seed-002 environment.

The lab's LAN is the underlay bridge; a flat network's subnet (10.77.0.0/24 here) is a second subnet on
that same L2 segment, so containers on different hosts reach each other directly, without a tunnel.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

import netops
from meshd.api import MsgType
from meshd.api.client import ApiRequestError
from tests.e2e.conftest import container_addr, ping
from tests.e2e.test_operator import labelled, meshd


def _wait_addr(cluster, cid: str, ip: str, ifname: str = "eth0") -> tuple[str, str]:
    return cluster.wait(f"{cid[:12]} has {ip}", lambda: (a := container_addr(cid, ifname)) and
                        a[0] == f"{ip}/24" and a, timeout_s=30)


def _link(pid: int, ifname: str = "eth0") -> dict | None:
    out = subprocess.run(["nsenter", f"--net=/proc/{pid}/ns/net", "ip", "-j", "-d", "link", "show", ifname],
                         capture_output=True, text=True, timeout=30)
    return json.loads(out.stdout)[0] if out.returncode == 0 else None


def _pid(cid: str) -> int:
    return int(subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", cid], capture_output=True, text=True,
                              check=True).stdout)


def _tcp(src_pid: int, dst_pid: int, ip: str) -> bool:
    """A TCP transfer (iperf3, 1 s) from one container's netns to another's."""
    server = subprocess.Popen(["nsenter", f"--net=/proc/{dst_pid}/ns/net", "iperf3", "-s", "-1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while b":5201" not in subprocess.run(["nsenter", f"--net=/proc/{dst_pid}/ns/net", "ss", "-ltn"],
                                             capture_output=True).stdout:
            assert time.monotonic() < deadline, "iperf3 server did not start listening"
            time.sleep(0.05)
        client = subprocess.run(["nsenter", f"--net=/proc/{src_pid}/ns/net", "iperf3", "-c", ip, "-t", "1", "-J"],
                                capture_output=True, text=True, timeout=30)
        return client.returncode == 0 and json.loads(client.stdout)["end"]["sum_received"]["bytes"] > 0
    finally:
        server.kill()
        server.wait()


def _owned_links(lab, host: str) -> list[str]:
    lines = lab.exec(host, "ip", "-o", "link").stdout.splitlines()
    names = [line.split(":")[1].strip().split("@")[0] for line in lines]
    return [n for n in names if n.startswith(("mb-", "mx-", "mg-", "mv"))]


def test_flat_network_through_every_door_reaches_across_hosts_and_releases(make_cluster):
    lab, cluster = make_cluster(hosts=3)
    with netops.in_netns(f"/run/netns/{lab.host('h1').netns}"):
        parent = netops.underlay_for("192.0.2.11").dev  # the lab hosts' LAN NIC
    out = meshd(cluster, "h2", "network", "create", "lan", "10.77.0.0/24", "--mode", "flat", "--tenant", "a",
                "--gateway", "10.77.0.1", "-o", "ip_range=10.77.0.128/26", check_code=0)
    assert "lan" in out.stdout
    shown = meshd(cluster, "h3", "network", "inspect", "lan", check_code=0).stdout
    assert "flat" in shown and "ip_range=10.77.0.128/26" in shown and "1500" in shown, shown
    # the advisor (issue 15 item 5) picks flat for throughput alone, within the cluster's constraints
    auto = meshd(cluster, "h1", "network", "create", "fast", "10.76.0.0/24", "--mode", "auto", "--security", "0",
                 "--scale", "0", "--throughput", "10", "--extensibility", "0", "--l2-prefix", "24", check_code=0)
    assert auto.stdout.startswith("mode auto: flat"), auto.stdout
    assert next(n for n in cluster.query("h1", MsgType.NETWORK_LIST)["networks"] if n["name"] == "fast")[
        "mode"] == "flat"

    # the API (h1), the CLI (h2), Docker labels (h3), the seed-002 environment (h1)
    c1, c2 = lab.container("h1", "c1"), lab.container("h2", "c2")
    with cluster.scheduler("h1") as api:
        ip1 = api.request(MsgType.ENDPOINT_CONNECT, container_id=c1.id, network="lan", host="h1")["ip"]
    meshd(cluster, "h2", "endpoint", "connect", c2.id, "lan", check_code=0)
    c3 = labelled(lab, "h3", "c3", "meshd.network=lan")
    c4 = subprocess.run(["docker", "run", "-d", "--network", "none", "--name", f"{lab.prefix}-c4",
                         "--label", f"meshd.lab.prefix={lab.prefix}", "--label", "meshd.lab.host=h1",
                         "-e", "TYPE=flat", "-e", "NETWORK=lan", "-e", "IP=10.77.0.50/24", "-e", "GW=10.77.0.1",
                         "-e", f"HOSTIF={parent}", "meshd-busybox:latest", "sleep", "3600"],
                        capture_output=True, text=True, check=True).stdout.strip()
    def endpoints() -> dict[str, str]:
        return {x["endpoint_id"]: x["ip"] for x in cluster.query("h1", MsgType.QUERY_ENDPOINTS,
                                                                 network="lan")["endpoints"]}

    eps = cluster.wait("four endpoints", lambda: e if len(e := endpoints()) == 4 else None)
    ips = {"c1": eps[c1.id], "c2": eps[c2.id], "c3": eps[c3], "c4": eps[c4]}
    assert ips["c1"] == ip1 and ips["c4"] == "10.77.0.50"
    assert all(128 <= int(ips[c].rsplit(".", 1)[1]) < 192 for c in ("c1", "c2", "c3")), ips  # from the ip_range
    pids = {"c1": c1.pid, "c2": c2.pid, "c3": _pid(c3), "c4": _pid(c4)}
    cids = {"c1": c1.id, "c2": c2.id, "c3": c3, "c4": c4}
    for name, cid in cids.items():
        _wait_addr(cluster, cid, ips[name])
        eth0 = _link(pids[name])
        assert eth0["linkinfo"]["info_kind"] == "macvlan" and eth0["linkinfo"]["info_data"]["mode"] == "bridge"
        assert eth0["mtu"] == 1500 and eth0["ifalias"].startswith("meshd ep ")
    # no bridge, tunnel, router leg or host-side veth for a flat network on any host
    assert {h: _owned_links(lab, h) for h in ("h1", "h2", "h3")} == {"h1": [], "h2": [], "h3": []}

    # across hosts and on one host (bridge mode), ping and TCP
    for a, b in (("c1", "c2"), ("c2", "c3"), ("c3", "c1"), ("c4", "c3"), ("c1", "c4")):
        assert ping(cids[a], ips[b]), f"{a} -> {b} ({ips[b]})"
    assert _tcp(pids["c1"], pids["c2"], ips["c2"]) and _tcp(pids["c3"], pids["c4"], ips["c4"])
    # the counters of a flat endpoint (read inside its netns: it has no host-side device) follow the TCP
    def c1_stats():
        ep = next(e for e in cluster.query("h1", MsgType.QUERY_STATUS)["endpoints"] if e["endpoint_id"] == c1.id)
        return ep if ep.get("tx_bytes", 0) > 100_000 else None

    assert cluster.wait("c1's counters", c1_stats)["rx_bytes"] > 0

    # another tenant may not put an overlapping subnet on the same LAN; its own flat network is not routed to
    with cluster.scheduler("h1") as api:
        with pytest.raises(ApiRequestError, match="overlaps flat network 'lan'"):
            api.request(MsgType.NETWORK_CREATE, name="lan-b", subnet="10.77.0.0/25", tenant="b", mode="flat")
        api.request(MsgType.NETWORK_CREATE, name="lan-b", subnet="10.78.0.0/24", tenant="b", mode="flat")
        d1 = lab.container("h2", "d1")
        ipd = api.request(MsgType.ENDPOINT_CONNECT, container_id=d1.id, network="lan-b", host="h2")["ip"]
    _wait_addr(cluster, d1.id, ipd)
    assert not ping(d1.id, ips["c2"], count=1) and not ping(c1.id, ipd, count=1)

    # release: a disconnect (API) removes the interface and its record; docker rm releases the address
    records = cluster.agents["h2"].run_dir / "endpoints"
    assert len(os.listdir(records)) == 2  # c2 and d1
    with cluster.scheduler("h3") as api:
        api.request(MsgType.ENDPOINT_DISCONNECT, container_id=c2.id, network="lan")
    cluster.wait("c2's interface gone", lambda: _link(c2.pid) is None)
    cluster.wait("c2's record gone", lambda: len(os.listdir(records)) == 1)
    assert not ping(c1.id, ips["c2"], count=1)
    subprocess.run(["docker", "rm", "-f", c3], check=True, capture_output=True)
    cluster.wait("c3 released", lambda: c3 not in endpoints())
    cluster.wait("h3's record of c3 gone", lambda: os.listdir(cluster.agents["h3"].run_dir / "endpoints") == [])


def test_flat_endpoints_survive_an_agent_restart_untouched_and_private_mode_keeps_a_hosts_containers_apart(
        make_cluster):
    lab, cluster = make_cluster(hosts=2)
    with cluster.scheduler("h1") as api:
        api.request(MsgType.NETWORK_CREATE, name="quiet", subnet="10.79.0.0/24", mode="flat",
                    options={"macvlan_mode": "private"})
        boxes = {n: lab.container(h, n) for n, h in (("p1", "h1"), ("p2", "h1"), ("p3", "h2"))}
        ips = {n: api.request(MsgType.ENDPOINT_CONNECT, container_id=b.id, network="quiet", host=b.host)["ip"]
               for n, b in boxes.items()}
    for n, b in boxes.items():
        _wait_addr(cluster, b.id, ips[n])
    assert _link(boxes["p1"].pid)["linkinfo"]["info_data"]["mode"] == "private"
    assert not ping(boxes["p1"].id, ips["p2"], count=1)  # private: not between containers of one host
    assert ping(boxes["p1"].id, ips["p3"]) and ping(boxes["p2"].id, ips["p3"])  # across the LAN they are

    before = {n: (container_addr(b.id), _link(b.pid)["ifindex"]) for n, b in boxes.items()}
    cluster.kill("h1")
    cluster.start("h1")
    cluster.wait("h1 back", lambda: cluster.members("h2").get("h1") == "alive", timeout_s=30)
    cluster.wait("h1 ran a full pass", lambda: cluster.query("h1", MsgType.QUERY_STATUS)["reconcile"]["passes"] > 0)
    after = {n: (container_addr(b.id), _link(b.pid)["ifindex"]) for n, b in boxes.items()}
    assert after == before  # same address, MAC and interface: nothing was rebuilt
    assert ping(boxes["p3"].id, ips["p1"])

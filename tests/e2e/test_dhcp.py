"""dhcp networks end to end (issue 15 item 2): real agents and Docker containers on two lab hosts, a real
dnsmasq on the lab's LAN (the underlay bridge) serving 10.78.0.0/24 with 2-minute leases.

Each container's address is leased inside its own netns by its host's agent, replicated as the
endpoint's address, renewed at T1, confirmed (not changed) after a kill -9 of the agent, and released
on disconnect and on docker rm.
"""

from __future__ import annotations

import re
import subprocess

import pytest

import netops
from meshd.api import MsgType
from meshd.api.client import ApiRequestError
from tests.e2e.conftest import ping
from tests.e2e.test_flat import _link, _wait_addr
from tests.e2e.test_operator import meshd


def _acks(server, ip: str, mac: str) -> int:
    return len(re.findall(rf"DHCPACK\(br0\) {re.escape(ip)} {re.escape(mac)}", server.log()))


def test_dhcp_network_leases_in_the_container_renews_survives_a_restart_and_releases(make_cluster, tmp_path):
    lab, cluster = make_cluster(hosts=2)
    server = lab.dhcp_server(tmp_path / "dnsmasq", subnet="10.78.0.0/24", lease_s=120)
    with netops.in_netns(f"/run/netns/{lab.host('h1').netns}"):
        parent = netops.underlay_for("192.0.2.11").dev
    meshd(cluster, "h1", "network", "create", "dyn", "10.78.0.0/24", "--mode", "dhcp", "--gateway", server.router,
          check_code=0)
    meshd(cluster, "h1", "network", "create", "blue", "10.1.0.0/24", check_code=0)

    # the API on the container's host (h1), the CLI on h2, the seed-002 environment on h2
    c1, c2 = lab.container("h1", "c1"), lab.container("h2", "c2")
    with cluster.scheduler("h1") as api:
        r1 = api.request(MsgType.ENDPOINT_CONNECT, container_id=c1.id, network="dyn", host="h1")
        with pytest.raises(ApiRequestError, match="through host 'h2''s agent"):
            api.request(MsgType.ENDPOINT_CONNECT, container_id=c2.id, network="dyn", host="h2")
        with pytest.raises(ApiRequestError, match="come from its DHCP server: drop the ip"):
            api.request(MsgType.ENDPOINT_CONNECT, container_id=c1.id, network="dyn", host="h1", ip="10.78.0.150")
    meshd(cluster, "h2", "endpoint", "connect", c2.id, "dyn", check_code=0)
    env = ["docker", "run", "-d", "--network", "none", "--label", f"meshd.lab.prefix={lab.prefix}",
           "--label", "meshd.lab.host=h2", "-e", "NETWORK={net}", "-e", "TYPE=dhcp", "-e", f"HOSTIF={parent}"]
    c3 = subprocess.run([a.format(net="dyn") for a in env] + ["--name", f"{lab.prefix}-c3", "meshd-busybox:latest",
                        "sleep", "3600"], capture_output=True, text=True, check=True).stdout.strip()
    c4 = subprocess.run([a.format(net="blue") for a in env] + ["--name", f"{lab.prefix}-c4", "meshd-busybox:latest",
                        "sleep", "3600"], capture_output=True, text=True, check=True).stdout.strip()

    def endpoints() -> dict[str, tuple[str, str]]:
        return {x["endpoint_id"]: (x["ip"], x["mac"]) for x in cluster.query("h1", MsgType.QUERY_ENDPOINTS,
                                                                             network="dyn")["endpoints"]}

    eps = cluster.wait("three dhcp endpoints", lambda: e if len(e := endpoints()) == 3 else None, timeout_s=60)
    # the replicated addresses are dnsmasq's leases, MAC for MAC
    leases = server.leases()
    assert {mac: ip for ip, mac in eps.values()} == {mac: lease.ip for mac, lease in leases.items()}, (eps, leases)
    assert r1["ip"] == eps[c1.id][0] and all(mac.startswith("02:6e:") for _, mac in eps.values())
    cids = {"c1": c1.id, "c2": c2.id, "c3": c3}
    ips = {name: eps[cid][0] for name, cid in cids.items()}
    for name, cid in cids.items():
        _wait_addr(cluster, cid, ips[name])
    assert "TYPE=dhcp asks for a dhcp network" in meshd(cluster, "h2", "why", c4[:12]).stdout
    # no probe interface is left anywhere
    for h in ("h1", "h2"):
        assert "mdh" not in lab.exec(h, "ip", "-o", "link").stdout
    assert _link(c1.pid)["linkinfo"]["info_kind"] == "macvlan"
    # across hosts and on one host, and the LAN's DHCP server
    for a, b in (("c1", "c2"), ("c2", "c1"), ("c3", "c1"), ("c2", "c3")):
        assert ping(cids[a], ips[b]), f"{a} -> {b} ({ips[b]})"
    assert ping(c1.id, server.address)

    # QUERY_STATUS shows each local lease and its client
    status = cluster.wait("h2's leases bound", lambda: s if len(s := [d for d in cluster.query(
        "h2", MsgType.QUERY_STATUS)["dhcp"] if d["state"] == "bound"]) == 2 else None)
    assert {d["ip"] for d in status} == {ips["c2"], ips["c3"]} and {d["server"] for d in status} == {server.address}
    assert all(0 < d["renew_in_s"] <= 60 < d["expires_in_s"] <= 120 for d in status), status

    # renewal at T1 (60 s): a unicast REQUEST from the leased address, ACKed again
    mac1 = eps[c1.id][1]
    cluster.wait("c1's lease renewed", lambda: _acks(server, ips["c1"], mac1) >= 2, timeout_s=90)

    # kill -9 and restart h1's agent: same address; the client confirms it (INIT-REBOOT) and renews again
    acks = _acks(server, ips["c1"], mac1)
    before = _link(c1.pid)["ifindex"]
    cluster.kill("h1")
    cluster.start("h1")
    cluster.wait("h1 back", lambda: cluster.members("h2").get("h1") == "alive", timeout_s=30)
    cluster.wait("c1's lease confirmed", lambda: _acks(server, ips["c1"], mac1) > acks, timeout_s=30)
    assert _link(c1.pid)["ifindex"] == before and endpoints()[c1.id] == eps[c1.id]
    assert server.leases()[mac1].ip == ips["c1"]
    cluster.wait("c1's lease renewed after the restart", lambda: _acks(server, ips["c1"], mac1) > acks + 1,
                 timeout_s=90)
    assert ping(c2.id, ips["c1"])

    # release: a disconnect on the container's host releases, then removes the interface
    with cluster.scheduler("h1") as api:
        api.request(MsgType.ENDPOINT_DISCONNECT, container_id=c1.id, network="dyn")
    cluster.wait("c1's lease released", lambda: mac1 not in server.leases())
    cluster.wait("c1's interface gone", lambda: _link(c1.pid) is None)
    assert f"DHCPRELEASE(br0) {ips['c1']} {mac1}" in server.log()
    # docker rm: released from a probe in the host (the container's netns is gone), then disconnected
    subprocess.run(["docker", "rm", "-f", c3], check=True, capture_output=True)
    cluster.wait("c3 released", lambda: eps[c3][1] not in server.leases() and c3 not in endpoints())
    assert set(server.leases()) == {eps[c2.id][1]}

"""Mode routed end to end: real agents, Docker containers on two lab hosts (issue 15 item 4).

Containers of a routed network reach each other across hosts by ping and TCP,
routed on the underlay without encapsulation (the host's route goes via the
peer's underlay address, the network's VXLAN device carries nothing); another
tenant's routed network cannot reach them; deny-both and isolate-within hold;
the overlap refusals name what overlaps; an agent restart changes nothing for
running containers; a disconnect takes the veth and every host's route away.
"""

from __future__ import annotations

import time

import pytest

from meshd.api import MsgType
from meshd.api.client import ApiRequestError
from tests.e2e.conftest import container_addr, ping
from tests.e2e.test_operator import labelled, meshd
from tests.e2e.test_restarts import pinging
from tests.integration.netops.test_netops_docker import tcp_probe

pytestmark = [pytest.mark.root, pytest.mark.docker]
PROTO = "109"  # netops.RTPROT_MESHD


def _connect(cluster, container, network: str) -> dict:
    with cluster.scheduler(container.host) as api:
        ep = api.request(MsgType.ENDPOINT_CONNECT, container_id=container.id, network=network, host=container.host)
    cluster.wait(f"{container.name} has {ep['ip']}",
                 lambda: (a := container_addr(container.id)) and a[0] == ep["ip"] + "/32", timeout_s=30)
    return ep


def _routes(lab, host: str) -> str:
    return lab.exec(host, "ip", "-4", "route", "show", "proto", PROTO).stdout


def _tx_packets(lab, host: str, dev: str) -> int:
    return int(lab.exec(host, "cat", f"/sys/class/net/{dev}/statistics/tx_packets").stdout)


def _refused(cluster, **fields) -> ApiRequestError:
    with cluster.scheduler("h1") as api:
        try:
            api.request(MsgType.NETWORK_CREATE, **fields)
        except ApiRequestError as exc:
            return exc
    raise AssertionError(f"network create {fields} was accepted")


def test_routed_network_across_two_hosts(make_cluster):
    lab, cluster = make_cluster(hosts=2)
    with cluster.scheduler("h1") as api:
        api.request(MsgType.NETWORK_CREATE, name="rt", subnet="10.70.0.0/24", tenant="a", mode="routed")
        api.request(MsgType.NETWORK_CREATE, name="rt2", subnet="10.71.0.0/24", tenant="a", mode="routed")
    meshd(cluster, "h2", "network", "create", "rb", "10.80.0.0/24", "--tenant", "b", "--mode", "routed",
          check_code=0)  # the CLI
    out = meshd(cluster, "h2", "network", "create", "ru", "192.0.2.0/24", "--mode", "routed")
    assert out.returncode != 0 and len(out.stderr.strip().splitlines()) <= 2, out.stderr
    assert "contains the underlay address 192.0.2.11 of host h1" in out.stderr, out.stderr
    # the refusals: another tenant's overlapping routed subnet, a subnet holding a host's underlay address
    exc = _refused(cluster, name="x", subnet="10.70.0.128/25", tenant="b", mode="routed")
    assert exc.code == 1007 and "overlaps routed network 'rt' (10.70.0.0/24) of tenant 'a'" in exc.message
    exc = _refused(cluster, name="x", subnet="192.0.2.0/25", tenant="b", mode="routed")
    assert exc.code == 20 and "contains the underlay address 192.0.2.11 of host h1" in exc.message, exc.message
    assert len(exc.message.splitlines()) == 1

    a1, a2 = lab.container("h1", "a1"), lab.container("h2", "a2")
    s2, b1 = lab.container("h2", "s2"), lab.container("h1", "b1")
    e1, e2 = _connect(cluster, a1, "rt"), _connect(cluster, a2, "rt")
    es2, eb1 = _connect(cluster, s2, "rt2"), _connect(cluster, b1, "rb")

    # Docker labels: a container started with meshd.network=rt is connected the same way
    lb = labelled(lab, "h2", "lb", "meshd.network=rt")
    cluster.wait("the labelled container has a /32", lambda: (a := container_addr(lb)) and a[0].endswith("/32"),
                 timeout_s=30)
    assert ping(lb, e1["ip"])

    # across hosts: ping and TCP
    assert ping(a1.id, e2["ip"]) and ping(a2.id, e1["ip"])
    assert tcp_probe(a1, a2, e2["ip"], 7001) == "hello-from-a1"
    assert ping(a1.id, es2["ip"]), "the tenant's other routed network"
    # not encapsulated: h1 routes a2 via h2's underlay address; the network's VXLAN device stays silent
    assert f"{e2['ip']} via 192.0.2.12 dev eth0" in _routes(lab, "h1"), _routes(lab, "h1")
    vx = f"mr-{e1['vni']}"
    before = _tx_packets(lab, "h1", vx)
    assert ping(a1.id, e2["ip"], count=20)
    assert _tx_packets(lab, "h1", vx) == before
    # tenant isolation: tenant b's routed network reaches nothing of tenant a, and the other way round
    assert not ping(b1.id, e2["ip"], count=1) and not ping(a2.id, eb1["ip"], count=1)

    with cluster.scheduler("h2") as api:
        api.request(MsgType.POLICY_ADD, kind="deny-both", network="rt", peer="rt2", policy_id="p1")
    cluster.wait("deny-both blocks a1->s2", lambda: not ping(a1.id, es2["ip"], count=1), timeout_s=20)
    assert not ping(s2.id, e1["ip"], count=1) and ping(a1.id, e2["ip"], count=1)
    with cluster.scheduler("h2") as api:
        api.request(MsgType.POLICY_DELETE, policy_id="p1")
        api.request(MsgType.POLICY_ADD, kind="isolate-within", network="rt", policy_id="p2")
    cluster.wait("isolate-within blocks a1->a2", lambda: not ping(a1.id, e2["ip"], count=1), timeout_s=20)
    assert ping(a1.id, es2["ip"], count=1)
    with cluster.scheduler("h2") as api:
        api.request(MsgType.POLICY_DELETE, policy_id="p2")
    cluster.wait("policies gone: a1->a2 again", lambda: ping(a1.id, e2["ip"], count=1), timeout_s=20)

    # an agent restart changes nothing for running containers: no ping lost, same veth, same address
    veth = lab.exec("h2", "ip", "-o", "link", "show", "type", "veth").stdout
    with pinging([(a1, e2["ip"]), (a2, e1["ip"])]) as pingers:
        cluster.stop("h2")
        cluster.wait("h1 sees h2's agent down", lambda: cluster.members("h1").get("h2") == "agent-down", timeout_s=30)
        cluster.start("h2")
        cluster.wait("h2 alive again", lambda: cluster.members("h1").get("h2") == "alive", timeout_s=30)
        cluster.wait("h2 reconciled", lambda: cluster.query("h2", MsgType.QUERY_STATUS)["reconcile"]["passes"] > 0)
        time.sleep(1)  # pings after the restarted agent's first pass
        results = [p.stop() for p in pingers]
    for sent, lost, out in results:
        assert sent >= 5 and not lost, f"seq {lost} lost\n{out[-300:]}"
    assert lab.exec("h2", "ip", "-o", "link", "show", "type", "veth").stdout == veth
    assert container_addr(a2.id)[0] == e2["ip"] + "/32"

    # a disconnect releases: the veth on h2 and h1's route to it go
    with cluster.scheduler("h2") as api:
        api.request(MsgType.ENDPOINT_DISCONNECT, container_id=a2.id, network="rt")
    cluster.wait("h1's route to a2 gone", lambda: e2["ip"] + " " not in _routes(lab, "h1"), timeout_s=20)
    cluster.wait("a2's interface gone", lambda: container_addr(a2.id) is None, timeout_s=20)
    assert e2["ip"] + " " not in _routes(lab, "h2")

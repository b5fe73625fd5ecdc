"""Containers across hosts through the scheduler API: tenants, policies, failures, restarts."""

import subprocess
import time

from meshd.api import MsgType
from meshd.api.client import ApiRequestError
from tests.e2e.conftest import container_addr, ping


def _connect(cluster, api_host, container, network, **kw):
    with cluster.scheduler(api_host) as api:
        return api.request(MsgType.ENDPOINT_CONNECT, container_id=container.id, network=network,
                           host=container.host, **kw)


def _wait_up(cluster, container, ip):
    cluster.wait(f"{container.name} has {ip}",
                 lambda: (a := container_addr(container.id)) and a[0].startswith(ip + "/"), timeout_s=30)


def _fdb(lab, host):
    return lab.exec(host, "bridge", "fdb", "show").stdout


def test_tenants_policies_and_a_failed_host(make_cluster):
    lab, cluster = make_cluster(hosts=3)
    with cluster.scheduler("h1", via="h3") as api:  # any host answers, from anywhere in the lab
        api.request(MsgType.NETWORK_CREATE, name="blue", subnet="10.1.0.0/24", tenant="a")
        api.request(MsgType.NETWORK_CREATE, name="red", subnet="10.1.0.0/24", tenant="b")  # same subnet
    a1, a2, b3 = lab.container("h1", "a1"), lab.container("h2", "a2"), lab.container("h3", "b3")
    e1 = _connect(cluster, "h1", a1, "blue")
    e2 = _connect(cluster, "h1", a2, "blue", ip="10.1.0.20")  # a2 runs on h2; asked through h1
    e3 = _connect(cluster, "h3", b3, "red", ip="10.1.0.30")
    assert (e2["host"], e2["ip"]) == ("h2", "10.1.0.20")
    for c, e in ((a1, e1), (a2, e2), (b3, e3)):
        _wait_up(cluster, c, e["ip"])
    assert container_addr(a1.id)[1] == e1["mac"]

    assert ping(a1.id, "10.1.0.20"), "same tenant across hosts"
    assert not ping(a1.id, "10.1.0.30"), "another tenant's address must not answer"
    # L2 population: the remote container's MAC is programmed towards its VTEP on h1
    assert f"{e2['mac']} dev mx-{e2['vni']} dst 192.0.2.12" in _fdb(lab, "h1")

    with cluster.scheduler("h2") as api:
        api.request(MsgType.POLICY_ADD, kind="isolate-within", network="blue", policy_id="no-icc")
    cluster.wait("isolate-within blocks a1->a2", lambda: not ping(a1.id, "10.1.0.20", count=1), timeout_s=20)
    with cluster.scheduler("h2") as api:
        api.request(MsgType.POLICY_DELETE, policy_id="no-icc")
    cluster.wait("policy removed: a1->a2 again", lambda: ping(a1.id, "10.1.0.20", count=1), timeout_s=20)

    # h2's machine dies (agent and network): every other host withdraws its entries; its addresses stay allocated
    cluster.kill("h2")
    lab.cut("h2")
    cluster.wait("h1 withdrew h2's FDB entries", lambda: "192.0.2.12" not in _fdb(lab, "h1"), timeout_s=30)
    assert cluster.members("h1")["h2"] == "failed"
    eps = cluster.query("h1", MsgType.QUERY_ENDPOINTS, network="blue")["endpoints"]
    assert any(e["ip"] == "10.1.0.20" and e["host"] == "h2" for e in eps)
    with cluster.scheduler("h1") as api:
        x = lab.container("h1", "x1")
        assert api.request(MsgType.ENDPOINT_CONNECT, container_id=x.id, network="blue", ip="10.1.0.21")
        try:
            api.request(MsgType.ENDPOINT_CONNECT, container_id=lab.container("h1", "x2").id, network="blue",
                        ip="10.1.0.20")
            raise AssertionError("a failed host's address was handed out again")
        except ApiRequestError as exc:
            assert "10.1.0.20" in exc.message


def _docker_run(lab, host, name, *labels):
    args = ["docker", "run", "-d", "--network", "none", "--name", f"{lab.prefix}-{name}",
            "--label", f"meshd.lab.prefix={lab.prefix}", "--label", f"meshd.lab.host={host}"]
    for label in labels:
        args += ["--label", label]
    out = subprocess.run([*args, "meshd-busybox:latest", "sleep", "3600"], capture_output=True, text=True,
                         check=True)
    return out.stdout.strip()


def test_labelled_container_keeps_ip_and_mac_across_restart_and_rm_releases(make_cluster):
    lab, cluster = make_cluster(hosts=1)
    cluster.query("h1", MsgType.NETWORK_CREATE, name="web", subnet="10.9.0.0/24")
    cid = _docker_run(lab, "h1", "svc", "meshd.network=web", "meshd.rate_kbit=8000")

    def endpoint():
        eps = cluster.query("h1", MsgType.QUERY_ENDPOINTS, network="web")["endpoints"]
        return next((e for e in eps if e["endpoint_id"] == cid), None)

    ep = cluster.wait("labelled container connected", endpoint)
    _wait_up(cluster, type("C", (), {"id": cid, "name": "svc"}), ep["ip"])
    before = container_addr(cid)
    assert ep["qos"]["rate_kbit"] == 8000
    subprocess.run(["docker", "restart", "-t", "1", cid], check=True, capture_output=True)
    cluster.wait("same address after docker restart", lambda: container_addr(cid) == before, timeout_s=30)
    subprocess.run(["docker", "rm", "-f", cid], check=True, capture_output=True)
    cluster.wait("address released after docker rm", lambda: endpoint() is None, timeout_s=30)


def test_seed_002_flat_container_is_refused_with_an_event_naming_it(make_cluster):
    lab, cluster = make_cluster(hosts=1)
    cluster.query("h1", MsgType.NETWORK_CREATE, name="web", subnet="10.9.0.0/24")
    args = ["docker", "run", "-d", "--network", "none", "--name", f"{lab.prefix}-flat",
            "--label", f"meshd.lab.prefix={lab.prefix}", "--label", "meshd.lab.host=h1",
            "-e", "TYPE=flat", "-e", "NETWORK=web", "-e", "IP=10.9.0.7/24", "meshd-busybox:latest", "sleep", "3600"]
    cid = subprocess.run(args, capture_output=True, text=True, check=True).stdout.strip()
    event = cluster.wait("a refusal event", lambda: next(
        (e["text"] for e in cluster.query("h1", MsgType.QUERY_STATUS)["events"] if cid[:12] in e["text"]), None))
    assert "TYPE=flat" in event and f"{lab.prefix}-flat" in event
    assert not cluster.query("h1", MsgType.QUERY_ENDPOINTS, network="web")["endpoints"]


#: memberlist's LAN failure detection with a long suspicion (>= 10 s): an agent restart
#: faster than that is never even declared down
LAN_GOSSIP = ("--set", "gossip.probe_interval_s=1.0", "--set", "gossip.probe_timeout_s=0.5",
              "--set", "gossip.gossip_interval_s=0.2", "--set", "gossip.suspicion_mult=10")


def test_agent_kill9_and_restart_loses_no_packet(make_cluster):
    lab, cluster = make_cluster(hosts=2, extra_args=LAN_GOSSIP)
    cluster.query("h1", MsgType.NETWORK_CREATE, name="blue", subnet="10.1.0.0/24")
    a1, a2 = lab.container("h1", "a1"), lab.container("h2", "a2")
    e1, e2 = _connect(cluster, "h1", a1, "blue"), _connect(cluster, "h2", a2, "blue")
    _wait_up(cluster, a1, e1["ip"])
    _wait_up(cluster, a2, e2["ip"])
    assert ping(a1.id, e2["ip"])
    def state():
        st = cluster.query("h1", MsgType.QUERY_STATUS)
        stable = ("endpoint_id", "network", "ip", "mac", "running", "rate_kbit")  # not the live counters
        return st["networks"], [{k: e[k] for k in stable} for e in st["endpoints"]]

    state_before = state()
    pinger = subprocess.Popen(["docker", "exec", a1.id, "ping", "-c", "40", "-i", "0.2", e2["ip"]],
                              stdout=subprocess.PIPE, text=True)
    time.sleep(1)
    cluster.kill("h1")
    cluster.start("h1")
    cluster.wait("h1 back", lambda: cluster.query("h1", MsgType.QUERY_STATUS))
    out, _ = pinger.communicate(timeout=60)
    assert " 0% packet loss" in out, out
    assert state() == state_before

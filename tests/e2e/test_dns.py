"""Service discovery and DNS inside each tenant, with real agents and Docker containers (issue 17 item 4).

A service published on one host resolves from containers on every other host
of the tenant; a container of another tenant with the same names resolves its
own (and NXDOMAIN for the first tenant's); killing the application makes the
record disappear within its TTL plus a check interval; a failed host's records
are out of DNS within the failure-detection time and removed after the TTL.
"""

from __future__ import annotations

import re
import subprocess
import time

from meshd.api import MsgType
from tests.e2e.conftest import container_addr


def lookup(cid: str, name: str, qtype: str = "A", server: str | None = None) -> tuple[int, str]:
    """(exit code, output) of busybox nslookup inside the container (its resolv.conf when no server)."""
    argv = ["docker", "exec", cid, "nslookup", "-timeout=2", f"-type={qtype}", name, *([server] if server else [])]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout + r.stderr


def addresses(cid: str, name: str) -> list[str]:
    code, out = lookup(cid, name)
    if code or "NXDOMAIN" in out:
        return []
    after = out.split("Name:", 1)[1] if "Name:" in out else ""
    return re.findall(r"Address:\s*(\d+\.\d+\.\d+\.\d+)", after)


def _connect(cluster, c, network):
    with cluster.scheduler(c.host) as api:
        ep = api.request(MsgType.ENDPOINT_CONNECT, container_id=c.id, network=network, host=c.host)
    cluster.wait(f"{c.name} up", lambda: (a := container_addr(c.id)) and a[0].startswith(ep["ip"] + "/"),
                 timeout_s=30)
    return ep


def _label(ep_name: str) -> str:
    return ep_name.replace("_", "-").replace(".", "-")


def test_names_follow_containers_across_hosts_per_tenant_with_health_and_failure(make_cluster):
    lab, cluster = make_cluster(hosts=3)
    cluster.query("h1", MsgType.NETWORK_CREATE, name="blue", subnet="10.1.0.0/24", tenant="a")
    cluster.query("h1", MsgType.NETWORK_CREATE, name="red", subnet="10.1.0.0/24", tenant="b")  # same subnet
    a1, a2, a3 = lab.container("h1", "a1"), lab.container("h2", "a2"), lab.container("h3", "a3")
    b1, b3 = lab.container("h1", "b1"), lab.container("h3", "b3")
    eps = {c.name: _connect(cluster, c, net) for c, net in ((a1, "blue"), (a2, "blue"), (a3, "blue"),
                                                           (b1, "red"), (b3, "red"))}
    names = {e["endpoint_id"]: e for e in cluster.query("h1", MsgType.QUERY_ENDPOINTS)["endpoints"]}

    # the containers were pointed at their gateway
    conf = subprocess.run(["docker", "exec", a2.id, "cat", "/etc/resolv.conf"], capture_output=True, text=True,
                          timeout=30).stdout
    assert "nameserver 10.1.0.1" in conf and "search meshd" in conf, conf

    # container names resolve across hosts, per tenant
    a1_name = _label(names[a1.id]["name"])
    cluster.wait("a1's name resolves on h2", lambda: addresses(a2.id, f"{a1_name}.meshd") == [eps["a1"]["ip"]],
                 timeout_s=20)
    assert lookup(b3.id, f"{a1_name}.meshd")[1].count("NXDOMAIN"), "another tenant's name must not resolve"

    # a service published on h1 resolves on every host of its tenant; the other tenant resolves its own
    t0 = time.monotonic()
    cluster.query("h2", MsgType.SERVICE_PUBLISH, name="web", container_id=a1.id, port=8080, ttl_s=4)
    cluster.wait("web resolves on h2 and h3", lambda: addresses(a2.id, "web.meshd") == [eps["a1"]["ip"]]
                 and addresses(a3.id, "web.meshd") == [eps["a1"]["ip"]], timeout_s=20)
    print(f"publish -> resolvable on h2 and h3 in {time.monotonic() - t0:.2f} s")
    code, out = lookup(b3.id, "web.meshd")
    assert "NXDOMAIN" in out, out
    cluster.query("h3", MsgType.SERVICE_PUBLISH, name="web", container_id=b1.id, port=9090)
    cluster.wait("b's web resolves to b1", lambda: addresses(b3.id, "web.meshd") == [eps["b1"]["ip"]], timeout_s=20)
    assert addresses(a3.id, "web.meshd") == [eps["a1"]["ip"]]
    code, out = lookup(a3.id, "_web._tcp.meshd", "SRV")
    assert "8080" in out and "9090" not in out, out
    code, out = lookup(a3.id, ".".join(reversed(eps["a1"]["ip"].split("."))) + ".in-addr.arpa", "PTR")
    assert f"{a1_name}.blue.meshd" in out, out

    # killing the application (a TCP check) removes the record within TTL + one check interval
    subprocess.run(["docker", "exec", "-d", a2.id, "nc", "-ll", "-p", "7000", "-e", "/bin/cat"], check=True,
                   timeout=30)
    cluster.query("h1", MsgType.SERVICE_PUBLISH, name="api", container_id=a2.id, port=7000, check="tcp",
                  interval_s=1, ttl_s=2)
    cluster.wait("api resolves", lambda: addresses(a1.id, "api.meshd") == [eps["a2"]["ip"]], timeout_s=20)
    subprocess.run(["docker", "exec", a2.id, "killall", "nc"], check=True, timeout=30)
    t0 = time.monotonic()
    cluster.wait("api gone after the application died", lambda: addresses(a1.id, "api.meshd") == [],
                 timeout_s=2 + 1 + 5)
    print(f"application death -> record gone in {time.monotonic() - t0:.2f} s")
    rows = cluster.query("h1", MsgType.SERVICE_QUERY, name="api")["services"]
    assert [r["healthy"] for r in rows] == [False]

    # h3 fails: its records leave DNS within failure detection, and the state after their TTL
    cluster.query("h1", MsgType.SERVICE_PUBLISH, name="db", container_id=a3.id, port=5432, ttl_s=3)
    cluster.wait("db resolves", lambda: addresses(a1.id, "db.meshd") == [eps["a3"]["ip"]], timeout_s=20)
    cluster.kill("h3")
    lab.cut("h3")
    t0 = time.monotonic()
    cluster.wait("db out of DNS on h1", lambda: addresses(a1.id, "db.meshd") == [], timeout_s=20)
    print(f"host failure -> record out of DNS in {time.monotonic() - t0:.2f} s")
    rows = cluster.query("h1", MsgType.SERVICE_QUERY, name="db")["services"]
    assert all(r["live"] is False for r in rows), rows  # marked down until the leader removes it
    cluster.wait("db removed by the leader after its TTL",
                 lambda: cluster.query("h1", MsgType.SERVICE_QUERY, name="db")["services"] == [], timeout_s=30)
    assert addresses(a1.id, "web.meshd") == [eps["a1"]["ip"]]


def test_labelled_container_is_published_and_removed_with_the_container(make_cluster):
    lab, cluster = make_cluster(hosts=2)
    cluster.query("h1", MsgType.NETWORK_CREATE, name="web", subnet="10.9.0.0/24", tenant="t")
    args = ["docker", "run", "-d", "--network", "none", "--name", f"{lab.prefix}-svc",
            "--label", f"meshd.lab.prefix={lab.prefix}", "--label", "meshd.lab.host=h1",
            "--label", "meshd.network=web", "--label", "meshd.service=shop", "--label", "meshd.port=8000",
            "meshd-busybox:latest", "sleep", "3600"]
    cid = subprocess.run(args, capture_output=True, text=True, check=True).stdout.strip()
    client = lab.container("h2", "client")
    _connect(cluster, client, "web")
    rows = cluster.wait("shop published from labels",
                        lambda: cluster.query("h2", MsgType.SERVICE_QUERY, name="shop")["services"], timeout_s=30)
    assert (rows[0]["endpoint_id"], rows[0]["port"]) == (cid, 8000)
    cluster.wait("shop resolves on h2", lambda: addresses(client.id, "shop.meshd") == [rows[0]["ip"]], timeout_s=20)
    subprocess.run(["docker", "rm", "-f", cid], check=True, capture_output=True)
    cluster.wait("shop gone with its container", lambda: addresses(client.id, "shop.meshd") == []
                 and not cluster.query("h2", MsgType.SERVICE_QUERY, name="shop")["services"], timeout_s=30)

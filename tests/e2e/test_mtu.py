"""Network MTUs against the members' underlays, with real agents (issue 12 item 2).

The path-MTU self-check (a full-size frame to each remote VTEP) is tested
on the reconciler in tests/integration/netops; here: the MTU each agent
advertises in gossip refuses a network that some member cannot carry, and a
member that joins with a smaller underlay is reported.
"""

from __future__ import annotations

from meshd.api import ApiError, MsgType
from tests.e2e.test_requests import _error


def _mtu_problems(cluster, host: str) -> list[dict]:
    return cluster.query(host, MsgType.QUERY_STATUS)["reconcile"]["mtu_problems"]


def test_network_mtus_follow_the_smallest_member_underlay(make_cluster):
    lab, cluster = make_cluster(hosts=2, started=1)
    lab.exec("h2", "ip", "link", "set", "dev", lab.host("h2").underlay_dev, "mtu", "1400")
    with cluster.scheduler("h1") as api:
        code, message = _error(api, MsgType.NETWORK_CREATE, name="jumbo", subnet="10.9.0.0/24", mtu=9000)
        assert code == ApiError.MTU_TOO_LARGE and "h1" in message and "--mtu 1450" in message, message
        api.request(MsgType.NETWORK_CREATE, name="blue", subnet="10.1.0.0/24")  # 1450: h1 carries it
    assert _mtu_problems(cluster, "h1") == []

    cluster.start("h2", join=["192.0.2.11"])  # its underlay carries 1400 - 50 = 1350 at most
    cluster.wait_members("h1", 2)
    problems = cluster.wait("h1 reports h2's underlay", lambda: _mtu_problems(cluster, "h1"))
    assert [(p["host"], p["underlay_mtu"], p["networks"], p["largest_mtu"]) for p in problems] == \
        [("h2", 1400, ["blue"], 1350)]
    assert "--mtu 1350" in problems[0]["text"]
    members = {m["name"]: m for m in cluster.query("h1", MsgType.QUERY_MEMBERS)["members"]}
    assert (members["h1"]["underlay_mtu"], members["h2"]["underlay_mtu"]) == (1500, 1400)

    with cluster.scheduler("h2") as api:
        code, message = _error(api, MsgType.NETWORK_CREATE, name="red", subnet="10.2.0.0/24")
        assert code == ApiError.MTU_TOO_LARGE and "h2" in message and "--mtu 1350" in message, message
        code, _ = _error(api, MsgType.NETWORK_UPDATE, name="blue", mtu=1400)
        assert code == ApiError.MTU_TOO_LARGE
        api.request(MsgType.NETWORK_UPDATE, name="blue", mtu=1350)
    cluster.wait("the problem is gone once blue fits", lambda: _mtu_problems(cluster, "h1") == [])
    assert cluster.query("h1", MsgType.NETWORK_LIST)["networks"][0]["mtu"] == 1350

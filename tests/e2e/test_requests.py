"""Scheduler requests against real agents: names from any host, unknown hosts, refusals without log entries."""

from __future__ import annotations

from meshd.api import STATE_ERROR_OFFSET, ApiError, MsgType
from meshd.api.client import ApiRequestError
from meshd.state import ErrorCode
from tests.e2e.conftest import container_addr


def _raft_last(cluster, host: str) -> int:
    return cluster.query(host, MsgType.QUERY_STATUS)["raft"]["last_index"]


def _error(api, msg_type: MsgType, **fields) -> tuple[int, str]:
    try:
        api.request(msg_type, **fields)
    except ApiRequestError as exc:
        return exc.code, exc.message
    raise AssertionError(f"{msg_type.name} {fields} was accepted")


def test_names_work_from_any_host_and_refusals_cost_no_log_entry(make_cluster):
    # metrics off on every agent: the reconcile pass and attaches must not need them (issue 12, item 10)
    lab, cluster = make_cluster(hosts=2, extra_args=("--set", "api.metrics_port=0"))
    web = lab.container("h1", "web")
    with cluster.scheduler("h2") as api:
        api.request(MsgType.NETWORK_CREATE, name="blue", subnet="10.1.0.0/24")
    with cluster.scheduler("h1") as api:  # right after the create, through another host: its replica may lag
        ep = api.request(MsgType.ENDPOINT_CONNECT, container_id=web.docker_name, network="blue")
    assert ep["endpoint_id"] == web.id  # h1's Docker resolved the name
    cluster.wait("web is up", lambda: (a := container_addr(web.id)) and a[0].startswith(ep["ip"] + "/"))

    with cluster.scheduler("h2") as api:  # h2's Docker does not know web: the replicated name does
        [row] = api.request(MsgType.QUERY_ENDPOINTS, network="blue")["endpoints"]
        assert (row["name"], row["endpoint_id"], row["running"]) == (web.docker_name, web.id, None)
        api.request(MsgType.QOS_SET, container_id=web.docker_name, network="blue", bandwidth_kbit=2000,
                    burst_bytes=8192)
        code, message = _error(api, MsgType.ENDPOINT_CONNECT, container_id="x1", network="blue", host="h9")
        assert code == ApiError.UNKNOWN_HOST and "h1" in message and "h2" in message
    [row] = cluster.query("h1", MsgType.QUERY_ENDPOINTS, network="blue")["endpoints"]
    assert row["qos"]["rate_kbit"] == 2000 and row["running"] is True

    def raft_members() -> list[str]:
        r = cluster.query("h1", MsgType.QUERY_STATUS)["raft"]
        return r["voters"] + r["learners"]

    cluster.wait("h2 in the Raft configuration (no membership entry to come)", lambda: "h2" in raft_members())
    before = {h: _raft_last(cluster, h) for h in ("h1", "h2")}
    with cluster.scheduler("h2") as api:
        for n in range(50):  # a misbehaving scheduler: none of these may grow any host's log
            code, _ = _error(api, MsgType.ENDPOINT_CONNECT, container_id=f"c{n}", network="nope", host="h1",
                             host_expected=True)
            assert code == STATE_ERROR_OFFSET + ErrorCode.UNKNOWN_NETWORK
        code, message = _error(api, MsgType.ENDPOINT_CONNECT, container_id="c", network="blue", host="h1",
                               ip=ep["ip"], host_expected=True)
        assert code == STATE_ERROR_OFFSET + ErrorCode.IP_TAKEN and web.id in message
    assert {h: _raft_last(cluster, h) for h in ("h1", "h2")} == before

    with cluster.scheduler("h2") as api:
        gone = api.request(MsgType.ENDPOINT_DISCONNECT, container_id=web.id[:8], network="blue")
    assert gone["endpoint_id"] == web.id

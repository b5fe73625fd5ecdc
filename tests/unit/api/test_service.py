"""SchedulerService over a real NetworkState: replies, errors, de-duplication."""

import msgpack
import pytest
import trio

from meshd import state as st
from meshd.api import RESPONSE_FLAG, STATE_ERROR_OFFSET, ApiError, MsgType, pack, unpack


async def call(service, msg_type, require_request_id=True, **fields):
    reply = await service.handle(pack(msg_type, fields), require_request_id=require_request_id)
    reply_type, body = unpack(reply, max_bytes=1 << 20)
    assert reply_type == msg_type | RESPONSE_FLAG
    return body


async def test_create_connect_query(service):
    body = await call(service, MsgType.NETWORK_CREATE, request_id="r1", name="blue", subnet="10.1.0.0/24")
    assert body["ok"] and body["request_id"] == "r1"
    assert body["result"]["gateway"] == "10.1.0.1" and body["result"]["vni"] >= 1
    body = await call(service, MsgType.ENDPOINT_CONNECT, request_id="r2", container_id="c1", network="blue",
                      bandwidth_kbit=10_000, burst_bytes=16_000, latency_ms=50)
    assert body["ok"], body
    ep = body["result"]
    assert ep["host"] == "h1" and ep["ip"].startswith("10.1.0.") and ep["ip"] != "10.1.0.1"
    nets = (await call(service, MsgType.NETWORK_LIST, request_id="q1"))["result"]["networks"]
    assert [(n["name"], n["used"]) for n in nets] == [("blue", 1)]
    eps = (await call(service, MsgType.QUERY_ENDPOINTS, request_id="q2", host="h1"))["result"]["endpoints"]
    assert eps[0]["qos"] == {"rate_kbit": 10_000, "burst_bytes": 16_000, "latency_ms": 50}


async def test_state_errors_carry_offset_code_and_message(service):
    body = await call(service, MsgType.ENDPOINT_CONNECT, request_id="r", container_id="c1", network="nope")
    assert not body["ok"]
    assert body["error"]["code"] == STATE_ERROR_OFFSET + st.ErrorCode.UNKNOWN_NETWORK
    assert "nope" in body["error"]["message"]
    body = await call(service, MsgType.NETWORK_CREATE, request_id="r2", name="x", subnet="10.0.0.0/33")
    assert body["error"]["code"] == STATE_ERROR_OFFSET + st.ErrorCode.INVALID_CIDR


@pytest.mark.parametrize("msg_type,fields,code,fragment", [
    (MsgType.NETWORK_CREATE, {"request_id": "r", "subnet": "10.0.0.0/24"}, ApiError.MISSING_FIELD,
     "NETWORK_CREATE: field 'name' is required: give a string of 1..64 characters"),
    (MsgType.NETWORK_CREATE, {"request_id": "r", "name": 5, "subnet": "x"}, ApiError.WRONG_TYPE,
     "NETWORK_CREATE: field 'name' must be a string of 1..64 characters, got an integer"),
    (MsgType.NETWORK_CREATE, {"request_id": "r", "name": "a", "subnet": "x", "netwrok": 1}, ApiError.UNKNOWN_FIELD,
     "field 'netwrok' is unknown: use only name, subnet, tenant, gateway"),
    (MsgType.NETWORK_CREATE, {"request_id": "r", "name": "a", "subnet": "10.9.0.0/24", "mode": "ovs"},
     ApiError.INVALID_VALUE, "field 'mode' has an unknown value: use one of 'vxlan', 'routed', 'flat', 'dhcp'"),
    (MsgType.NETWORK_CREATE, {"request_id": "r", "name": "a", "subnet": "10.9.0.0/24", "vni": 0},
     ApiError.INVALID_VALUE, "field 'vni' is out of range: use an integer in 1..16777215 (or nil)"),
    (MsgType.ENDPOINT_CONNECT, {"request_id": "r", "container_id": "c", "network": "n", "bandwidth_kbit": -1},
     ApiError.INVALID_VALUE, "field 'bandwidth_kbit' is out of range: use an integer in 0..100000000"),
    (MsgType.ENDPOINT_CONNECT, {"request_id": "r", "container_id": "c", "network": "n", "delay_ms": 20},
     ApiError.INVALID_VALUE, "needs the netem qdisc"),
    (MsgType.POLICY_ADD, {"request_id": "r", "kind": "allow-all", "network": "n"}, ApiError.INVALID_VALUE,
     "POLICY_ADD: field 'kind' has an unknown value: use one of 'isolate-within', "),
    (MsgType.ENDPOINT_CONNECT, {"request_id": "r", "container_id": "ghost", "network": "n"},
     ApiError.UNKNOWN_CONTAINER, "ghost"),
    (777, {"request_id": "r"}, ApiError.UNKNOWN_TYPE, "unknown request type 777"),
    (MsgType.CONTROL_JOIN, {"request_id": "r", "addresses": ["192.0.2.11"]},
     ApiError.NOT_ALLOWED, "control socket only"),
    (MsgType.CONTROL_JOIN, {"request_id": "r", "addresses": []}, ApiError.INVALID_VALUE,
     "field 'addresses' is empty: use an array of 1..64 strings of 1..255 characters"),
    (MsgType.NETWORK_LIST, {}, ApiError.MISSING_FIELD, "'request_id' is required"),
])  # fmt: skip
async def test_request_errors_name_the_field(service, backend, msg_type, fields, code, fragment):
    backend.unknown.add("ghost")
    body = await call(service, msg_type, **fields)
    assert not body["ok"] and body["error"]["code"] == code, body
    assert fragment in body["error"]["message"]
    assert body["request_id"] == fields.get("request_id", "")
    assert backend.executed == []  # nothing half-done


async def test_garbage_never_raises(service):
    for frame in [b"", b"\x00" * 8, b"\xff" * 8 + b"\x00", pack(1, {})[:-1], b"\x00\x00\x00\x01\x00\x00\x00\x01\xc1"]:
        _, body = unpack(await service.handle(frame), max_bytes=1 << 20)
        assert body["ok"] is False and body["error"]["code"] in {int(c) for c in ApiError}


async def test_repeated_request_id_returns_the_first_result(service, backend):
    await call(service, MsgType.NETWORK_CREATE, request_id="n", name="blue", subnet="10.1.0.0/24")
    first = await call(service, MsgType.ENDPOINT_CONNECT, request_id="same", container_id="c1", network="blue")
    again = await call(service, MsgType.ENDPOINT_CONNECT, request_id="same", container_id="c1", network="blue")
    assert again == first
    assert sum(isinstance(c, st.Connect) for c in backend.executed) == 1
    assert backend.state().network("blue").used == 1


async def test_concurrent_duplicates_execute_once(service, backend):
    await call(service, MsgType.NETWORK_CREATE, request_id="n", name="blue", subnet="10.1.0.0/24")
    replies = []

    async def one():
        replies.append(await call(service, MsgType.ENDPOINT_CONNECT, request_id="dup", container_id="c9",
                                  network="blue"))

    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(one)
    assert len({msgpack.packb(r) for r in replies}) == 1
    assert sum(isinstance(c, st.Connect) for c in backend.executed) == 1


async def test_sub_requests_need_no_request_id(service):
    body = await call(service, MsgType.NETWORK_CREATE, require_request_id=False, name="red", subnet="10.2.0.0/24")
    assert body["ok"]


async def test_a_connect_on_the_owning_host_waits_for_the_interface(service, backend):
    await call(service, MsgType.NETWORK_CREATE, request_id="n", name="blue", subnet="10.1.0.0/24")
    seen = []

    async def broken(endpoint_id, vni):
        seen.append((endpoint_id, vni))
        return "cannot move veth mv1 into netns of PID 7: no such process"

    backend.wait_endpoint_up = broken
    body = await call(service, MsgType.ENDPOINT_CONNECT, request_id="c", container_id="c1", network="blue")
    assert body["error"]["code"] == ApiError.INTERFACE_FAILED
    assert "10.1.0.2" in body["error"]["message"] and "no such process" in body["error"]["message"]
    assert seen == [("c1", 1)]

    async def fine(endpoint_id, vni):
        return None

    backend.wait_endpoint_up = fine  # the retry (same request_id) runs again and now succeeds
    body = await call(service, MsgType.ENDPOINT_CONNECT, request_id="c", container_id="c1", network="blue")
    assert body["ok"] and body["result"]["ip"] == "10.1.0.2"
    other = await call(service, MsgType.ENDPOINT_CONNECT, request_id="r", container_id="c2", network="blue",
                       host="h2")
    assert other["ok"]  # another host's container: answered when committed


async def test_containers_are_named_by_id_unique_prefix_or_name_everywhere(service):
    await call(service, MsgType.NETWORK_CREATE, request_id="n", name="blue", subnet="10.1.0.0/24")
    for cid, name in (("abc123" + "0" * 58, "web"), ("abd999" + "0" * 58, "db")):
        assert (await call(service, MsgType.ENDPOINT_CONNECT, request_id=f"c-{name}", container_id=cid,
                           network="blue", container_name=name))["ok"]
    eps = (await call(service, MsgType.QUERY_ENDPOINTS, request_id="q"))["result"]["endpoints"]
    assert sorted((e["name"], e["running"]) for e in eps) == [("db", True), ("web", True)]
    body = await call(service, MsgType.QOS_SET, request_id="qos", container_id="web", network="blue",
                      bandwidth_kbit=1000, burst_bytes=4000, latency_ms=10)
    assert body["ok"], body
    body = await call(service, MsgType.QOS_SET, request_id="qos2", container_id="ab", network="blue")
    assert body["error"]["code"] == ApiError.INVALID_VALUE and "'ab' names 2 containers" in body["error"]["message"]
    assert (await call(service, MsgType.ENDPOINT_MOVE, request_id="mv", container_id="abd9", host="h2"))["ok"]
    body = await call(service, MsgType.ENDPOINT_DISCONNECT, request_id="d", container_id="web", network="blue")
    assert body["ok"] and body["result"]["endpoint_id"].startswith("abc123")


async def test_a_host_that_is_no_member_is_refused_unless_expected(service, backend):
    await call(service, MsgType.NETWORK_CREATE, request_id="n", name="blue", subnet="10.1.0.0/24")
    body = await call(service, MsgType.ENDPOINT_CONNECT, request_id="c", container_id="c1", network="blue",
                      host="h9")
    assert body["error"]["code"] == ApiError.UNKNOWN_HOST and "h9" in body["error"]["message"]
    assert backend.executed == [backend.executed[0]]  # nothing allocated for it
    body = await call(service, MsgType.ENDPOINT_CONNECT, request_id="c2", container_id="c1", network="blue",
                      host="h9", host_expected=True)
    assert body["ok"] and body["result"]["host"] == "h9"


async def test_a_rate_alone_gets_the_same_defaults_as_labels_and_the_cli(service):
    await call(service, MsgType.NETWORK_CREATE, request_id="n", name="blue", subnet="10.1.0.0/24")
    body = await call(service, MsgType.ENDPOINT_CONNECT, request_id="c", container_id="c1", network="blue",
                      bandwidth_kbit=10_000)
    assert body["ok"], body
    [ep] = (await call(service, MsgType.QUERY_ENDPOINTS, request_id="q"))["result"]["endpoints"]
    assert ep["qos"] == {"rate_kbit": 10_000, "burst_bytes": st.default_burst_bytes(10_000),
                         "latency_ms": st.DEFAULT_LATENCY_MS}


async def test_a_network_mtu_some_underlay_cannot_carry_is_refused_before_any_commit(service, backend):
    backend.underlays = {"h1": 1500, "h2": 1400, "h3": 0}  # h3: an agent that does not say
    body = await call(service, MsgType.NETWORK_CREATE, request_id="r1", name="jumbo", subnet="10.9.0.0/24", mtu=9000)
    assert not body["ok"] and body["error"]["code"] == ApiError.MTU_TOO_LARGE
    message = body["error"]["message"]
    assert "h2" in message and "1400" in message and "--mtu 1350" in message, message
    assert backend.executed == []
    body = await call(service, MsgType.NETWORK_CREATE, request_id="r2", name="blue", subnet="10.1.0.0/24")
    assert not body["ok"] and "--mtu 1350" in body["error"]["message"]  # the default 1450 is too large here too
    assert (await call(service, MsgType.NETWORK_CREATE, request_id="r3", name="blue", subnet="10.1.0.0/24",
                       mtu=1350))["ok"]
    body = await call(service, MsgType.NETWORK_UPDATE, request_id="r4", name="blue", mtu=1351)
    assert not body["ok"] and body["error"]["code"] == ApiError.MTU_TOO_LARGE
    assert (await call(service, MsgType.NETWORK_UPDATE, request_id="r5", name="blue", egress_kbit=1000))["ok"]
    assert [type(c).__name__ for c in backend.executed] == ["CreateNetwork", "UpdateNetwork"]


async def test_a_mode_some_members_kernel_cannot_build_is_refused_before_any_commit(service, backend):
    backend.dataplanes = {"h1": ("bridge", "macvlan", "veth", "vxlan"), "h2": ("bridge", "veth", "macvlan"),
                          "h3": ()}  # h2's kernel has no vxlan; h3: an agent that does not say
    body = await call(service, MsgType.NETWORK_CREATE, request_id="r1", name="blue", subnet="10.1.0.0/24")
    assert not body["ok"] and body["error"]["code"] == ApiError.MODE_UNSUPPORTED
    message = body["error"]["message"]
    assert "'blue' (mode vxlan) cannot be built on host h2" in message and "module vxlan" in message, message
    assert backend.executed == []
    backend.dataplanes["h2"] = ("bridge", "veth", "vxlan")
    assert (await call(service, MsgType.NETWORK_CREATE, request_id="r2", name="blue", subnet="10.1.0.0/24"))["ok"]
    body = await call(service, MsgType.NETWORK_CREATE, request_id="r3", name="lan", subnet="10.2.0.0/24",
                      mode="vlan")
    assert body["error"]["code"] == ApiError.MODE_UNSUPPORTED and "module 8021q" in body["error"]["message"]
    # a connect or a move to a host that cannot build the network's mode
    backend.dataplanes["h2"] = ("bridge", "veth")
    body = await call(service, MsgType.ENDPOINT_CONNECT, request_id="c1", container_id="c1", network="blue",
                      host="h2")
    assert body["error"]["code"] == ApiError.MODE_UNSUPPORTED and "host h2" in body["error"]["message"]
    assert (await call(service, MsgType.ENDPOINT_CONNECT, request_id="c2", container_id="c1", network="blue"))["ok"]
    body = await call(service, MsgType.ENDPOINT_MOVE, request_id="m1", container_id="c1", host="h2")
    assert body["error"]["code"] == ApiError.MODE_UNSUPPORTED, body
    assert [type(c).__name__ for c in backend.executed] == ["CreateNetwork", "Connect"]

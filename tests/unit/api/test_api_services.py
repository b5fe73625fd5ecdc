"""SERVICE_PUBLISH / SERVICE_UNPUBLISH / SERVICE_QUERY over a real NetworkState."""

from meshd import state as st
from meshd.api import RESPONSE_FLAG, STATE_ERROR_OFFSET, ApiError, MsgType, pack, unpack


async def call(service, msg_type, **fields):
    reply = await service.handle(pack(msg_type, fields))
    reply_type, body = unpack(reply, max_bytes=1 << 20)
    assert reply_type == msg_type | RESPONSE_FLAG
    return body


async def _setup(service):
    for rid, name, subnet in (("n1", "blue", "10.1.0.0/24"), ("n2", "green", "10.3.0.0/24")):
        assert (await call(service, MsgType.NETWORK_CREATE, request_id=rid, name=name, subnet=subnet))["ok"]
    for rid, cid, net in (("c1", "c1", "blue"), ("c2", "c2", "blue"), ("c3", "c2", "green")):
        assert (await call(service, MsgType.ENDPOINT_CONNECT, request_id=rid, container_id=cid, network=net))["ok"]


async def test_publish_query_unpublish(service):
    await _setup(service)
    body = await call(service, MsgType.SERVICE_PUBLISH, request_id="p1", name="web", container_id="c1", port=80)
    assert body["ok"], body
    assert body["result"] == {"name": "web", "network": "blue", "endpoint_id": "c1", "ip": "10.1.0.2", "port": 80}
    body = await call(service, MsgType.SERVICE_PUBLISH, request_id="p2", name="web", container_id="c2", port=81,
                      network="blue", check="tcp", ttl_s=9)
    assert body["ok"], body
    rows = (await call(service, MsgType.SERVICE_QUERY, request_id="q"))["result"]["services"]
    assert [(r["endpoint_id"], r["port"], r["check"], r["healthy"], r["live"]) for r in rows] == [
        ("c1", 80, "running", True, None), ("c2", 81, "tcp", True, None)]
    body = await call(service, MsgType.SERVICE_UNPUBLISH, request_id="u1", name="web", container_id="c1")
    assert body["ok"] and body["result"]["removed"] == 1
    body = await call(service, MsgType.SERVICE_UNPUBLISH, request_id="u2", name="web")
    assert body["ok"] and body["result"]["removed"] == 1
    assert (await call(service, MsgType.SERVICE_QUERY, request_id="q2"))["result"]["services"] == []


async def test_errors_name_the_fix(service):
    await _setup(service)
    body = await call(service, MsgType.SERVICE_PUBLISH, request_id="e1", name="web", container_id="c2", port=80)
    assert body["error"]["code"] == ApiError.INVALID_VALUE and "give network" in body["error"]["message"]
    body = await call(service, MsgType.SERVICE_PUBLISH, request_id="e2", name="web", container_id="c1", port=0)
    assert body["error"]["code"] == ApiError.INVALID_VALUE and "port" in body["error"]["message"]
    body = await call(service, MsgType.SERVICE_PUBLISH, request_id="e3", name="we_b", container_id="c1", port=80)
    assert body["error"]["code"] == STATE_ERROR_OFFSET + st.ErrorCode.INVALID_FIELD
    body = await call(service, MsgType.SERVICE_UNPUBLISH, request_id="e4", name="nope", network="blue")
    assert body["error"]["code"] == STATE_ERROR_OFFSET + st.ErrorCode.UNKNOWN_SERVICE
    body = await call(service, MsgType.SERVICE_PUBLISH, request_id="e5", name="web", container_id="c1", port=80,
                      check="http")
    assert body["error"]["code"] == STATE_ERROR_OFFSET + st.ErrorCode.INVALID_FIELD

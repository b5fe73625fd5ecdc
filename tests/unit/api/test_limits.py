"""Bounded API inputs: every field has a limit, a refused request names the field and commits
nothing, the replay cache stays within its byte bound whatever ids clients send."""

import re
import tracemalloc
from pathlib import Path

import msgspec
import pytest

from meshd import state as st
from meshd.api import ApiError, MsgType, SchedulerService, pack, parse_request, request_types, unpack
from meshd.api import _requests as rq
from meshd.api._service import ReplayCache
from meshd.api.client import ApiRequestError, SchedulerClient

API_MD = (Path(__file__).parents[3] / "docs" / "api.md").read_text()


async def call(service, msg_type, **fields):
    _, body = unpack(await service.handle(pack(msg_type, fields)), max_bytes=1 << 20)
    return body


def test_every_string_integer_list_and_map_of_every_request_is_bounded():
    def bounded(t):
        i = msgspec.inspect
        if isinstance(t, i.UnionType):
            return all(bounded(x) for x in t.types)
        if isinstance(t, i.IntType):
            return t.ge is not None and t.le is not None
        if isinstance(t, (i.StrType, i.ListType, i.DictType)):
            inner = [t.item_type] if isinstance(t, i.ListType) else [t.key_type, t.value_type] if isinstance(
                t, i.DictType) else []
            return t.max_length is not None and all(bounded(x) for x in inner)
        return isinstance(t, (i.NoneType, i.BoolType, i.EnumType))

    for cls in request_types().values():
        for f in msgspec.inspect.type_info(cls).fields:
            assert bounded(f.type), (cls.__name__, f.name, f.type)


def test_the_limits_table_in_the_docs_matches_the_code():
    table = API_MD[API_MD.index("### Limits"):]
    rows = {
        "`request_id`": rq.MAX_REQUEST_ID, "network and tenant names": rq.MAX_NAME, "ids": rq.MAX_ID,
        "`container_name`": rq.MAX_CONTAINER_NAME, "addresses": rq.MAX_ADDRESS, "`mac`": rq.MAX_MAC,
        "`pid`": rq.PID_MAX, "`bandwidth_kbit`": st.RATE_MAX_KBIT, "`burst_bytes`": st.BURST_MAX_BYTES,
        "`latency_ms`": st.LATENCY_MAX_MS, "`labels`": rq.MAX_LABELS, "`addresses`": rq.MAX_JOIN_ADDRESSES,
        "`mtu`": st.MTU_MAX, "`vni`": st.VNI_MAX,
    }  # fmt: skip
    for what, limit in rows.items():
        line = next((ln for ln in table.splitlines() if ln.startswith("|") and what in ln), None)
        assert line is not None, f"docs/api.md Limits has no row for {what}"
        assert f"{limit:,}" in line or str(limit) in line, (what, limit, line)


@pytest.mark.parametrize("msg_type,fields,field,fragment", [
    (MsgType.NETWORK_LIST, {"request_id": "x" * 60_000}, "request_id", "is too long: use a string of at most 128"),
    (MsgType.ENDPOINT_CONNECT, {"container_id": "c", "network": "n", "container_name": "n" * 256},
     "container_name", "is too long: use a string of at most 255 characters"),
    (MsgType.ENDPOINT_CONNECT, {"container_id": "c" * 129, "network": "n"}, "container_id", "1..128 characters"),
    (MsgType.ENDPOINT_CONNECT, {"container_id": "c", "network": "n", "bandwidth_kbit": 2**64 - 1},
     "bandwidth_kbit", "is out of range: use an integer in 0..100000000"),
    (MsgType.ENDPOINT_CONNECT, {"container_id": "c", "network": "n", "pid": 2**40}, "pid", "0..4194304"),
    (MsgType.QOS_SET, {"container_id": "c", "network": "n", "burst_bytes": 2**32}, "burst_bytes", "0..4294967295"),
    (MsgType.NETWORK_CREATE, {"name": "a", "subnet": "10.0.0.0/24", "mtu": 65_000}, "mtu", "68..9000"),
    (MsgType.NETWORK_CREATE, {"name": "a", "subnet": "10.0.0.0/24", "labels": {str(i): "" for i in range(65)}},
     "labels", "has too many entries: use a map of at most 64 entries"),
    (MsgType.NETWORK_CREATE, {"name": "a", "subnet": "10.0.0.0/24", "labels": {"k" * 64: "v"}},
     "labels", "has a key that is too long: use a map of at most 64 entries, keys of 1..63 characters"),
    (MsgType.NETWORK_UPDATE, {"name": "a", "labels": {"k": "v" * 256}}, "labels", "has an entry that is too long"),
    (MsgType.POLICY_ADD, {"kind": "deny-all", "network": "n", "policy_id": ""}, "policy_id", "is too short"),
    (MsgType.CONTROL_JOIN, {"addresses": ["h"] * 65}, "addresses", "has too many entries: use an array of 1..64"),
])  # fmt: skip
async def test_an_oversize_field_is_refused_by_name_and_nothing_is_committed(
        backend, msg_type, fields, field, fragment):
    service = SchedulerService(backend, control=True)  # the default 64 KiB frames: room for a 60 KB id
    body = await call(service, msg_type, **{"request_id": "r1", **fields})
    assert not body["ok"] and body["error"]["code"] == ApiError.INVALID_VALUE, body
    message = body["error"]["message"]
    assert message.startswith(f"{MsgType(msg_type).name}: field '{field}' ") and fragment in message, message
    assert "\n" not in message and len(message) < 300
    assert body["request_id"] == ("" if field == "request_id" else "r1")  # an unusable id is not echoed
    assert backend.executed == [] and backend.state().last_index == 0
    assert len(service.replays) == 0


def test_every_limit_accepts_its_largest_value():
    parse_request(MsgType.ENDPOINT_CONNECT, {
        "request_id": "r" * rq.MAX_REQUEST_ID, "container_id": "c" * rq.MAX_ID, "network": "n" * rq.MAX_NAME,
        "container_name": "x" * rq.MAX_CONTAINER_NAME, "pid": rq.PID_MAX, "host": "h" * rq.MAX_ID,
        "ip": "1" * rq.MAX_ADDRESS, "mac": "0" * rq.MAX_MAC, "bandwidth_kbit": st.RATE_MAX_KBIT,
        "burst_bytes": st.BURST_MAX_BYTES, "latency_ms": st.LATENCY_MAX_MS})  # fmt: skip
    parse_request(MsgType.NETWORK_CREATE, {
        "name": "n", "subnet": "s", "vni": st.VNI_MAX, "mtu": st.MTU_MAX,
        "labels": {f"{i:0{rq.MAX_LABEL_KEY}}": "v" * rq.MAX_LABEL_VALUE for i in range(rq.MAX_LABELS)}})


def test_the_client_refuses_what_msgpack_cannot_carry_with_the_same_error(tmp_path):
    import socket

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # something listens; nothing may be sent to it
    listener.bind(str(tmp_path / "control.sock"))
    listener.listen()
    client = SchedulerClient.local(str(tmp_path), timeout_s=0.1)
    try:
        with pytest.raises(ApiRequestError) as info:
            client.request(MsgType.ENDPOINT_CONNECT, container_id="c", network="n",
                           bandwidth_kbit=999999999999999999999)
    finally:
        client.close()
        listener.close()
    assert info.value.code == ApiError.INVALID_VALUE
    assert info.value.message == ("ENDPOINT_CONNECT: field 'bandwidth_kbit' is out of range: "
                                  "use an integer in 0..100000000")


async def test_the_replay_cache_stays_within_its_bytes_with_many_maximal_ids(backend):
    service = SchedulerService(backend, replay_entries=10_000, replay_bytes=256 << 10)
    await call(service, MsgType.NETWORK_CREATE, request_id="net", name="blue", subnet="10.1.0.0/24")
    for i in range(3000):  # each fails in the state (no such network): a final, cached reply
        rid = f"{i:0{rq.MAX_REQUEST_ID}d}"
        body = await call(service, MsgType.ENDPOINT_CONNECT, request_id=rid, container_id="c" * rq.MAX_ID,
                          network="nope")
        assert body["error"]["code"] == 1000 + st.ErrorCode.UNKNOWN_NETWORK
        assert service.replays.bytes <= 256 << 10
    per_entry = service.replays.bytes / len(service.replays)
    assert len(service.replays) == (256 << 10) // per_entry  # evicted by bytes, oldest first
    assert f"{2999:0{rq.MAX_REQUEST_ID}d}" in service.replays and "0" * rq.MAX_REQUEST_ID not in service.replays
    stats = service.statistics()
    assert (stats["replay_entries"], stats["replay_bytes"]) == (len(service.replays), service.replays.bytes)


def test_the_replay_cache_counts_what_the_process_really_holds():
    cache = ReplayCache(max_entries=100_000, max_bytes=1 << 40)
    replies = [bytes(300) + i.to_bytes(4, "big") for i in range(20_000)]
    ids = [f"{i:0128d}" for i in range(20_000)]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for rid, reply in zip(ids, replies, strict=True):
        cache.put(rid, reply)
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    # ids and replies were allocated before; the cache's own structures are its overhead
    overhead = grown / len(cache)
    assert overhead <= ReplayCache.ENTRY_OVERHEAD_BYTES * 1.25, overhead


def test_the_replay_cache_evicts_by_entries_too_and_replaces_an_id_in_place():
    cache = ReplayCache(max_entries=2, max_bytes=1 << 20)
    for rid in "abc":
        cache.put(rid, rid.encode())
    assert (len(cache), "a" in cache, cache.get("c")) == (2, False, b"c")
    cache.put("c", b"cc")
    assert cache.get("c") == b"cc" and len(cache) == 2
    assert cache.bytes == sum(cache._cost(k, v) for k, v in cache._replies.items())


def test_error_messages_are_one_line_and_name_the_type_and_field():
    for cls in request_types().values():
        for f in msgspec.inspect.type_info(cls).fields:
            code, message = rq.explain(cls, f"Expected `str`, got `int` - at `$.{f.name}`")
            assert code == ApiError.WRONG_TYPE
            assert re.fullmatch(rf"{MsgType(cls.MSG_TYPE).name}: field '{f.name}' must be .+, got an integer", message)

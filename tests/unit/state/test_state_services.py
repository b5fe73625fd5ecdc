"""Services in the state: publish, unpublish, health, cascade on endpoint removal, snapshots."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from meshd.state import (
    CommandError,
    Connect,
    CreateNetwork,
    DeleteNetwork,
    Disconnect,
    ErrorCode,
    NetworkState,
    PublishService,
    RemoveHost,
    ServiceHealthSet,
    ServicePublished,
    ServiceUnpublished,
    SetServiceHealth,
    UnpublishService,
    decode_command,
    encode_command,
    replay,
)


def _base() -> NetworkState:
    return replay([
        CreateNetwork(name="blue", tenant="acme", subnet="10.1.0.0/24"),
        CreateNetwork(name="red", tenant="evil", subnet="10.2.0.0/24"),
        Connect(endpoint_id="aa01", network="blue", host="h1", name="web1"),
        Connect(endpoint_id="aa02", network="blue", host="h2", name="web2"),
        Connect(endpoint_id="bb01", network="red", host="h1", name="web1"),
    ])  # fmt: skip


def _run(state: NetworkState, cmd: object) -> object:
    return state.execute(cmd, state.last_index + 1)


def test_publish_two_entries_and_query_by_tenant() -> None:
    s = _base()
    r = _run(s, PublishService(name="Web", network="blue", endpoint_id="aa01", port=80))
    assert r == ServicePublished(name="web", network="blue", endpoint_id="aa01", ip="10.1.0.2", port=80)
    _run(s, PublishService(name="web", network="blue", endpoint_id="aa02", port=8080, check="tcp"))
    _run(s, PublishService(name="web", network="red", endpoint_id="bb01", port=81))
    acme = s.services(tenant="acme")
    assert [(e.endpoint_id, e.ip, e.port, e.check, e.healthy, e.host) for e in acme] == [
        ("aa01", "10.1.0.2", 80, "running", True, "h1"),
        ("aa02", "10.1.0.3", 8080, "tcp", True, "h2"),
    ]
    assert [e.tenant for e in s.services(tenant="evil")] == ["evil"]
    assert len(s.services(name="WEB")) == 3


def test_publish_rejects_bad_fields_and_unknown_endpoint() -> None:
    s = _base()
    bad = [
        PublishService(name="no_underscore", network="blue", endpoint_id="aa01", port=80),
        PublishService(name="web", network="blue", endpoint_id="aa01", port=0),
        PublishService(name="web", network="blue", endpoint_id="aa01", port=80, ttl_s=0),
        PublishService(name="web", network="blue", endpoint_id="aa01", port=80, check="http"),
    ]
    for cmd in bad:
        r = _run(s, cmd)
        assert isinstance(r, CommandError) and r.code is ErrorCode.INVALID_FIELD, cmd
    r = _run(s, PublishService(name="web", network="blue", endpoint_id="bb01", port=80))
    assert isinstance(r, CommandError) and r.code is ErrorCode.UNKNOWN_ENDPOINT
    assert s.services() == ()


def test_health_changes_and_unknown_service() -> None:
    s = _base()
    _run(s, PublishService(name="web", network="blue", endpoint_id="aa01", port=80))
    r = _run(s, SetServiceHealth(name="web", network="blue", endpoint_id="aa01", healthy=False))
    assert r == ServiceHealthSet(name="web", network="blue", endpoint_id="aa01", healthy=False, changed=True)
    assert not s.services()[0].healthy
    r = _run(s, SetServiceHealth(name="web", network="blue", endpoint_id="aa01", healthy=False))
    assert isinstance(r, ServiceHealthSet) and not r.changed
    # republishing keeps the recorded health
    _run(s, PublishService(name="web", network="blue", endpoint_id="aa01", port=81))
    assert not s.services()[0].healthy and s.services()[0].port == 81
    r = _run(s, SetServiceHealth(name="db", network="blue", endpoint_id="aa01", healthy=True))
    assert isinstance(r, CommandError) and r.code is ErrorCode.UNKNOWN_SERVICE
    assert ErrorCode.UNKNOWN_SERVICE == 29


def test_unpublish_one_or_all() -> None:
    s = _base()
    _run(s, PublishService(name="web", network="blue", endpoint_id="aa01", port=80))
    _run(s, PublishService(name="web", network="blue", endpoint_id="aa02", port=80))
    assert _run(s, UnpublishService(name="web", network="blue", endpoint_id="aa02")) == ServiceUnpublished(
        name="web", network="blue", removed=1
    )
    assert _run(s, UnpublishService(name="web", network="blue")) == ServiceUnpublished(
        name="web", network="blue", removed=1
    )
    r = _run(s, UnpublishService(name="web", network="blue"))
    assert isinstance(r, CommandError) and r.code is ErrorCode.UNKNOWN_SERVICE
    assert s._services == {}


def test_entries_go_with_their_endpoint() -> None:
    s = _base()
    _run(s, PublishService(name="web", network="blue", endpoint_id="aa01", port=80))
    _run(s, PublishService(name="web", network="blue", endpoint_id="aa02", port=80))
    _run(s, PublishService(name="web", network="red", endpoint_id="bb01", port=80))
    _run(s, Disconnect(endpoint_id="aa01", network="blue"))
    assert [e.endpoint_id for e in s.services()] == ["aa02", "bb01"]
    _run(s, RemoveHost(host="h1"))
    assert [e.endpoint_id for e in s.services()] == ["aa02"]
    _run(s, DeleteNetwork(name="blue", force=True))
    assert s.services() == () and s._services == {}


def test_snapshot_round_trip_and_format_4_still_loads() -> None:
    s = _base()
    _run(s, PublishService(name="web", network="blue", endpoint_id="aa01", port=80, ttl_s=7))
    _run(s, SetServiceHealth(name="web", network="blue", endpoint_id="aa01", healthy=False))
    t = NetworkState()
    t.restore(s.snapshot())
    assert t == s and t.services() == s.services()
    import msgpack

    doc = msgpack.unpackb(s.snapshot(), raw=False, strict_map_key=False)
    doc["format"] = 4
    del doc["services"]
    for row in doc["networks"]:  # format 6 joined the container ids into one string
        row[13] = row[13].split(" ")
    old = NetworkState()
    old.restore(msgpack.packb(doc, use_bin_type=True))
    assert old.services() == () and len(old.endpoints()) == 3


def test_commands_round_trip_on_the_wire() -> None:
    for cmd in (
        PublishService(name="web", network="blue", endpoint_id="aa01", port=80, check="tcp", interval_s=2),
        UnpublishService(name="web", network="blue"),
        SetServiceHealth(name="web", network="blue", endpoint_id="aa01", healthy=True),
    ):
        assert decode_command(encode_command(cmd)) == cmd


_ops = st.lists(
    st.tuples(
        st.sampled_from(["pub", "unpub", "health", "disc", "conn"]),
        st.sampled_from(["aa01", "aa02"]),
        st.sampled_from(["web", "db"]),
        st.booleans(),
    ),
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(_ops)
def test_replicas_agree_and_no_entry_without_endpoint(ops: list[tuple[str, str, str, bool]]) -> None:
    cmds: list[object] = []
    for op, cid, name, flag in ops:
        if op == "pub":
            cmds.append(PublishService(name=name, network="blue", endpoint_id=cid, port=80))
        elif op == "unpub":
            cmds.append(UnpublishService(name=name, network="blue", endpoint_id=cid if flag else None))
        elif op == "health":
            cmds.append(SetServiceHealth(name=name, network="blue", endpoint_id=cid, healthy=flag))
        elif op == "disc":
            cmds.append(Disconnect(endpoint_id=cid, network="blue"))
        else:
            cmds.append(Connect(endpoint_id=cid, network="blue", host="h1"))
    a, b = _base(), _base()
    for s in (a, b):
        for cmd in cmds:
            _run(s, cmd)
    assert a.state_hash() == b.state_hash()
    for e in a.services():
        assert a.endpoint(e.endpoint_id, e.network) is not None
    c = NetworkState()
    c.restore(a.snapshot())
    assert c == a


def test_changes_name_the_service() -> None:
    s = _base()
    start = s.last_index
    _run(s, PublishService(name="web", network="blue", endpoint_id="aa01", port=80))
    _run(s, SetServiceHealth(name="web", network="blue", endpoint_id="aa01", healthy=False))
    _run(s, Disconnect(endpoint_id="aa01", network="blue"))
    kinds = [(c.kind.value, c.service, c.host) for c in s.changes_since(start).changes]
    assert kinds == [
        ("service-registered", "web", "h1"),
        ("service-health", "web", "h1"),
        ("service-removed", "web", "h1"),
        ("endpoint-removed", None, "h1"),
    ]

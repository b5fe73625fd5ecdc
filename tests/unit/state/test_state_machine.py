"""Behaviour of the state machine: commands, queries, change stream, bytes interface, snapshots."""

from __future__ import annotations

import msgpack
import pytest

from meshd import wire
from meshd.state import (
    AddPolicy,
    ChangeKind,
    CommandError,
    Connect,
    Connected,
    CreateNetwork,
    DeleteNetwork,
    Disconnect,
    Disconnected,
    ErrorCode,
    MarkHostStale,
    MoveEndpoint,
    NetworkState,
    PolicyKind,
    Qos,
    RemoveHost,
    RemovePolicy,
    SetQos,
    UpdateNetwork,
    _tables,
    decode_command,
    decode_result,
    encode_command,
    replay,
)


class Log:
    """Executes commands at consecutive indices and fails on an unexpected error."""

    def __init__(self, **kwargs) -> None:
        self.state = NetworkState(**kwargs)
        self.index = 0

    def ok(self, cmd):
        self.index += 1
        result = self.state.execute(cmd, self.index)
        assert not isinstance(result, CommandError), result
        return result

    def err(self, cmd) -> CommandError:
        self.index += 1
        result = self.state.execute(cmd, self.index)
        assert isinstance(result, CommandError), result
        return result


def test_create_network_defaults_gateway_and_vni():
    log = Log()
    created = log.ok(CreateNetwork(name="blue", tenant="acme", subnet="10.1.0.0/24"))
    assert (created.subnet, created.gateway, created.vni) == ("10.1.0.0/24", "10.1.0.1", 1)
    assert (
        log.ok(CreateNetwork(name="red", tenant="acme", subnet="10.2.0.0/24", gateway="10.2.0.254")).gateway
        == "10.2.0.254"
    )
    info = log.state.network("red")
    assert (info.used, info.free) == (0, 253)
    assert log.ok(CreateNetwork(name="green", tenant="acme", subnet="10.3.0.0/16", vni=5000)).vni == 5000


def test_connect_allocates_next_free_ip_with_a_stable_derived_mac():
    log = Log()
    log.ok(CreateNetwork(name="blue", tenant="acme", subnet="10.1.0.0/24", vni=42, mtu=1400))
    first = log.ok(Connect(endpoint_id="c1", network="blue", host="h1"))
    assert first == Connected(
        endpoint_id="c1",
        network="blue",
        host="h1",
        ip="10.1.0.2",
        prefix_len=24,
        mac="02:6d:0a:01:00:02",
        gateway="10.1.0.1",
        vni=42,
        mtu=1400,
    )
    assert log.ok(Connect(endpoint_id="c2", network="blue", host="h2")).ip == "10.1.0.3"
    # the same IP always gives the same MAC, whoever holds it
    log.ok(Disconnect(endpoint_id="c1", network="blue"))
    again = log.ok(Connect(endpoint_id="c1", network="blue", host="h1", ip="10.1.0.2"))
    assert again.mac == first.mac


def test_a_released_address_is_not_reused_at_once():
    log = Log()
    log.ok(CreateNetwork(name="blue", tenant="acme", subnet="10.1.0.0/24"))
    log.ok(Connect(endpoint_id="c1", network="blue", host="h1"))
    log.ok(Disconnect(endpoint_id="c1", network="blue"))
    assert log.ok(Connect(endpoint_id="c2", network="blue", host="h1")).ip == "10.1.0.3"


def test_a_full_network_refuses_then_reuses_the_released_address_after_wrapping():
    log = Log()
    log.ok(CreateNetwork(name="blue", tenant="acme", subnet="10.1.0.0/24"))
    ips = [log.ok(Connect(endpoint_id=f"c{i}", network="blue", host="h1")).ip for i in range(253)]
    assert ips[0] == "10.1.0.2" and ips[-1] == "10.1.0.254" and len(set(ips)) == 253
    assert log.err(Connect(endpoint_id="late", network="blue", host="h1")).code == ErrorCode.POOL_EXHAUSTED
    log.ok(Disconnect(endpoint_id="c100", network="blue"))
    assert log.ok(Connect(endpoint_id="late", network="blue", host="h1")).ip == ips[100]
    info = log.state.network("blue")
    assert (info.used, info.free) == (253, 0)


def test_a_slash_8_network_allocates_from_its_own_range():
    log = Log()
    log.ok(CreateNetwork(name="huge", tenant="acme", subnet="10.0.0.0/8", gateway="10.255.255.254"))
    assert log.ok(Connect(endpoint_id="c1", network="huge", host="h1", ip="10.200.3.4")).mac == "02:6d:0a:c8:03:04"
    assert (
        log.ok(Connect(endpoint_id="c2", network="huge", host="h1")).ip == "10.0.0.1"
    )  # the gateway is elsewhere: .1 is free
    assert log.state.network("huge").free == 2**24 - 3 - 2


def test_connect_is_idempotent_for_retries():
    log = Log()
    log.ok(CreateNetwork(name="blue", tenant="acme", subnet="10.1.0.0/24"))
    qos = Qos(10_000, 32_768, 50)
    first = log.ok(Connect(endpoint_id="c1", network="blue", host="h1", qos=qos))
    changes_before = len(log.state.changes_since(0).changes)
    assert log.ok(Connect(endpoint_id="c1", network="blue", host="h1", qos=Qos(10_000, 32_768, 50))) == first
    assert log.ok(Connect(endpoint_id="c1", network="blue", host="h1", ip=first.ip, qos=qos)) == first
    assert len(log.state.changes_since(0).changes) == changes_before
    assert log.state.network("blue").used == 1


def test_one_container_in_several_networks_moves_as_one():
    log = Log()
    log.ok(CreateNetwork(name="blue", tenant="acme", subnet="10.1.0.0/24"))
    log.ok(CreateNetwork(name="red", tenant="acme", subnet="10.2.0.0/24"))
    log.ok(Connect(endpoint_id="c1", network="blue", host="h1"))
    log.ok(Connect(endpoint_id="c1", network="red", host="h1", ip="10.2.0.77", mac="06:00:00:00:00:07"))
    moved = log.ok(MoveEndpoint(endpoint_id="c1", host="h2"))
    assert (moved.old_host, moved.host, moved.networks) == ("h1", "h2", ("blue", "red"))
    eps = log.state.endpoints(host="h2")
    assert [(e.network, e.ip, e.mac) for e in eps] == [
        ("blue", "10.1.0.2", "02:6d:0a:01:00:02"),
        ("red", "10.2.0.77", "06:00:00:00:00:07"),
    ]
    assert log.state.endpoints(host="h1") == ()
    assert log.state.hosts() == ("h2",)
    log.ok(Disconnect(endpoint_id="c1", network="blue"))
    assert [e.network for e in log.state.endpoints(host="h2")] == ["red"]


def test_endpoints_on_filters_one_network_by_host():
    log = Log()
    log.ok(CreateNetwork(name="blue", tenant="acme", subnet="10.1.0.0/24"))
    for cid, host in (("c1", "h1"), ("c2", "h2"), ("c3", "h3"), ("c4", "h2")):
        log.ok(Connect(endpoint_id=cid, network="blue", host=host))
    assert [e.endpoint_id for e in log.state.endpoints_on("blue", {"h2", "h3"})] == ["c2", "c3", "c4"]
    assert log.state.endpoints_on("blue", set()) == ()
    assert log.state.endpoints_on("nope", {"h1"}) == ()
    full = {e.endpoint_id: e for e in log.state.endpoints(network="blue")}
    assert all(full[e.endpoint_id] == e for e in log.state.endpoints_on("blue", {"h1", "h2", "h3"}))


def test_a_restored_replica_answers_like_the_original_for_multi_network_containers():
    log = Log()
    log.ok(CreateNetwork(name="blue", tenant="acme", subnet="10.1.0.0/24"))
    log.ok(CreateNetwork(name="red", tenant="acme", subnet="10.2.0.0/24"))
    log.ok(Connect(endpoint_id="c1", network="red", host="h1"))  # connected to the later network first
    log.ok(Connect(endpoint_id="c1", network="blue", host="h1"))
    copy = NetworkState()
    copy.restore(log.state.snapshot())
    move = MoveEndpoint(endpoint_id="c1", host="h2")
    assert copy.execute(move, 10) == log.state.execute(move, 10)
    assert log.state.execute(Disconnect(endpoint_id="c1", network="green"), 11) == copy.execute(
        Disconnect(endpoint_id="c1", network="green"), 11
    )
    gone = Disconnect(endpoint_id="c9", network="blue")
    assert log.state.execute(gone, 12) == copy.execute(gone, 12)


def test_set_qos_and_update_network():
    log = Log()
    log.ok(CreateNetwork(name="blue", tenant="acme", subnet="10.1.0.0/24", labels={"team": "a"}))
    log.ok(Connect(endpoint_id="c1", network="blue", host="h1"))
    log.ok(SetQos(endpoint_id="c1", network="blue", qos=Qos(5000, 16000, 20)))
    assert log.state.endpoint("c1", "blue").qos == Qos(5000, 16000, 20)
    log.ok(UpdateNetwork(name="blue", mtu=1400, egress_kbit=100_000, external=True, labels={"team": "b"}))
    net = log.state.network("blue").network
    assert (net.mtu, net.egress_kbit, net.external, net.labels) == (1400, 100_000, True, {"team": "b"})
    assert (net.subnet, net.vni) == ("10.1.0.0/24", 1)
    net.labels["team"] = "mutated by a caller"
    assert log.state.network("blue").network.labels == {"team": "b"}


def test_overlapping_subnets_are_allowed_across_tenants_only():
    log = Log()
    log.ok(CreateNetwork(name="a-net", tenant="tenant-a", subnet="10.1.0.0/24"))
    b = log.ok(CreateNetwork(name="b-net", tenant="tenant-b", subnet="10.1.0.0/24"))
    assert b.vni == 2
    assert log.err(CreateNetwork(name="a-2", tenant="tenant-a", subnet="10.1.0.64/26")).code == ErrorCode.SUBNET_OVERLAP
    assert log.err(CreateNetwork(name="a-3", tenant="tenant-a", subnet="10.0.0.0/15")).code == ErrorCode.SUBNET_OVERLAP
    log.ok(CreateNetwork(name="a-4", tenant="tenant-a", subnet="10.1.1.0/24"))  # adjacent is fine
    assert [n.network.name for n in log.state.networks(tenant="tenant-a")] == ["a-4", "a-net"]


def test_delete_network_with_force_releases_everything():
    log = Log()
    log.ok(CreateNetwork(name="blue", tenant="acme", subnet="10.1.0.0/24", vni=7))
    log.ok(CreateNetwork(name="red", tenant="acme", subnet="10.2.0.0/24"))
    log.ok(Connect(endpoint_id="c1", network="blue", host="h1"))
    log.ok(Connect(endpoint_id="c1", network="red", host="h1"))
    log.ok(AddPolicy(kind=PolicyKind.DENY_BOTH, network="red", peer="blue"))
    deleted = log.ok(DeleteNetwork(name="blue", force=True))
    assert (deleted.endpoints_removed, deleted.policies_removed) == (1, 1)
    assert log.state.policies() == ()
    assert [e.network for e in log.state.endpoints()] == ["red"]
    assert (
        log.ok(CreateNetwork(name="blue2", tenant="acme", subnet="10.1.0.0/24", vni=7)).vni == 7
    )  # VNI and range are free again


def test_policies_are_records_listed_and_removable():
    log = Log()
    for name, subnet in (("a", "10.1.0.0/24"), ("b", "10.2.0.0/24"), ("c", "10.3.0.0/24")):
        log.ok(CreateNetwork(name=name, tenant="acme", subnet=subnet))
    p1 = log.ok(AddPolicy(kind=PolicyKind.ISOLATE_WITHIN, network="a")).policy_id
    p2 = log.ok(AddPolicy(kind=PolicyKind.DENY_ONE_WAY, network="a", peer="b")).policy_id
    p3 = log.ok(AddPolicy(kind=PolicyKind.DENY_BOTH, network="b", peer="c", policy_id="bc")).policy_id
    p4 = log.ok(AddPolicy(kind=PolicyKind.DENY_ALL, network="c")).policy_id
    assert (p1, p2, p3) == ("policy-4", "policy-5", "bc")
    # one-way is directional; both-ways is not
    log.ok(AddPolicy(kind=PolicyKind.DENY_ONE_WAY, network="b", peer="a"))
    assert log.err(AddPolicy(kind=PolicyKind.DENY_BOTH, network="c", peer="b")).code == ErrorCode.DUPLICATE_POLICY
    assert [p.policy_id for p in log.state.policies(network="c")] == ["bc", p4]
    log.ok(RemovePolicy(policy_id="bc"))
    assert "bc" not in [p.policy_id for p in log.state.policies()]
    kinds = [p.kind for p in log.state.policies()]
    assert kinds == [PolicyKind.ISOLATE_WITHIN, PolicyKind.DENY_ONE_WAY, PolicyKind.DENY_ALL, PolicyKind.DENY_ONE_WAY]


def test_host_lifecycle_stale_then_removed():
    log = Log()
    log.ok(CreateNetwork(name="blue", tenant="acme", subnet="10.1.0.0/24"))
    log.ok(CreateNetwork(name="red", tenant="acme", subnet="10.2.0.0/24"))
    log.ok(Connect(endpoint_id="c1", network="blue", host="h1"))
    log.ok(Connect(endpoint_id="c1", network="red", host="h1"))
    log.ok(Connect(endpoint_id="c2", network="blue", host="h2"))
    marked = log.ok(MarkHostStale(host="h1"))
    assert (marked.stale, marked.endpoints) == (True, 2)
    assert [e.stale for e in log.state.endpoints(network="blue")] == [True, False]
    assert log.state.stale_hosts() == ("h1",)
    removed = log.ok(RemoveHost(host="h1"))
    assert removed.endpoints_removed == 2
    assert [e.endpoint_id for e in log.state.endpoints()] == ["c2"]
    assert log.state.stale_hosts() == ()
    assert log.state.network("blue").used == 1


def test_change_stream_reports_what_changed_at_which_index():
    log = Log(change_log_size=5)
    log.ok(CreateNetwork(name="blue", tenant="acme", subnet="10.1.0.0/24"))  # 1
    log.ok(Connect(endpoint_id="c1", network="blue", host="h1"))  # 2
    log.ok(MoveEndpoint(endpoint_id="c1", host="h2"))  # 3
    log.ok(SetQos(endpoint_id="c1", network="blue", qos=Qos(1000, 4000, 10)))  # 4
    changes = log.state.changes_since(1)
    assert changes.complete and changes.last_index == 4
    assert [(c.index, c.kind, c.endpoint_id, c.host, c.old_host) for c in changes.changes] == [
        (2, ChangeKind.ENDPOINT_ADDED, "c1", "h1", None),
        (3, ChangeKind.ENDPOINT_MOVED, "c1", "h2", "h1"),
        (4, ChangeKind.ENDPOINT_QOS, "c1", "h2", None),
    ]
    assert log.state.changes_since(4).changes == ()
    for i in range(3):
        log.ok(Connect(endpoint_id=f"x{i}", network="blue", host="h1"))
    assert not log.state.changes_since(1).complete  # the bounded log no longer reaches index 2
    assert log.state.changes_since(3).complete
    restored = NetworkState()
    restored.restore(log.state.snapshot())
    assert not restored.changes_since(3).complete  # history is not in snapshots: rescan
    assert restored.changes_since(restored.last_index).complete


def test_apply_speaks_bytes_and_rejects_garbage_deterministically():
    state = NetworkState()
    out = state.apply(1, encode_command(CreateNetwork(name="blue", tenant="acme", subnet="10.1.0.0/24")))
    assert decode_result(out).vni == 1
    out = decode_result(
        state.apply(2, encode_command(Connect(endpoint_id="c1", network="blue", host="h1", qos=Qos(1, 2, 3))))
    )
    assert out.ip == "10.1.0.2"
    for i, garbage in enumerate([b"", b"\xc1", msgpack.packb([999, 1]), msgpack.packb([131, 1, 5])], 3):
        err = decode_result(state.apply(i, garbage))
        assert err.code == ErrorCode.BAD_COMMAND and f"log entry {i}" in err.message
    assert state.last_index == 6
    assert state.status().undecodable_commands == 4
    assert state.endpoint("c1", "blue").qos == Qos(1, 2, 3)


def test_commands_round_trip_through_their_encoding():
    for cmd in (
        CreateNetwork(
            name="b", tenant="t", subnet="10.0.0.0/8", gateway="10.0.0.9", vni=3, mtu=9000, labels={"k": "v"}
        ),
        Connect(endpoint_id="c", network="b", host="h", ip="10.0.0.5", mac="04:00:00:00:00:01", qos=Qos(1, 2, 3)),
        AddPolicy(kind=PolicyKind.DENY_BOTH, network="a", peer="b", policy_id="id"),
        MarkHostStale(host="h", stale=False),
    ):
        assert decode_command(encode_command(cmd)) == cmd
    with pytest.raises(wire.DecodeError, match="not a valid state command"):
        decode_command(wire.encode(Disconnected(endpoint_id="c", network="b", ip="10.0.0.1")))
    with pytest.raises(TypeError, match="not a state command"):
        encode_command(Disconnected(endpoint_id="c", network="b", ip="10.0.0.1"))


def test_snapshot_round_trip_keeps_cursors_so_replicas_stay_identical():
    log = Log()
    log.ok(CreateNetwork(name="blue", tenant="acme", subnet="10.1.0.0/24"))
    log.ok(Connect(endpoint_id="c1", network="blue", host="h1", mac="04:00:00:00:00:01", qos=Qos(1000, 4000, 1)))
    log.ok(Connect(endpoint_id="c2", network="blue", host="h2"))
    log.ok(Disconnect(endpoint_id="c1", network="blue"))
    log.ok(AddPolicy(kind=PolicyKind.ISOLATE_WITHIN, network="blue"))
    log.ok(MarkHostStale(host="h9"))
    copy = NetworkState()
    copy.restore(log.state.snapshot())
    assert copy == log.state
    assert copy.endpoints() == log.state.endpoints() and copy.policies() == log.state.policies()
    assert copy.stale_hosts() == ("h9",)
    # both allocate the same next IP and VNI: the cursors were restored
    nxt = Connect(endpoint_id="c3", network="blue", host="h1")
    assert copy.execute(nxt, 10) == log.state.execute(nxt, 10)
    net = CreateNetwork(name="red", tenant="acme", subnet="10.2.0.0/24")
    assert copy.execute(net, 11) == log.state.execute(net, 11)
    assert copy.state_hash() == log.state.state_hash()


def test_restore_refuses_corrupt_or_unknown_snapshots_and_keeps_the_state():
    log = Log()
    log.ok(CreateNetwork(name="blue", tenant="acme", subnet="10.1.0.0/24"))
    log.ok(Connect(endpoint_id="c1", network="blue", host="h1"))
    good = log.state.snapshot()
    doc = msgpack.unpackb(good, raw=False, strict_map_key=False)
    doc["networks"][0][12] = b"\x00" * 32  # IP bit vector with no bits set
    for bad, match in [
        (b"\x00garbage", "not a meshd network-state snapshot|not valid msgpack"),
        (msgpack.packb({"format": 99}), "format 99 is not supported"),
        (msgpack.packb(doc, use_bin_type=True), "0 bits set for 1 endpoints"),
    ]:
        with pytest.raises(ValueError, match=match):
            log.state.restore(bad)
        assert log.state.snapshot() == good


def test_format_1_snapshot_still_loads():
    v1 = {
        "format": 1,
        "last_index": 9,
        "stale_hosts": ["h2"],
        "networks": [
            {
                "name": "blue",
                "tenant": "acme",
                "subnet": "10.1.0.0/24",
                "gateway": "10.1.0.1",
                "vni": 5,
                "mode": "vxlan",
                "mtu": 1450,
                "egress_kbit": 0,
                "external": False,
                "labels": {},
                "created_index": 1,
            },
        ],  # fmt: skip
        "endpoints": [
            ["c1", "blue", "h1", "10.1.0.2", None, [0, 0, 0]],
            ["c2", "blue", "h2", "10.1.0.9", "04:00:00:00:00:02", [1000, 4000, 10]],
        ],
        "policies": [["p1", "isolate-within", "blue", None, 3]],
    }
    state = NetworkState()
    state.restore(msgpack.packb(v1, use_bin_type=True))
    assert state.last_index == 9
    assert [(e.endpoint_id, e.ip, e.mac, e.stale) for e in state.endpoints()] == [
        ("c1", "10.1.0.2", "02:6d:0a:01:00:02", False),
        ("c2", "10.1.0.9", "04:00:00:00:00:02", True),
    ]
    assert state.policies()[0].kind == PolicyKind.ISOLATE_WITHIN
    assert state.network("blue").used == 2
    assert (
        state.execute(Connect(endpoint_id="c3", network="blue", host="h1", ip="10.1.0.9"), 10).code
        == ErrorCode.IP_TAKEN
    )
    # and it is written back as the current format, which loads to the same state
    again = NetworkState()
    again.restore(state.snapshot())
    assert again == state


def _two_networks() -> Log:
    log = Log()
    log.ok(CreateNetwork(name="blue", tenant="acme", subnet="10.1.0.0/24"))
    log.ok(CreateNetwork(name="red", tenant="acme", subnet="10.2.0.0/24"))
    log.ok(Connect(endpoint_id="c1", network="blue", host="h1", name="web", mac="04:00:00:00:00:01"))
    log.ok(Connect(endpoint_id="c2", network="blue", host="h2", qos=Qos(1000, 4000, 1)))
    log.ok(Connect(endpoint_id="c1", network="red", host="h1"))
    return log


def test_format_5_snapshot_still_loads_and_is_written_back_as_format_6():
    log = _two_networks()
    doc = msgpack.unpackb(log.state.snapshot(), raw=False, strict_map_key=False)
    assert doc["format"] == 6 and doc["networks"][0][13] == "c1 c2"
    doc["format"] = 5
    for row in doc["networks"]:  # format 5 held the container ids as a list
        row[13] = row[13].split(" ") if row[13] else []
    old = NetworkState()
    old.restore(msgpack.packb(doc, use_bin_type=True))
    assert old.snapshot() == log.state.snapshot()
    assert old.endpoints() == log.state.endpoints() and old.find_endpoints("web") == ("c1",)


def test_restore_indexes_a_network_when_first_used_and_writes_untouched_ones_back_unchanged():
    log = _two_networks()
    snap = log.state.snapshot()
    copy = NetworkState()
    copy.restore(snap)
    assert all(net.cols is not None for net in copy._nets.values())  # nothing indexed yet
    assert copy._by_container is None and copy._by_host is None
    assert copy.snapshot() == snap and copy.network("blue").used == 2
    nxt = Connect(endpoint_id="c3", network="red", host="h2")
    assert copy.execute(nxt, 10) == log.state.execute(nxt, 10)
    assert copy._nets["blue"].cols is not None and copy._nets["red"].cols is None  # only red was opened
    assert copy.networks_of("c1") == ("blue", "red") and copy.hosts() == ("h1", "h2")
    assert copy.snapshot() == log.state.snapshot()
    # a connect that needs blue's endpoints (the MAC is taken there) opens it
    taken = Connect(endpoint_id="c4", network="blue", host="h2", mac="04:00:00:00:00:01")
    assert copy.execute(taken, 11) == log.state.execute(taken, 11)
    assert copy.execute(taken, 11).code == ErrorCode.STALE_INDEX
    assert copy._nets["blue"].cols is None and copy == log.state


def test_warm_builds_the_deferred_indexes_and_changes_no_answer():
    log = _two_networks()
    snap = log.state.snapshot()
    warmed = NetworkState()
    warmed.restore(snap)
    warmed.warm()  # both networks are small: only the container and name indexes are built
    assert warmed._by_container is not None and warmed._by_name is not None and warmed._by_host is None
    assert all(net.cols is not None for net in warmed._nets.values())
    warmed.warm(every_network=True)
    assert all(net.cols is None for net in warmed._nets.values()) and warmed._by_host is not None
    assert warmed.snapshot() == snap and warmed.endpoints() == log.state.endpoints()
    assert warmed.find_endpoints("web") == ("c1",) and warmed.networks_of("c1") == ("blue", "red")
    nxt = Connect(endpoint_id="c1", network="blue", host="h2")  # c1 lives on h1
    assert warmed.execute(nxt, 10) == log.state.execute(nxt, 10)


def test_the_host_index_is_derived_when_first_needed_and_a_known_odd_host_stays_usable():
    log = _two_networks()
    doc = msgpack.unpackb(log.state.snapshot(), raw=False, strict_map_key=False)
    doc["networks"][0][14] = ["old host", "h2"]  # c1's host: a name from before ids were checked (format 1)
    doc["networks"][1][14] = ["old host"]
    state = NetworkState()
    state.restore(msgpack.packb(doc, use_bin_type=True))
    assert state._by_host is None
    # endpoint commands do not build it; the connect of the odd name looks it up
    assert state.execute(Connect(endpoint_id="c3", network="red", host="h9"), 10).ip == "10.2.0.3"
    assert state.execute(Disconnect(endpoint_id="c2", network="blue"), 11).ip == "10.1.0.3"
    assert state._by_host is None
    assert state.execute(Connect(endpoint_id="c4", network="red", host="old host"), 12).host == "old host"
    assert state._hosts == {"old host": {"blue": 1, "red": 2}, "h9": {"red": 1}}
    assert state.hosts() == ("h9", "old host")
    assert state.execute(Connect(endpoint_id="c5", network="red", host="new host"), 13).code == ErrorCode.INVALID_FIELD


def _filled(pairs: list) -> tuple[dict, int]:
    out: dict = {}
    steps = sum(1 for _ in _tables.fill_in_steps(out, pairs))
    return out, steps


def test_fill_in_steps_equals_dict_across_chunk_boundaries():
    chunk = _tables._CHUNK
    for n, steps in ((0, 0), (1, 0), (chunk - 1, 0), (chunk, 1), (chunk + 1, 1), (3 * chunk + 5, 3)):
        pairs = [(i, -i) for i in range(n)]
        out, taken = _filled(pairs)
        assert list(out.items()) == list(dict(pairs).items()) and taken == steps
    repeated = [(1, "a")] * (chunk + 3) + [(2, "b"), (1, "c")]
    assert _filled(repeated)[0] == dict(repeated) == {1: "c", 2: "b"}


def test_a_query_between_warm_steps_builds_the_index_and_the_steps_keep_it(monkeypatch):
    monkeypatch.setattr(_tables, "_CHUNK", 1)  # a step per entry
    log = _two_networks()
    state = NetworkState()
    state.restore(log.state.snapshot())
    steps = state.warm_steps(every_network=True)
    next(steps)  # the container index is half built
    containers = state._containers  # this query builds it at once
    blue = state._nets["blue"]
    for _ in steps:
        if blue.cols is not None and blue._eps == {}:
            eps = blue.eps  # and this one blue's dict, while the steps build it too
    assert state._containers is containers and blue.eps is eps
    assert state == log.state and state.endpoints() == log.state.endpoints()


def test_an_endpoint_listed_twice_in_a_snapshot_is_refused_when_its_network_is_first_used():
    log = _two_networks()
    doc = msgpack.unpackb(log.state.snapshot(), raw=False, strict_map_key=False)
    doc["networks"][0][13] = "c1 c1"
    state = NetworkState()
    state.restore(msgpack.packb(doc, use_bin_type=True))
    with pytest.raises(ValueError, match="network 'blue' lists an endpoint twice"):
        state.endpoints(network="blue")
    doc["networks"][0][13] = "c1 c2 c3"
    with pytest.raises(ValueError, match="network 'blue': endpoint columns differ in length"):
        state.restore(msgpack.packb(doc, use_bin_type=True))


def test_replay_gives_the_same_state_hash():
    cmds = [
        CreateNetwork(name="blue", tenant="acme", subnet="10.1.0.0/24"),
        Connect(endpoint_id="c1", network="blue", host="h1"),
        Connect(endpoint_id="c2", network="blue", host="h2", qos=Qos(5, 5, 5)),
        MoveEndpoint(endpoint_id="c1", host="h2"),
    ]
    assert replay(cmds).state_hash() == replay(cmds).state_hash()
    assert replay(cmds).state_hash() != replay(cmds[:-1]).state_hash()


def test_status_counts():
    log = Log()
    log.ok(CreateNetwork(name="blue", tenant="acme", subnet="10.1.0.0/24"))
    log.ok(Connect(endpoint_id="c1", network="blue", host="h1"))
    log.err(Connect(endpoint_id="c1", network="blue", host="h2"))
    status = log.state.status()
    assert (status.networks, status.endpoints, status.hosts, status.vnis_used) == (1, 1, 1, 1)
    assert (status.commands_applied, status.commands_rejected, status.last_index) == (2, 1, 3)


def test_containers_are_found_by_id_name_or_hex_prefix_and_a_new_id_is_not_taken_for_another():
    log = Log()
    log.ok(CreateNetwork(name="blue", tenant="acme", subnet="10.1.0.0/24"))
    log.ok(CreateNetwork(name="red", tenant="acme", subnet="10.2.0.0/24"))
    docker_id = "3fa2c0ffee" + "0" * 54
    log.ok(Connect(endpoint_id=docker_id, network="blue", host="h1", name="web"))
    log.ok(Connect(endpoint_id=docker_id, network="red", host="h1", name="web"))
    log.ok(Connect(endpoint_id="web-10", network="blue", host="h2"))
    find = log.state.find_endpoints
    assert find(docker_id) == find("web") == find("3fa2") == (docker_id,)
    assert find("3fa2", min_prefix=12) == () and find(docker_id[:12], min_prefix=12) == (docker_id,)
    assert find("web-1") == ()  # not hex: never a prefix, so a new container web-1 is not web-10
    log.ok(Disconnect(endpoint_id=docker_id, network="blue"))
    assert find("web") == (docker_id,)  # still named in red
    restored = NetworkState()
    restored.restore(log.state.snapshot())
    assert restored.find_endpoints("web") == (docker_id,)
    log.ok(Disconnect(endpoint_id=docker_id, network="red"))
    assert find("web") == () and find("3fa2") == ()

"""The state's log format: byte-compatible with what existing installs wrote, versioned, strict.

The golden frames below were written by the hand-made codec meshd used
before msgspec (``[tag, version, *fields]``); Raft logs and snapshots of
existing installs hold exactly these bytes, so they must decode to the same
commands, and today's encoder must write the same bytes.
"""

from __future__ import annotations

import msgpack
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshd import wire
from meshd.state import (
    AddPolicy,
    CommandError,
    Connect,
    Connected,
    CreateNetwork,
    Disconnected,
    ErrorCode,
    MarkHostStale,
    Mode,
    Moved,
    NetworkState,
    PolicyKind,
    Qos,
    SetQos,
    UpdateNetwork,
    decode_command,
    decode_result,
    encode_command,
    encode_result,
)

GOLDEN_COMMANDS = [
    (CreateNetwork(name="blue", tenant="acme", subnet="10.1.0.0/24", gateway="10.1.0.254", vni=42, mode=Mode.FLAT,
                   mtu=1500, labels={"env": "prod"}, options={"parent": "eth0", "ip_range": "10.1.0.128/25"}),
     "9dcc8002a4626c7565a461636d65ab31302e312e302e302f3234aa31302e312e302e3235342aa4666c6174cd05dc00c281a3656e76a470"
     "726f6482a6706172656e74a465746830a869705f72616e6765ad31302e312e302e3132382f3235"),
    (Connect(endpoint_id="c1", network="blue", host="h1", ip="10.1.0.5", mac="02:00:00:00:00:01",
             qos=Qos(1000, 32768, 20), name="web-1"),
     "99cc8302a26331a4626c7565a26831a831302e312e302e35b130323a30303a30303a30303a30303a303193cd03e8cd800014a5776562"
     "2d31"),
    (Connect(endpoint_id="c2", network="blue", host="h2"), "99cc8302a26332a4626c7565a26832c0c093000000c0"),
    (UpdateNetwork(name="blue", mtu=1400), "97cc8201a4626c7565cd0578c0c0c0"),
    (SetQos(endpoint_id="c1", network="blue", qos=Qos(5, 6, 7)), "95cc8601a26331a4626c756593050607"),
    (AddPolicy(kind=PolicyKind.DENY_BOTH, network="blue", peer="red", policy_id="p1"),
     "96cc8701a964656e792d626f7468a4626c7565a3726564a27031"),
    (MarkHostStale(host="h3"), "94cc8901a26833c3"),
]  # fmt: skip

GOLDEN_RESULTS = [
    (Connected(endpoint_id="c1", network="blue", host="h1", ip="10.1.0.5", prefix_len=24, mac="02:00:00:00:00:01",
               gateway="10.1.0.254", vni=42, mtu=9000),
     "9bcca301a26331a4626c7565a26831a831302e312e302e3518b130323a30303a30303a30303a30303a3031aa31302e312e302e323534"
     "2acd2328"),
    (Moved(endpoint_id="c1", host="h2", old_host="h1", networks=("blue", "red")),
     "96cca501a26331a26832a2683192a4626c7565a3726564"),
    (CommandError(code=ErrorCode.IP_TAKEN, message="taken"), "94ccbf0111a574616b656e"),
]  # fmt: skip


@pytest.mark.parametrize("command,golden", GOLDEN_COMMANDS, ids=lambda x: type(x).__name__)
def test_commands_are_byte_compatible_with_existing_raft_logs(command, golden):
    assert encode_command(command).hex() == golden
    assert decode_command(bytes.fromhex(golden)) == command


#: version 1 of Connect (before it carried the container's name): what existing logs hold
GOLDEN_CONNECT_V1 = [
    (Connect(version=1, endpoint_id="c1", network="blue", host="h1", ip="10.1.0.5", mac="02:00:00:00:00:01",
             qos=Qos(1000, 32768, 20)),
     "98cc8301a26331a4626c7565a26831a831302e312e302e35b130323a30303a30303a30303a30303a303193cd03e8cd800014"),
    (Connect(version=1, endpoint_id="c2", network="blue", host="h2"), "98cc8301a26332a4626c7565a26832c0c093000000"),
]  # fmt: skip


#: version 1 of CreateNetwork (before it carried the mode's options): what existing logs hold
GOLDEN_CREATE_V1 = (
    CreateNetwork(version=1, name="blue", tenant="acme", subnet="10.1.0.0/24", gateway="10.1.0.254", vni=42,
                  mode=Mode.VXLAN, mtu=9000, egress_kbit=5000, external=True, labels={"env": "prod"}),
    "9ccc8001a4626c7565a461636d65ab31302e312e302e302f3234aa31302e312e302e3235342aa576786c616ecd2328cd1388c381a3656e"
    "76a470726f64",
)  # fmt: skip


def test_version_1_network_creates_in_existing_logs_still_apply():
    command, golden = GOLDEN_CREATE_V1
    decoded = decode_command(bytes.fromhex(golden))
    assert decoded == command and decoded.options == {}
    state = NetworkState()
    assert state.apply(1, bytes.fromhex(golden))
    assert state.network("blue").network.options == {}


@pytest.mark.parametrize("command,golden", GOLDEN_CONNECT_V1, ids=["c1", "c2"])
def test_version_1_connects_in_existing_logs_still_apply(command, golden):
    decoded = decode_command(bytes.fromhex(golden))
    assert decoded == command and decoded.name is None
    state = NetworkState()
    state.execute(CreateNetwork(name="blue", tenant="acme", subnet="10.1.0.0/24"), 1)
    assert state.apply(2, bytes.fromhex(golden))  # applies as before
    assert state.endpoint(command.endpoint_id, "blue").name is None


@pytest.mark.parametrize("result,golden", GOLDEN_RESULTS, ids=lambda x: type(x).__name__)
def test_results_are_byte_compatible_with_existing_session_tables(result, golden):
    assert encode_result(result).hex() == golden
    assert decode_result(bytes.fromhex(golden)) == result


text = st.text(max_size=20)
ints = st.integers(0, 2**40)


def legacy_layout(cmd: Connect) -> bytes:
    """How the old codec laid a Connect out: [131, 1, id, network, host, ip, mac, [rate, burst, latency]]."""
    q = cmd.qos
    return msgpack.packb([131, 1, cmd.endpoint_id, cmd.network, cmd.host, cmd.ip, cmd.mac,
                          [q.rate_kbit, q.burst_bytes, q.latency_ms]], use_bin_type=True)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(cid=text, network=text, host=text, ip=st.none() | text, mac=st.none() | text,
       qos=st.builds(Qos, ints, ints, ints), name=st.none() | text)
def test_any_connect_is_laid_out_as_before_plus_its_name(cid, network, host, ip, mac, qos, name):
    cmd = Connect(endpoint_id=cid, network=network, host=host, ip=ip, mac=mac, qos=qos, name=name)
    legacy = legacy_layout(cmd)
    assert encode_command(cmd) == legacy[:1].replace(b"\x98", b"\x99") + b"\xcc\x83\x02" + legacy[4:] + \
        msgpack.packb(name)  # version 2: one element more, the name appended
    assert decode_command(legacy) == msgspec.structs.replace(cmd, version=1, name=None)


def test_an_older_qos_without_latency_takes_the_default():
    data = msgpack.packb([131, 1, "c", "n", "h", None, None, [100, 200]], use_bin_type=True)
    assert decode_command(data) == Connect(version=1, endpoint_id="c", network="n", host="h", qos=Qos(100, 200, 0))


def test_a_newer_version_with_appended_fields_is_accepted():
    newer = msgpack.packb([131, 3, "c", "n", "h", None, None, [0, 0, 0, "qos-v2"], "web", "future"],
                          use_bin_type=True)
    cmd = decode_command(newer)
    assert (cmd.endpoint_id, cmd.network, cmd.host, cmd.qos, cmd.name, cmd.version) == ("c", "n", "h", Qos(), "web", 3)


@pytest.mark.parametrize(
    "data,fragment",
    [
        (msgpack.packb([131, 1, "c", "n", "h", None, None, [0, 0, True]]), "Expected `int`, got `bool`"),
        (msgpack.packb([131, 1, "c", "n", 5, None, None, [0, 0, 0]]), "Expected `str`, got `int`"),
        (msgpack.packb([131, 1, "c", "n", "h", b"ip", None, [0, 0, 0]], use_bin_type=True), "got `bytes`"),
        (msgpack.packb([131, 1, "c", "n", "h", None, None, "qos"]), "Expected `array`, got `str`"),
        (msgpack.packb([131, 1, "c", "n"]), "at least length"),
        (msgpack.packb([131, 0, "c", "n", "h"]), "Expected `int` >= 1"),
        (msgpack.packb([999, 1, "c"]), "Invalid value 999"),
        (msgpack.packb([128, 1, "n", "t", "10.0.0.0/24", None, None, "ovs"]), "Invalid enum value 'ovs'"),
        (encode_command(Connect(endpoint_id="c", network="n", host="h")) + b"\x00", "trailing characters"),
        (b"\xc1", "malformed"),
    ],
)
def test_malformed_commands_are_decode_errors(data, fragment):
    with pytest.raises(wire.DecodeError, match="not a valid state command") as info:
        decode_command(data)
    assert fragment in str(info.value)


def test_a_result_is_not_a_command_and_a_command_is_not_a_result():
    with pytest.raises(wire.DecodeError, match="not a valid state command"):
        decode_command(encode_result(Disconnected(endpoint_id="c", network="b", ip="10.0.0.1")))
    with pytest.raises(wire.DecodeError, match="not a valid state result"):
        decode_result(encode_command(Connect(endpoint_id="c", network="n", host="h")))
    with pytest.raises(TypeError, match="not a state command"):
        encode_command(Disconnected(endpoint_id="c", network="b", ip="10.0.0.1"))


garbage = st.binary(max_size=64) | st.builds(
    lambda tag, rest: msgpack.packb([tag, 1, *rest]),
    st.integers(120, 200),
    st.lists(st.integers(-(2**63), 2**63 - 1) | text | st.none(), max_size=8),
)


@settings(max_examples=300, deadline=None)
@given(data=garbage)
def test_apply_never_raises_on_garbage(data):
    state = NetworkState()
    state.execute(CreateNetwork(name="blue", tenant="acme", subnet="10.1.0.0/24"), 1)
    before = state.snapshot()
    result = decode_result(state.apply(2, data))
    assert state.last_index == 2
    if isinstance(result, CommandError) and result.code == ErrorCode.BAD_COMMAND:
        assert content_without_index(state.snapshot()) == content_without_index(before)


def content_without_index(snapshot: bytes) -> dict:
    doc = msgpack.unpackb(snapshot, raw=False, strict_map_key=False)
    del doc["last_index"]
    return doc

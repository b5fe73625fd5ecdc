"""The apply() fast paths produce exactly what the generic meshd.wire codec produces."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshd import wire
from meshd.state import (
    CommandError,
    Connect,
    Connected,
    CreateNetwork,
    ErrorCode,
    HostMarked,
    Moved,
    NetworkDeleted,
    NetworkState,
    PolicyAdded,
    Qos,
    Result,
    decode_result,
    encode_command,
)
from meshd.state._codec import decode_for_apply, encode_result_fast

text = st.text(max_size=20)
ints = st.integers(-(2**40), 2**40)


@settings(max_examples=200, deadline=None)
@given(
    cid=text, network=text, host=text,
    ip=st.none() | text, mac=st.none() | text,
    qos=st.builds(Qos, ints, ints, ints),
)  # fmt: skip
def test_fast_connect_decoding_equals_the_generic_decoder(cid, network, host, ip, mac, qos):
    data = encode_command(Connect(cid, network, host, ip, mac, qos))
    assert decode_for_apply(data) == wire.decode(data)


@pytest.mark.parametrize(
    "fields",
    [
        ["c", "n", "h", None, None, [0, 0, True]],  # a bool is not an int
        ["c", "n", 5, None, None, [0, 0, 0]],
        ["c", "n", "h", b"ip", None, [0, 0, 0]],
        ["c", "n", "h", None, None, "qos"],
    ],
)
def test_malformed_connects_are_rejected_like_the_generic_decoder(fields):
    data = msgpack.packb([Connect.TAG, 1, *fields], use_bin_type=True)
    with pytest.raises(wire.DecodeError):
        decode_for_apply(data)


def test_an_older_qos_without_latency_decodes_like_the_generic_decoder():
    data = msgpack.packb([Connect.TAG, 1, "c", "n", "h", None, None, [100, 200]], use_bin_type=True)
    assert decode_for_apply(data) == wire.decode(data) == Connect("c", "n", "h", qos=Qos(100, 200, 0))


def test_trailing_bytes_and_newer_versions_go_through_the_generic_decoder():
    data = encode_command(Connect("c", "n", "h"))
    with pytest.raises(wire.DecodeError, match="trailing"):
        decode_for_apply(data + b"\x00")
    newer = msgpack.packb([Connect.TAG, 2, "c", "n", "h", None, None, [0, 0, 0], "future"], use_bin_type=True)
    assert decode_for_apply(newer) == Connect("c", "n", "h")


@pytest.mark.parametrize(
    "result",
    [
        Connected("c", "n", "h", "10.0.0.2", 24, "02:6d:0a:00:00:02", "10.0.0.1", 7, 1450),
        Moved("c", "h2", "h1", ("a", "b")),
        NetworkDeleted("n", 3, 1),
        PolicyAdded("p"),
        HostMarked("h", True, 4),
        CommandError(ErrorCode.IP_TAKEN, "taken"),
    ],
)
def test_fast_result_encoding_equals_the_generic_encoder(result):
    assert encode_result_fast(result) == wire.encode(result)
    assert wire.decode(encode_result_fast(result)) == result


def test_every_result_type_is_flat_so_the_fast_encoder_applies():
    for cls in (*Result.__args__, CommandError):
        for field in cls.__dataclass_fields__.values():
            assert field.type in ("str", "int", "bool", "tuple[str, ...]", "ErrorCode"), (cls, field)


garbage = st.binary(max_size=64) | st.builds(
    lambda tag, rest: msgpack.packb([tag, 1, *rest]),
    st.integers(120, 200),
    st.lists(st.integers(-(2**63), 2**63 - 1) | text | st.none(), max_size=8),
)


@settings(max_examples=300, deadline=None)
@given(data=garbage)
def test_apply_never_raises_on_garbage(data):
    state = NetworkState()
    state.execute(CreateNetwork("blue", "acme", "10.1.0.0/24"), 1)
    before = state.snapshot()
    result = decode_result(state.apply(2, data))
    assert state.last_index == 2
    if isinstance(result, CommandError) and result.code == ErrorCode.BAD_COMMAND:
        assert content_without_index(state.snapshot()) == content_without_index(before)


def content_without_index(snapshot: bytes) -> dict:
    doc = msgpack.unpackb(snapshot, raw=False, strict_map_key=False)
    del doc["last_index"]
    return doc

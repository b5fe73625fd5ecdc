"""meshd.wire: round trips, old and new versions, strict decoding, the append-only registry."""

from enum import IntEnum

import msgpack
import pytest

from meshd import wire


class Color(IntEnum):
    RED = 1
    BLUE = 2


class Item(wire.Record):
    name: str
    color: Color


@wire.message
class Sample(wire.Message, tag=126, kw_only=True):
    version: wire.Version = 2
    seq: int
    ratio: float
    blob: bytes
    items: tuple[Item, ...]
    labels: dict[str, str]
    maybe: int | None = None
    added_in_v2: str = "default"

    def __post_init__(self) -> None:
        if self.seq < 0:
            raise ValueError(f"seq {self.seq} is negative")


@wire.message
class Other(wire.Message, tag=125, kw_only=True):
    text: str


SAMPLES = [
    Sample(seq=0, ratio=0.0, blob=b"", items=(), labels={}),
    Sample(seq=2**40, ratio=1.5, blob=b"\x00\xff", items=(Item("a", Color.RED), Item("b", Color.BLUE)),
           labels={"k": "v"}, maybe=7, added_in_v2="x"),
]  # fmt: skip


@pytest.mark.parametrize("msg", SAMPLES)
def test_round_trip_is_exact(msg):
    assert wire.decode(wire.encode(msg)) == msg


def test_layout_is_tag_version_fields_with_records_as_arrays():
    raw = msgpack.unpackb(wire.encode(SAMPLES[1]), raw=False)
    assert raw[:2] == [126, 2]
    assert raw[2:] == [2**40, 1.5, b"\x00\xff", [["a", 1], ["b", 2]], {"k": "v"}, 7, "x"]
    assert wire.encode(SAMPLES[0]) == msgpack.packb([126, 2, 0, 0.0, b"", [], {}, None, "default"], use_bin_type=True)


def test_older_version_fills_defaults_and_newer_extra_fields_are_ignored():
    v1 = wire.decode(msgpack.packb([126, 1, 3, 1.0, b"", [], {}, None]))
    assert (v1.version, v1.added_in_v2) == (1, "default")
    v3 = wire.decode(msgpack.packb([126, 3, 3, 1.0, b"", [["c", 2, "item-v2"]], {}, None, "x", "from-the-future"]))
    assert (v3.version, v3.seq, v3.items, v3.added_in_v2) == (3, 3, (Item("c", Color.BLUE),), "x")


@pytest.mark.parametrize("body,fragment", [
    (msgpack.packb([126, 1, 3]), "Expected `array` of at least length 7"),
    (msgpack.packb([126, 1, 3, "x", b"", [], {}]), "Expected `float`, got `str` - at `$[3]`"),
    (msgpack.packb([126, 1, 3, 1.0, b"", [["a", 9]], {}]), "Invalid enum value 9"),
    (msgpack.packb([126, 1, 3, 1.0, b"", [], {1: "v"}]), "Expected `str`, got `int`"),
    (msgpack.packb([126, 1, True, 1.0, b"", [], {}]), "Expected `int`, got `bool`"),
    (msgpack.packb([126, 0, 3, 1.0, b"", [], {}]), "Expected `int` >= 1 - at `$[1]`"),
    (msgpack.packb([126, 1, -1, 1.0, b"", [], {}]), "seq -1 is negative"),
    (msgpack.packb(["126", 1]), "Expected `int`, got `str`"),
    (msgpack.packb([124, 1]), "Invalid value 124"),
    (msgpack.packb({"tag": 126}), "Expected `array`, got `object`"),
    (b"\x91", "truncated"),
    (msgpack.packb([125, 1, "x"]) + b"\x00", "trailing characters"),
    (b"x" * 100, "exceeds the 64-byte limit"),
])  # fmt: skip
def test_bad_input_raises_decode_error_only(body, fragment):
    with pytest.raises(wire.DecodeError) as info:
        wire.decode(body, max_bytes=64)
    assert fragment in str(info.value)


def test_validation_in_post_init_runs_on_construction_too():
    with pytest.raises(ValueError, match="negative"):
        Sample(seq=-1, ratio=0.0, blob=b"", items=(), labels={})


def test_a_family_decoder_takes_only_its_own_tags():
    others = wire.Decoder([Other], what="other message", max_bytes=32)
    assert others.decode(wire.encode(Other(text="hi"))) == Other(text="hi")
    with pytest.raises(wire.DecodeError, match="not a valid other message: Invalid value 126"):
        others.decode(wire.encode(SAMPLES[0]))
    with pytest.raises(wire.DecodeError, match="exceeds the 32-byte limit"):
        others.decode(wire.encode(Other(text="x" * 40)))


def test_registry_is_append_only():
    with pytest.raises(ValueError, match="wire tag 126 is already used by Sample"):
        @wire.message
        class Clash(wire.Message, tag=126, kw_only=True):
            x: int
    with pytest.raises(ValueError, match="needs an integer tag"):
        @wire.message
        class Untagged(wire.Message, kw_only=True):
            x: int
    with pytest.raises(ValueError, match="must subclass meshd.wire.Message"):
        wire.message(Item)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not a registered wire message"):
        wire.encode(Item("a", Color.RED))  # type: ignore[arg-type]
    assert wire.registered()[126] is Sample


# --- every message of meshd through a real endpoint pair (h11's ConnectionPair) -----------------

from meshd import state as st  # noqa: E402
from meshd.gossip import (  # noqa: E402
    Ack,
    Gossip,
    IndirectPing,
    LeaveAck,
    Meta,
    Nack,
    Ping,
    PushPullReq,
    PushPullResp,
    State,
    Update,
)
from meshd.transport import ClusterKeys, Mesh, ZmqHost, new_secret  # noqa: E402

_ALIVE = Update(name="h7", state=State.ALIVE, incarnation=3, by="h7", addr="tcp://192.0.2.7:7946",
                meta=Meta(vtep="192.0.2.7", raft_addr="192.0.2.7:7947", labels={"rack": "r1"}))
_SUSPECT = Update(name="h8", state=State.SUSPECT, incarnation=1, by="h7")
_QOS = st.Qos(1000, 32768, 20)

EVERY_MESSAGE = [
    Ping(seq=1, target="h8", src="h7", src_addr="a", updates=(_ALIVE, _SUSPECT)),
    Ack(seq=1, src="h8", src_addr="b", updates=(_SUSPECT,)),
    IndirectPing(seq=2, target="h9", target_addr="c", src="h7", src_addr="a"),
    Nack(seq=2, src="h8", src_addr="b"),
    Gossip(src="h7", src_addr="a", updates=(_ALIVE,)),
    PushPullReq(src="h7", src_addr="a", join=True, members=(_ALIVE, _SUSPECT)),
    PushPullResp(src="h8", src_addr="b", members=(_ALIVE,)),
    LeaveAck(src="h8", src_addr="b", incarnation=4),
    st.CreateNetwork(name="blue", tenant="acme", subnet="10.1.0.0/24", gateway="10.1.0.9", vni=7, mode=st.Mode.VXLAN,
                     mtu=9000, egress_kbit=5, external=True, labels={"k": "v"}),
    st.DeleteNetwork(name="blue", force=True),
    st.UpdateNetwork(name="blue", mtu=1400, egress_kbit=0, external=False, labels={}),
    st.Connect(endpoint_id="c1", network="blue", host="h1", ip="10.1.0.5", mac="02:00:00:00:00:01", qos=_QOS),
    st.Disconnect(endpoint_id="c1", network="blue"),
    st.MoveEndpoint(endpoint_id="c1", host="h2"),
    st.SetQos(endpoint_id="c1", network="blue", qos=_QOS),
    st.AddPolicy(kind=st.PolicyKind.DENY_ONE_WAY, network="blue", peer="red", policy_id="p1"),
    st.RemovePolicy(policy_id="p1"),
    st.MarkHostStale(host="h3", stale=False),
    st.RemoveHost(host="h3"),
    st.PublishService(name="web", network="blue", endpoint_id="c1", port=80, check="tcp"),
    st.UnpublishService(name="web", network="blue", endpoint_id="c1"),
    st.SetServiceHealth(name="web", network="blue", endpoint_id="c1", healthy=False),
    st.NetworkCreated(name="blue", subnet="10.1.0.0/24", gateway="10.1.0.1", vni=7),
    st.NetworkDeleted(name="blue", endpoints_removed=3, policies_removed=1),
    st.NetworkUpdated(name="blue"),
    st.Connected(endpoint_id="c1", network="blue", host="h1", ip="10.1.0.5", prefix_len=24, mac="02:6d:0a:01:00:05",
                 gateway="10.1.0.1", vni=7, mtu=1450),
    st.Disconnected(endpoint_id="c1", network="blue", ip="10.1.0.5"),
    st.Moved(endpoint_id="c1", host="h2", old_host="h1", networks=("blue", "red")),
    st.QosUpdated(endpoint_id="c1", network="blue"),
    st.PolicyAdded(policy_id="p1"),
    st.PolicyRemoved(policy_id="p1"),
    st.HostMarked(host="h3", stale=True, endpoints=2),
    st.HostRemoved(host="h3", endpoints_removed=2),
    st.ServicePublished(name="web", network="blue", endpoint_id="c1", ip="10.1.0.2", port=80),
    st.ServiceUnpublished(name="web", network="blue", removed=1),
    st.ServiceHealthSet(name="web", network="blue", endpoint_id="c1", healthy=False, changed=True),
    st.CommandError(code=st.ErrorCode.IP_TAKEN, message="taken"),
]  # fmt: skip


def test_the_examples_cover_every_message_of_meshd():
    ours = {cls for cls in wire.registered().values() if cls.__module__.startswith("meshd.")}
    assert {type(m) for m in EVERY_MESSAGE} == ours


async def test_every_message_crosses_a_mesh_pair_unchanged(nursery):
    """Two real Mesh endpoints (ZeroMQ, CURVE, loopback): what one sends the other decodes equal."""
    secret = new_secret()
    a_host, b_host = ZmqHost(ClusterKeys.from_secret(secret)), ZmqHost(ClusterKeys.from_secret(secret))
    await nursery.start(a_host.run)
    await nursery.start(b_host.run)
    a, b = Mesh(a_host, "a", "tcp://127.0.0.1:0"), Mesh(b_host, "b", "tcp://127.0.0.1:0")
    a.open()
    b.open()
    for msg in EVERY_MESSAGE:
        assert await a.send(b.endpoint, wire.encode(msg), timeout_s=5.0)
        assert await b.receive_message() == ("a", msg)
    assert b.statistics().undecodable == 0


def test_every_message_of_a_family_decodes_only_in_its_family():
    from meshd.gossip._messages import DECODER as GOSSIP

    for msg in EVERY_MESSAGE:
        data = wire.encode(msg)
        family = [isinstance(msg, st.COMMAND_TYPES), isinstance(msg, st.Result.__args__ + (st.CommandError,)),
                  type(msg) in GOSSIP.types]  # fmt: skip
        decoders = [st.decode_command, st.decode_result, GOSSIP.decode]
        assert family.count(True) == 1
        for member, decode in zip(family, decoders, strict=True):
            if member:
                assert decode(data) == msg
            else:
                with pytest.raises(wire.DecodeError):
                    decode(data)

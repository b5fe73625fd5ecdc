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
    v3 = wire.decode(msgpack.packb([126, 3, 3, 1.0, b"", [["c", 2, "item-v2"]], {}, None, "x", "field-from-the-future"]))
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

"""meshd.wire: round trips, old and new versions, strict decoding, the append-only registry."""

from dataclasses import dataclass
from enum import IntEnum

import msgpack
import pytest

from meshd import wire


class Color(IntEnum):
    RED = 1
    BLUE = 2


@wire.struct
@dataclass(frozen=True, slots=True)
class Item:
    name: str
    color: Color


@wire.message(126, version=2)
@dataclass(frozen=True, slots=True)
class Sample:
    seq: int
    ratio: float
    blob: bytes
    items: tuple[Item, ...]
    labels: dict[str, str]
    maybe: int | None = None
    added_in_v2: str = "default"


SAMPLES = [
    Sample(0, 0.0, b"", (), {}),
    Sample(2**40, 1.5, b"\x00\xff", (Item("a", Color.RED), Item("b", Color.BLUE)), {"k": "v"}, 7, "x"),
]


@pytest.mark.parametrize("msg", SAMPLES)
def test_round_trip_is_exact(msg):
    assert wire.decode(wire.encode(msg)) == msg


def test_layout_is_tag_version_fields():
    raw = msgpack.unpackb(wire.encode(SAMPLES[0]), raw=False)
    assert raw[:2] == [126, 2]
    assert raw[2:] == [0, 0.0, b"", [], {}, None, "default"]


def test_older_version_fills_defaults_and_newer_extra_fields_are_ignored():
    v1 = msgpack.packb([126, 1, 3, 1.0, b"", [], {}, None])
    assert wire.decode(v1).added_in_v2 == "default"
    v3 = msgpack.packb([126, 3, 3, 1.0, b"", [], {}, None, "x", "field-from-the-future"])
    assert wire.decode(v3) == Sample(3, 1.0, b"", (), {}, None, "x")


@pytest.mark.parametrize("body,fragment", [
    (msgpack.packb([126, 1, 3]), "missing field 'ratio'"),
    (msgpack.packb([126, 1, 3, "x", b"", [], {}]), "expected a number"),
    (msgpack.packb([126, 1, 3, 1.0, b"", [["a", 9]], {}]), "9 is not a valid Color"),
    (msgpack.packb([126, 1, 3, 1.0, b"", [], {1: "v"}], strict_types=False), "not valid msgpack"),
    (msgpack.packb([126, 1, True, 1.0, b"", [], {}]), "expected an integer"),
    (msgpack.packb([126, 0, 3, 1.0, b"", [], {}]), "bad version 0"),
    (msgpack.packb(["126", 1]), "tag and version must be integers"),
    (b"\x91", "not valid msgpack"),
    (b"x" * 100, "exceeds"),
])
def test_bad_input_raises_decode_error_only(body, fragment):
    with pytest.raises(wire.DecodeError) as info:
        wire.decode(body, max_bytes=64)
    assert fragment in str(info.value)


def test_registry_is_append_only():
    with pytest.raises(ValueError, match="wire tag 126 is already used by Sample"):
        @wire.message(126)
        @dataclass(frozen=True)
        class Clash:
            x: int
    with pytest.raises(ValueError, match="must be a frozen dataclass"):
        @wire.message(125)
        @dataclass
        class Mutable:
            x: int
    assert wire.registered()[126] is Sample

"""Seed 001 framing: 8-byte header (length, type; network byte order) + msgpack map."""

import struct

import msgpack
import pytest

from meshd.api import ApiError, FrameError, MsgType, pack, unpack


def test_header_is_length_then_type_big_endian():
    frame = pack(MsgType.ENDPOINT_CONNECT, {"a": 1})
    body = msgpack.packb({"a": 1})
    assert frame[:8] == struct.pack(">II", len(body), 4)
    assert frame[8:] == body
    assert unpack(frame, max_bytes=100) == (4, {"a": 1})


@pytest.mark.parametrize("frame,code", [
    (b"\x00\x00\x00", ApiError.TRUNCATED),
    (struct.pack(">II", 5, 1) + msgpack.packb({}), ApiError.LENGTH_MISMATCH),
    (struct.pack(">II", 1, 1) + b"\xc1", ApiError.NOT_MSGPACK),
    (struct.pack(">II", 1, 1) + msgpack.packb(7), ApiError.NOT_A_MAP),
    (struct.pack(">II", 3, 1) + msgpack.packb({1: 2}), ApiError.NOT_MSGPACK),  # keys must be strings
    (pack(1, {"x": "y" * 200}), ApiError.OVERSIZED),
])
def test_bad_frames_raise_frame_error_with_code(frame, code):
    with pytest.raises(FrameError) as info:
        unpack(frame, max_bytes=128)
    assert info.value.code == code

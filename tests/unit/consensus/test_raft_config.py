"""RaftConfig validation and the message codec's strictness."""

from __future__ import annotations

import msgpack
import pytest

from consensus import RaftConfig
from consensus._messages import (
    Append, AppendResp, DecodeError, Entry, Heartbeat, InstallSnapshot, Propose, Vote, decode,
    encode,
)


def test_profiles_are_valid() -> None:
    assert RaftConfig.lan().problems() == []
    assert RaftConfig.local().problems() == []
    assert RaftConfig(snapshot_trailing_entries=0).problems() == []


def test_problems_name_the_field_value_and_fix() -> None:
    bad = RaftConfig(election_ticks=2, heartbeat_ticks=2, max_inflight_msgs=0,
                     snapshot_chunk_bytes=32 << 20)
    msgs = bad.problems()
    assert any(m.startswith("raft.heartbeat_ticks (2) must be smaller than raft.election_ticks (2)")
               for m in msgs)
    assert any(m.startswith("raft.max_inflight_msgs (0) must be greater than 0") for m in msgs)
    assert any("raft.snapshot_chunk_bytes (33554432) exceeds" in m and "lower it" in m for m in msgs)


@pytest.mark.parametrize("msg", [
    Append(3, "a", "b", 7, 2, (Entry(3, 8, 0, b"x"), Entry(3, 9, 1, b"")), 6),
    AppendResp(3, "b", "a", 7, True, 5, 2),
    Vote(4, "c", "a", 9, 3, pre=True),
    Heartbeat(3, "a", "b", 6, 12),
    InstallSnapshot(3, "a", "b", 100, 2, ("a", "b"), ("c",), 0, b"chunk", False),
    Propose(3, "b", "a", (b"cmd1", b"cmd2")),
])
def test_round_trip(msg) -> None:
    assert decode(encode(msg)) == msg


@pytest.mark.parametrize("frame", [
    b"",
    b"\xc1",
    msgpack.packb([99, 1, 0]),  # unknown tag
    msgpack.packb([5, 1, 3, "a"]),  # too few fields
    msgpack.packb([5, 1, "3", "a", "b", 6, 0]),  # wrong type
    msgpack.packb([5, 1, -3, "a", "b", 6, 0]),  # negative term
    msgpack.packb([1, 1, 3, "a", "b", 7, 2, [[3, 0, 0, b"x"]], 6]),  # entry index 0
    msgpack.packb({"a": 1}),
    msgpack.packb([5, 1, 3, "a", "b", 6, 0]) + b"\x00",  # trailing bytes
])
def test_bad_frames_raise_decode_error(frame) -> None:
    with pytest.raises(DecodeError):
        decode(frame)


def test_newer_peer_with_extra_fields_is_accepted() -> None:
    frame = msgpack.packb([5, 2, 3, "a", "b", 6, 0, "future"])
    assert decode(frame) == Heartbeat(3, "a", "b", 6, 0)

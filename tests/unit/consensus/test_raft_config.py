"""RaftConfig validation and the message codec's strictness."""

from __future__ import annotations

import msgpack
import pytest

from consensus import MemoryNetwork, Message, RaftConfig
from consensus._messages import (
    Append,
    AppendResp,
    ConfChange,
    ConfOp,
    DecodeError,
    Entry,
    Heartbeat,
    HeartbeatResp,
    InstallSnapshot,
    MatchReport,
    Propose,
    ReadIndex,
    ReadIndexResp,
    RelayAppend,
    RelayHeartbeat,
    RelaySnapshot,
    SnapshotResp,
    TimeoutNow,
    Vote,
    VoteResp,
    decode,
    encode,
)


def test_profiles_are_valid() -> None:
    assert RaftConfig.lan().problems() == []
    assert RaftConfig.local().problems() == []
    assert RaftConfig(snapshot_trailing_entries=0).problems() == []
    assert RaftConfig(relay_fanout=0).problems() == []  # 0: relay tree off
    assert RaftConfig(relay_fanout=-1).problems() == [
        "raft.relay_fanout (-1) must be 0 or greater; set 0 or a positive value"]
    assert RaftConfig(learner_heartbeat_ticks=1).problems() == []
    assert RaftConfig(heartbeat_ticks=2, learner_heartbeat_ticks=1).problems() == [
        "raft.learner_heartbeat_ticks (1) must be at least raft.heartbeat_ticks (2); raise learner_heartbeat_ticks"]
    assert RaftConfig(relay_report_ticks=0).problems()[0].startswith("raft.relay_report_ticks (0) must be greater")


def test_problems_name_the_field_value_and_fix() -> None:
    bad = RaftConfig(election_ticks=2, heartbeat_ticks=2, max_inflight_msgs=0,
                     snapshot_chunk_bytes=32 << 20)
    msgs = bad.problems()
    assert any(m.startswith("raft.heartbeat_ticks (2) must be smaller than raft.election_ticks (2)")
               for m in msgs)
    assert any(m.startswith("raft.max_inflight_msgs (0) must be greater than 0") for m in msgs)
    assert any("raft.snapshot_chunk_bytes (33554432) exceeds" in m and "lower it" in m for m in msgs)


@pytest.mark.parametrize(
    "msg",
    [
        Append(
            term=3,
            frm="a",
            to="b",
            prev_index=7,
            prev_term=2,
            entries=(Entry(3, 8, 0, b"x"), Entry(3, 9, 1, b"")),
            commit=6,
        ),
        AppendResp(term=3, frm="b", to="a", index=7, reject=True, hint_index=5, hint_term=2),
        Vote(term=4, frm="c", to="a", last_index=9, last_term=3, pre=True),
        Heartbeat(term=3, frm="a", to="b", commit=6, read_round=12),
        InstallSnapshot(
            term=3,
            frm="a",
            to="b",
            index=100,
            snap_term=2,
            voters=("a", "b"),
            learners=("c",),
            offset=0,
            chunk=b"chunk",
            done=False,
        ),
        Propose(term=3, frm="b", to="a", commands=(b"cmd1", b"cmd2")),
    ],
)
def test_round_trip(msg) -> None:
    assert decode(encode(msg)) == msg


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\xc1",
        msgpack.packb([99, 1, 0]),  # unknown tag
        msgpack.packb([5, 1, 3, "a"]),  # too few fields
        msgpack.packb([5, 1, "3", "a", "b", 6, 0]),  # wrong type
        msgpack.packb([5, 1, -3, "a", "b", 6, 0]),  # negative term
        msgpack.packb([1, 1, 3, "a", "b", 7, 2, [[3, 0, 0, b"x"]], 6]),  # entry index 0
        msgpack.packb({"a": 1}),
        msgpack.packb([5, 1, 3, "a", "b", 6, 0]) + b"\x00",  # trailing bytes
    ],
)
def test_bad_frames_raise_decode_error(frame) -> None:
    with pytest.raises(DecodeError):
        decode(frame)


def test_newer_peer_with_extra_fields_is_accepted() -> None:
    frame = msgpack.packb([5, 2, 3, "a", "b", 6, 0, "future"])
    assert decode(frame) == Heartbeat(version=2, term=3, frm="a", to="b", commit=6, read_round=0)
    entry_v2 = msgpack.packb([1, 1, 3, "a", "b", 7, 2, [[3, 8, 0, b"x", "entry-future"]], 6], use_bin_type=True)
    assert decode(entry_v2).entries == (Entry(3, 8, 0, b"x"),)


def test_older_peer_without_trailing_fields_gets_the_defaults() -> None:
    assert decode(msgpack.packb([5, 1, 3, "a", "b", 6])) == Heartbeat(term=3, frm="a", to="b", commit=6)
    assert decode(msgpack.packb([2, 1, 3, "b", "a", 7])) == AppendResp(term=3, frm="b", to="a", index=7)


#: frames written by the hand-made codec consensus used before msgspec: peers
#: still running it send exactly these bytes, and must be understood
GOLDEN = [
    (Append(term=3, frm="h1", to="h2", prev_index=7, prev_term=2,
            entries=(Entry(3, 8, 0, b"cmd"), Entry(3, 9, 2, b"")), commit=6),
     "99010103a26831a2683207029294030800c403636d6494030902c40006"),
    (AppendResp(term=3, frm="h2", to="h1", index=7, reject=True, hint_index=5, hint_term=2),
     "99020103a26832a2683107c30502"),
    (Vote(term=4, frm="h1", to="h2", last_index=9, last_term=3, pre=True), "99030104a26831a268320903c3c2"),
    (VoteResp(term=4, frm="h2", to="h1", granted=True, pre=True), "97040104a26832a26831c3c3"),
    (Heartbeat(term=3, frm="h1", to="h2", commit=6, read_round=11), "97050103a26831a26832060b"),
    (HeartbeatResp(term=3, frm="h2", to="h1", read_round=11), "96060103a26832a268310b"),
    (InstallSnapshot(term=3, frm="h1", to="h2", index=100, snap_term=2, voters=("h1", "h2"), learners=("h3",),
                     offset=0, chunk=b"snap", done=True),
     "9c070103a26831a26832640292a26831a2683291a2683300c404736e6170c3"),
    (SnapshotResp(term=3, frm="h2", to="h1", index=100, received=4), "97080103a26832a268316404"),
    (TimeoutNow(term=3, frm="h1", to="h2"), "95090103a26831a26832"),
    (Propose(term=3, frm="h2", to="h1", commands=(b"a", b"b")), "960a0103a26832a2683192c40161c40162"),
    (ReadIndex(term=3, frm="h2", to="h1", ctx=77), "960b0103a26832a268314d"),
    (ReadIndexResp(term=3, frm="h1", to="h2", ctx=77, index=9), "970c0103a26831a268324d09"),
]  # fmt: skip

#: the relay tree's messages (tags 13-16), pinned so their layout cannot drift
RELAY_FRAMES = [
    (RelayAppend(term=3, frm="h2", to="h9", leader="h1", prev_index=7, prev_term=2,
                 entries=(Entry(3, 8, 0, b"x"),), commit=8),
     "9a0d0103a26832a26839a2683107029194030800c4017808"),
    (RelayHeartbeat(term=3, frm="h2", to="h9", leader="h1", commit=6), "970e0103a26832a26839a2683106"),
    (RelaySnapshot(term=3, frm="h2", to="h9", leader="h1", index=9, snap_term=2, voters=("h1",),
                   learners=("h2", "h9"), offset=0, chunk=b"ab", done=True),
     "9d0f0103a26832a26839090291a2683192a26832a2683900c4026162c3a26831"),
    (MatchReport(term=3, frm="h9", to="h1", index=8), "96100103a26839a2683108"),
]  # fmt: skip


@pytest.mark.parametrize("msg,golden", GOLDEN + RELAY_FRAMES, ids=lambda x: type(x).__name__)
def test_every_message_is_byte_compatible_with_the_previous_codec(msg, golden) -> None:
    assert encode(msg).hex() == golden
    assert decode(bytes.fromhex(golden)) == msg


def test_conf_changes_in_existing_logs_decode_and_encode_the_same() -> None:
    for change, golden in [
        (ConfChange(ConfOp.BOOTSTRAP, voters=("a", "b")), "9304a092a161a162"),
        (ConfChange(ConfOp.ADD_LEARNER, "h4"), "9301a2683490"),
    ]:
        assert change.encode().hex() == golden
        assert ConfChange.decode(bytes.fromhex(golden)) == change
    for bad in (msgpack.packb([9, "n", []]), msgpack.packb(["0", "n", []]), b"\xc1"):
        with pytest.raises(DecodeError, match="not a conf change"):
            ConfChange.decode(bad)


async def test_every_message_crosses_a_transport_pair_unchanged() -> None:
    """Through two MemoryTransport endpoints, as the driver sends and receives (h11's ConnectionPair)."""
    assert {type(m) for m, _ in GOLDEN + RELAY_FRAMES} == set(Message.__args__)
    net = MemoryNetwork()
    a, b = net.transport("h1"), net.transport("h2")
    for msg, _ in GOLDEN + RELAY_FRAMES:
        await a.send("h2", encode(msg))
        frm, frame = await b.receive()
        assert (frm, decode(frame)) == ("h1", msg)

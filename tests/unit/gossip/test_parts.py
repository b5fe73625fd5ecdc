"""Messages, suspicion timeout, health awareness and the broadcast queue."""

from __future__ import annotations

import math

import pytest

from meshd import wire
from meshd.gossip import (
    MESSAGES,
    Ack,
    Gossip,
    GossipConfig,
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
from meshd.gossip._awareness import Awareness
from meshd.gossip._broadcast import BroadcastQueue, retransmit_limit
from meshd.gossip._suspicion import Suspicion, suspicion_timeout_s

META = Meta(vtep="192.0.2.7", raft_addr="192.0.2.7:7947", api_addr="192.0.2.7:30028",
            version="0.1.0", role="worker", labels={"rack": "r1", "zone": "a"}, underlay_mtu=1500,
            dataplane=("vxlan", "bridge", "veth", "macvlan"))
ALIVE = Update(name="h7", state=State.ALIVE, incarnation=3, by="h7", addr="tcp://192.0.2.7:7946",
               meta=META)
SUSPECT = Update(name="h8", state=State.SUSPECT, incarnation=1, by="h7")

EXAMPLES = [
    Ping(seq=1, target="h8", src="h7", src_addr="a", updates=(ALIVE, SUSPECT)),
    Ack(seq=1, src="h8", src_addr="b", updates=(SUSPECT,)),
    IndirectPing(seq=2, target="h9", target_addr="c", src="h7", src_addr="a"),
    Nack(seq=2, src="h8", src_addr="b"),
    Gossip(src="h7", src_addr="a", updates=(ALIVE,)),
    PushPullReq(src="h7", src_addr="a", join=True, members=(ALIVE, SUSPECT)),
    PushPullResp(src="h8", src_addr="b", members=(ALIVE,)),
    LeaveAck(src="h8", src_addr="b", incarnation=4),
]


@pytest.mark.parametrize("msg", EXAMPLES, ids=lambda m: type(m).__name__)
def test_every_message_survives_the_wire_unchanged(msg):
    assert wire.decode(wire.encode(msg)) == msg


def test_every_gossip_message_has_an_example_and_a_tag_in_range():
    assert {type(m) for m in EXAMPLES} == set(MESSAGES)
    assert all(1 <= cls.TAG <= 63 for cls in MESSAGES)


def test_an_out_of_range_state_is_a_decode_error_not_a_crash():
    raw = wire.encode(Gossip(src="a", src_addr="a", updates=(SUSPECT,)))
    bad = raw.replace(b"\x02\x01\xa2h7", b"\x09\x01\xa2h7")  # state 2 -> 9
    assert bad != raw
    with pytest.raises(wire.DecodeError):
        wire.decode(bad)


def test_metadata_is_bounded_and_says_how_to_fix_it():
    with pytest.raises(ValueError, match="shorten"):
        Meta(labels={"k": "v" * 2000})
    with pytest.raises(ValueError, match="labels"):
        Meta(labels={str(i): "" for i in range(100)})
    with pytest.raises(ValueError, match="link kinds"):
        Meta(dataplane=("",) * 100)
    with pytest.raises(ValueError, match="shorten"):
        Meta(dataplane=("x" * 100,) * 11)
    assert META.size_bytes() < 200


def test_an_older_peers_shorter_metadata_still_decodes():
    raw = wire.encode(Gossip(src="a", src_addr="a", updates=(ALIVE,)))
    import msgpack
    tag, version, src, src_addr, updates = msgpack.unpackb(raw)
    updates[0][5] = updates[0][5][:3]  # a peer that only knew vtep, raft and api addresses
    msg = wire.decode(msgpack.packb([tag, version, src, src_addr, updates]))
    assert msg.updates[0].meta == Meta(vtep=META.vtep, raft_addr=META.raft_addr,
                                       api_addr=META.api_addr)


@pytest.mark.parametrize(
    ("confirmations", "expected"),
    [(0, 30.0), (1, 30.0 - 25.0 * math.log(2) / math.log(4)),
     (2, 30.0 - 25.0 * math.log(3) / math.log(4)), (3, 5.0), (9, 5.0)],
)
def test_suspicion_timeout_shrinks_with_confirmations(confirmations, expected):
    assert suspicion_timeout_s(confirmations, 3, 5.0, 30.0) == pytest.approx(expected)


def test_suspicion_counts_each_confirmer_once_and_not_the_accuser():
    s = Suspicion(by="a", k=2, min_s=2.0, max_s=12.0, start=100.0)
    assert s.deadline == 112.0
    assert not s.confirm("a")
    assert s.confirm("b") and not s.confirm("b")
    assert 102.0 < s.deadline < 112.0
    assert s.confirm("c") and s.deadline == 102.0
    assert not s.confirm("d")  # already at the floor
    assert Suspicion(by="a", k=0, min_s=2.0, max_s=12.0, start=0).deadline == 2.0


def test_awareness_stretches_timeouts_within_bounds():
    aw = Awareness(max_multiplier=4)
    assert aw.scale(0.5) == 0.5
    aw.apply_delta(10)
    assert aw.score == 3 and aw.scale(0.5) == 2.0
    aw.apply_delta(-1)
    assert aw.scale(0.5) == 1.5
    aw.apply_delta(-10)
    assert aw.score == 0


def test_broadcast_queue_sends_newest_fact_least_sent_first_and_retires_it():
    q: BroadcastQueue[str] = BroadcastQueue(retransmit_mult=2)
    n = 9  # limit = 2 * ceil(log10(10)) = 2
    assert retransmit_limit(2, n) == 2
    q.push("a", "a1")
    assert q.take(5, n) == ["a1"]
    q.push("b", "b1")
    q.push("a", "a2")  # replaces a1 and is unsent again
    assert q.take(1, n) == ["b1"]
    assert q.take(1, n) == ["a2"]
    assert sorted(q.take(5, n)) == ["a2", "b1"]
    assert q.take(5, n) == [] and len(q) == 0


def test_retransmit_limit_grows_with_log_of_cluster_size():
    assert [retransmit_limit(4, n) for n in (1, 9, 10, 99, 100, 9999)] == [4, 4, 8, 8, 12, 16]


def test_config_profiles_are_valid_and_problems_name_field_value_and_fix():
    assert GossipConfig.lan().problems() == [] and GossipConfig.local().problems() == []
    lan = GossipConfig.lan()
    assert (lan.probe_interval_s, lan.probe_timeout_s, lan.suspicion_mult, lan.gossip_interval_s,
            lan.gossip_nodes, lan.push_pull_interval_s) == (1.0, 0.5, 4, 0.2, 3, 30.0)
    bad = GossipConfig(probe_timeout_s=2.0, gossip_nodes=0)
    text = "\n".join(bad.problems())
    assert "gossip.probe_timeout_s (2.0)" in text and "lower the timeout" in text
    assert "gossip.gossip_nodes (0)" in text


def test_a_push_pull_of_a_10000_member_cluster_is_a_valid_message_but_piggyback_is_bounded():
    from meshd.gossip._messages import MAX_UPDATES_PER_MESSAGE

    many = tuple(Update(name=f"h{i}", state=State.ALIVE, incarnation=0, by=f"h{i}")
                 for i in range(10_000))
    msg = PushPullResp(src="a", src_addr="a", members=many)
    assert wire.decode(wire.encode(msg)) == msg
    with pytest.raises(ValueError, match="updates exceed"):
        Gossip(src="a", src_addr="a", updates=many[: MAX_UPDATES_PER_MESSAGE + 1])

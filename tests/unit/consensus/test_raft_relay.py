"""The relay tree: its pure layout, and cores replicating through it (scripted)."""

from __future__ import annotations

import dataclasses

import pytest
from raft_harness import CFG, Env

from consensus import relay_tree
from consensus._messages import ConfOp, Heartbeat, RelayAppend, RelayHeartbeat

RELAY_CFG = dataclasses.replace(CFG, relay_fanout=2, relay_report_ticks=2)
LEARNERS = [f"l{i}" for i in range(1, 8)]


def test_small_sets_are_all_first_tier_and_fanout_zero_is_off() -> None:
    assert relay_tree(["b", "a"], 2).first_tier == ("a", "b")
    assert relay_tree(["b", "a"], 2).parent("a") is None
    big = [f"x{i:02d}" for i in range(40)]
    assert relay_tree(big, 0).first_tier == tuple(big)
    assert all(relay_tree(big, 0).parent(x) is None for x in big)
    assert relay_tree(big, 0).children(big[0]) == ()
    with pytest.raises(ValueError, match="relay fanout -1"):
        relay_tree(big, -1)


@pytest.mark.parametrize("n,fanout", [(1, 1), (7, 1), (7, 2), (40, 3), (1000, 16), (9995, 16)])
def test_every_learner_has_one_parent_and_the_tree_is_shallow(n: int, fanout: int) -> None:
    learners = [f"h{i:05d}" for i in range(n)]
    tree = relay_tree(reversed(learners), fanout)
    assert tree.first_tier == tuple(learners[:fanout])
    for x in learners:
        p = tree.parent(x)
        assert (p is None) == (x in tree.first_tier)
        if p is not None:
            assert x in tree.children(p) and p < x  # parents come first: no cycles
        assert len(tree.children(x)) <= fanout
    assert sum(len(tree.children(x)) for x in learners) == n - len(tree.first_tier)
    hops = {x: 1 if tree.parent(x) is None else 0 for x in learners}
    for x in learners:  # sorted order: a parent's hop count is known before its children's
        parent = tree.parent(x)
        if parent is not None:
            hops[x] = hops[parent] + 1
    assert max(hops.values()) == tree.depth()
    if fanout > 1:
        assert tree.depth() <= 1 + max(1, n).bit_length()  # logarithmic, not linear
    assert relay_tree(["a"], fanout).parent("zzz") is None and relay_tree(["a"], fanout).children("zzz") == ()


def relay_env() -> Env:
    env = Env(["1", "2", "3"], cfg=RELAY_CFG)
    env.campaign("1")
    env.propose("1", b"before")
    for x in LEARNERS:
        env.add_node(x)
        env.conf("1", ConfOp.ADD_LEARNER, x)
        env.tick_all(2)
    env.tick_all(4)
    return env


def test_the_leader_sends_to_voters_and_the_first_tier_only() -> None:
    env = relay_env()
    env.delivered.clear()
    env.propose("1", b"a", b"b", seq0=5)
    env.tick_all(3)
    for x in LEARNERS:
        assert env.items(x) == [b"before", b"a", b"b"], x
    leader_to = {m for (kind, _, frm) in env.delivered if frm == "1" for m in [kind]}
    assert "RelayAppend" not in leader_to
    appended_by = {frm for (kind, _, frm) in env.delivered if kind == "RelayAppend"}
    assert appended_by == {"l1", "l2", "l3"}  # l1: l3,l4; l2: l5,l6; l3: l7
    assert sorted(env.nodes["1"].progress) == ["2", "3", "l1", "l2"]


def test_learners_are_heartbeated_every_learner_heartbeat_ticks_voters_every_tick() -> None:
    env = relay_env()
    every = env.cfg.learner_heartbeat_ticks
    assert every == 10 and env.cfg.heartbeat_ticks == 1
    env.delivered.clear()
    env.tick_all(2 * every)
    beats = {frm: n for (kind, _, frm), n in env.delivered.items() if kind == "Heartbeat"}
    relay_beats = sum(n for (kind, _, _), n in env.delivered.items() if kind == "RelayHeartbeat")
    assert beats == {"1": 2 * (2 * every) + 2 * 2}  # voters 2, 3 every tick; first tier l1, l2 twice
    assert relay_beats == 5 * 2  # l3..l7 from their relays, twice
    assert all(env.nodes[x].leader == "1" for x in LEARNERS)


def test_relays_forward_committed_entries_only() -> None:
    env = relay_env()
    env.cut |= {frozenset(("1", "2")), frozenset(("1", "3"))}  # the leader cannot commit
    env.nodes["1"].propose([b"not a session envelope, never committed"])
    env.stabilize()
    env.tick_all(3)
    leader = env.nodes["1"]
    assert leader.log.last_index() > leader.log.commit
    assert env.nodes["l1"].log.last_index() == leader.log.last_index()  # first tier: has it
    for x in LEARNERS[2:]:  # relayed: only the committed prefix
        assert env.nodes[x].log.last_index() == leader.log.commit, x
    env.heal()
    env.tick_all(3)
    for x in LEARNERS:
        assert env.nodes[x].log.commit == leader.log.commit == leader.log.last_index(), x


def test_status_shows_relayed_learners_from_their_reports_and_promotion_goes_direct() -> None:
    env = relay_env()
    env.propose("1", b"c", seq0=9)
    env.tick_all(RELAY_CFG.relay_report_ticks + 2)
    peers = {p.id: p for p in env.nodes["1"].status().peers}
    assert set(peers) == {"2", "3", *LEARNERS}
    last = env.nodes["1"].log.last_index()
    for x in LEARNERS[2:]:
        assert peers[x].state == "relayed" and peers[x].match == last and peers[x].lag == 0, peers[x]
    assert peers["l1"].state == "replicate"
    env.conf("1", ConfOp.PROMOTE, "l7")
    env.tick_all(2)
    assert "l7" in env.nodes["1"].progress and env.nodes["1"].progress["l7"].state.value == "replicate"
    env.propose("1", b"d", seq0=12)
    env.tick_all(3)
    assert all(env.items(x)[-1] == b"d" for x in LEARNERS), {x: env.items(x)[-1:] for x in LEARNERS}


def test_learners_forward_proposals_and_reads_to_the_real_leader() -> None:
    env = relay_env()
    assert env.nodes["l7"].leader == "1"  # learned from its relay's RelayAppend
    env.propose("l7", b"from a leaf", client="leaf")
    env.tick_all(3)
    assert env.items("1")[-1] == b"from a leaf" == env.items("l7")[-1]
    leaf = env.nodes["l7"]
    leaf.read_index(99)  # the read barrier a restarting host uses
    seen = []
    for _ in range(20):
        for i in sorted(env.nodes):
            if i != "l7":
                env.process(i)
        while leaf.has_ready():
            rd = leaf.ready()
            seen += rd.read_states
            env.queue.extend(rd.messages)
            leaf.advance(rd)
        env.deliver()
    assert [(rs.ctx, rs.index) for rs in seen] == [(99, env.nodes["1"].log.commit)]


def test_relay_messages_never_hold_off_a_voters_election_and_a_leader_ignores_them() -> None:
    env = relay_env()
    voter, learner, leader = env.nodes["2"], env.nodes["l3"], env.nodes["1"]
    term = leader.term
    for core in (voter, learner):
        core.election_elapsed = 5
        core.step(RelayHeartbeat(term=term, frm="l1", to=core.id, leader="1", commit=0))
    assert voter.election_elapsed == 5  # a relay may still name a leader that is gone
    assert learner.election_elapsed == 0
    voter.step(Heartbeat(term=term, frm="1", to="2", commit=0))
    assert voter.election_elapsed == 0
    # a relay with an older membership that still counts the leader as its child
    leader.step(RelayAppend(term=term, frm="l1", to="1", leader="1", prev_index=0, prev_term=0,
                            entries=(), commit=0))
    assert leader.role.value == "leader" and not leader.ready().messages


def test_status_says_which_learners_answer_at_their_cadence() -> None:
    """The autopilot promotes only learners the leader hears from at their cadence: one that is cut
    off (or starved) shows silent ticks and is not responsive, though its lag is small."""
    env = relay_env()
    env.tick_all(2 * RELAY_CFG.learner_heartbeat_ticks)
    peers = {p.id: p for p in env.nodes["1"].status().peers}
    assert all(p.responsive for p in peers.values()), peers
    assert peers["2"].silent_ticks <= 1 and peers["l7"].state == "relayed"
    cadence = {"l1": RELAY_CFG.learner_heartbeat_ticks, "l7": RELAY_CFG.relay_report_ticks}
    env.cut |= {frozenset(("1", "l1")), frozenset(("1", "l7"))}
    env.tick_all(2 * max(cadence.values()) + 2)
    peers = {p.id: p for p in env.nodes["1"].status().peers}
    assert not peers["l7"].responsive and peers["l7"].silent_ticks > 2 * cadence["l7"] + 1
    env.tick_all(2 * cadence["l1"])
    peers = {p.id: p for p in env.nodes["1"].status().peers}
    assert not peers["l1"].responsive and peers["l1"].silent_ticks > 2 * cadence["l1"] + 1
    assert peers["l1"].lag == 0  # caught up by index, and still no voter candidate
    assert all(peers[x].responsive for x in ("2", "3", "l2", "l3")), peers
    env.heal()
    env.tick_all(2 * max(cadence.values()) + 2)
    peers = {p.id: p for p in env.nodes["1"].status().peers}
    assert peers["l1"].responsive and peers["l7"].responsive


def test_a_learner_never_heard_from_is_not_responsive() -> None:
    env = Env(["1", "2", "3"], cfg=RELAY_CFG)
    env.campaign("1")
    env.add_node("l1")
    env.cut |= {frozenset(("1", "l1"))}
    env.conf("1", ConfOp.ADD_LEARNER, "l1")
    env.tick_all(3)
    peer = {p.id: p for p in env.nodes["1"].status().peers}["l1"]
    assert peer.silent_ticks is None and not peer.responsive and peer.lag <= 3


def test_relays_are_the_learners_with_children() -> None:
    for n in (0, 2, 3, 7, 16, 17, 18, 300):
        tree = relay_tree([f"x{i:04d}" for i in range(n)], 16 if n >= 16 else 2)
        assert tree.relays() == tuple(x for x in tree.order if tree.children(x)), n
    assert relay_tree(LEARNERS, 0).relays() == ()


def test_a_healthy_tree_is_never_adopted_even_after_a_new_election() -> None:
    env = relay_env()
    env.tick_all(5 * RELAY_CFG.learner_heartbeat_ticks)
    assert env.nodes["1"].adopted == frozenset()
    env.isolate("1")  # a new leader: every relay gets its grace again, and answers
    env.forget_leader("2", "3")
    env.campaign("2")
    env.heal()
    env.delivered.clear()
    env.tick_all(5 * RELAY_CFG.learner_heartbeat_ticks)
    leader = env.nodes["2"]
    assert leader.role.value == "leader" and leader.adopted == frozenset()
    assert sorted(leader.progress) == ["1", "3", "l1", "l2"]
    assert not [frm for (kind, _, frm) in env.delivered if kind == "Append" and frm != "2"]


def test_the_leader_feeds_a_dead_relays_children_until_it_answers_again() -> None:
    """l1 relays to l3 and l4 (and l3 to l7). While l1 is down, new entries reach them from
    the leader after twice the learner heartbeat, not after the autopilot removes l1; l3 keeps
    relaying to l7. When l1 answers again the leader hands them back."""
    env = relay_env()
    every = RELAY_CFG.learner_heartbeat_ticks
    env.tick_all(2 * every)
    env.take_lines()
    env.down.add("l1")
    env.propose("1", b"while l1 is down", seq0=20)
    assert all(env.items(x)[-1] != b"while l1 is down" for x in ("l3", "l4", "l7"))
    env.tick_all(3 * every + 1)
    leader = env.nodes["1"]
    assert leader.adopted == {"l3", "l4"}
    assert "1 feeds l3, l4 itself: their relay stopped answering" in env.take_lines()
    for x in ("l3", "l4", "l7"):
        assert env.items(x)[-1] == b"while l1 is down", x
    peers = {p.id: p for p in leader.status().peers}
    assert peers["l3"].adopted and peers["l3"].responsive and peers["l3"].state == "replicate"
    assert not peers["l1"].responsive and not peers["l1"].adopted and not peers["l7"].adopted
    env.propose("1", b"next", seq0=21)  # replicated to the adopted ones at once, as to the first tier
    assert all(env.items(x)[-1] == b"next" for x in ("l3", "l4", "l7"))
    env.down.discard("l1")
    env.tick_all(2 * every)
    assert leader.adopted == frozenset() and sorted(leader.progress) == ["2", "3", "l1", "l2"]
    assert "1 hands l3, l4 back to their relay" in env.take_lines()
    env.delivered.clear()
    env.propose("1", b"after", seq0=22)
    env.tick_all(2)
    assert all(env.items(x)[-1] == b"after" for x in LEARNERS)
    assert {frm for (kind, _, frm) in env.delivered if kind == "RelayAppend"} == {"l1", "l2", "l3"}


def test_a_deeper_relay_is_watched_through_its_reports() -> None:
    env = relay_env()  # l3 is relayed (by l1) and relays to l7; it reports every 2 ticks
    every = RELAY_CFG.learner_heartbeat_ticks
    env.tick_all(2 * every)
    env.down.add("l3")
    env.tick_all(2 * every)
    leader = env.nodes["1"]
    assert leader.adopted == {"l7"}
    env.propose("1", b"to l7", seq0=30)
    assert env.items("l7")[-1] == b"to l7"
    env.conf("1", ConfOp.REMOVE, "l3")  # what the autopilot does after 30 s; the tree moves
    assert "l7" not in relay_tree(env.nodes["1"].log.conf().learners, 2).children("l3")
    env.tick_all(2 * every)
    assert leader.adopted == frozenset()
    env.propose("1", b"after removal", seq0=31)
    env.tick_all(3)
    assert all(env.items(x)[-1] == b"after removal" for x in LEARNERS if x != "l3")

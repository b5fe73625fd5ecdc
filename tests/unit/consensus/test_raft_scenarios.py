"""Scripted scenarios of the pure core, in the style of etcd's interaction tests.

Each test drives named nodes step by step and checks the cores' own log
lines and resulting state.
"""

from __future__ import annotations

import pytest
from raft_harness import Env

from consensus._errors import ConfChangeInProgress, NotLeader, ProposalDropped
from consensus._messages import Append, ConfChange, ConfOp, Vote


def elect(env: Env, node: str) -> None:
    env.campaign(node)
    assert env.leaders() == [node]
    env.take_lines()


def test_election_with_pre_vote() -> None:
    env = Env(["1", "2", "3"])
    env.campaign("1")
    assert env.take_lines() == [
        "1 became pre-candidate at term 1",
        "2 granted pre-vote to 1 at term 2",
        "3 granted pre-vote to 1 at term 2",
        "1 became candidate at term 2",
        "2 granted vote to 1 at term 2",
        "3 granted vote to 1 at term 2",
        "1 became leader at term 2",
        "2 follows leader 1 at term 2",
        "3 follows leader 1 at term 2",
    ]
    # The new leader's no-op (index 2, after the bootstrap entry) is committed everywhere.
    assert all(n.log.commit == 2 for n in env.nodes.values())


def test_election_timeout_elects_exactly_one_leader() -> None:
    env = Env(["1", "2", "3", "4", "5"], seed=7)
    env.tick_all(30)
    assert len(env.leaders()) == 1
    terms = {n.term for n in env.nodes.values()}
    assert len(terms) == 1


def test_pre_vote_blocks_disruptive_rejoin() -> None:
    env = Env(["1", "2", "3"])
    elect(env, "1")
    env.isolate("3")
    for _ in range(50):  # 3 times out again and again while cut off
        env.tick("3")
        env.stabilize()
    assert env.nodes["3"].term == 2, "pre-vote must not raise the term of an isolated node"
    env.heal()
    env.nodes["3"].campaign()
    env.stabilize()
    assert env.leaders() == ["1"]
    assert env.nodes["1"].term == 2
    assert "1 ignored pre-vote from 3: leader lease" in env.lines
    assert "2 ignored pre-vote from 3: leader lease" in env.lines


def _ticks_to_first_campaign(env: Env) -> int:
    for ticks in range(1, 3 * env.cfg.election_ticks):
        env.tick_all()
        if any("became pre-candidate" in line for line in env.lines):
            return ticks
    raise AssertionError("nobody campaigned")


def test_advanced_election_clock_campaigns_within_one_timeout() -> None:
    """Clocks advanced at the start (RaftConfig.initial_election_advance): the first campaign comes
    within election_ticks ticks; without the advance, never before election_ticks."""
    et = Env(["1"]).cfg.election_ticks
    for seed in range(30):
        slow, fast = Env(["1", "2", "3"], seed=seed), Env(["1", "2", "3"], seed=seed)
        for core in fast.nodes.values():
            core.advance_election_clock()
        assert _ticks_to_first_campaign(slow) >= et, f"seed {seed}"
        assert _ticks_to_first_campaign(fast) <= et, f"seed {seed}"
        fast.tick_all(4 * et)
        assert len(fast.leaders()) == 1, f"seed {seed}: no leader"


def test_restarted_node_with_advanced_clock_does_not_depose_the_leader() -> None:
    env = Env(["1", "2", "3"])
    elect(env, "1")
    env.nodes["3"].leader = None  # 3 restarts: it knows no leader yet, and advances its clock
    env.nodes["3"].advance_election_clock()
    while not any("3 became pre-candidate" in line for line in env.lines):
        env.tick("3")  # its first election fires before the leader's next heartbeat reaches it
        env.stabilize()
    assert env.leaders() == ["1"] and env.nodes["1"].term == 2
    assert "1 ignored pre-vote from 3: leader lease" in env.lines
    env.tick("1")  # the next heartbeat: 3 follows again
    env.stabilize()
    assert env.nodes["3"].leader == "1" and env.leaders() == ["1"]


def test_advance_keeps_a_known_leaders_lease() -> None:
    env = Env(["1", "2", "3"])
    elect(env, "1")
    before = env.nodes["2"].election_elapsed
    env.nodes["2"].advance_election_clock()
    assert env.nodes["2"].election_elapsed == before


def test_check_quorum_steps_leader_down() -> None:
    env = Env(["1", "2", "3"])
    elect(env, "1")
    env.isolate("1")
    env.tick("1", env.cfg.election_ticks)
    env.stabilize()
    assert env.nodes["1"].role.value == "leader"  # the first round still saw everyone
    env.tick("1", env.cfg.election_ticks)
    env.stabilize()
    assert env.nodes["1"].role.value == "follower"
    assert "1 lost contact with a quorum; stepping down" in env.take_lines()
    with pytest.raises(NotLeader):
        env.nodes["1"].propose([b"x"])


def test_log_conflict_repair_with_fast_backtracking() -> None:
    env = Env(["1", "2", "3"])
    elect(env, "1")
    env.propose("1", b"a", b"b")
    # 1 is cut off and takes many entries nobody else sees.
    env.isolate("1")
    env.nodes["1"].propose([b"lost%d" % i for i in range(20)])
    env.stabilize()
    env.down.add("1")
    env.heal()
    env.forget_leader("2", "3")
    elect(env, "2")
    env.propose("2", b"c", b"d", client="c2")
    env.down.discard("1")
    env.nodes["1"].tick()  # still believes it leads at the old term
    env.tick_all(2)
    assert env.leaders() == ["2"]
    assert env.items("1") == env.items("2") == env.items("3") == [b"a", b"b", b"c", b"d"]
    n1, n2 = env.nodes["1"].log, env.nodes["2"].log
    assert [e.term for e in n1.entries] == [e.term for e in n2.entries]
    # Fast backtracking: the 20 divergent entries were skipped in one probe,
    # not one round trip per entry.
    assert env.delivered[("AppendResp", True, "1")] <= 1


def test_current_term_commit_rule() -> None:
    """An old-term entry replicated to a majority is not committed by counting."""
    env = Env(["1", "2", "3"])
    elect(env, "1")
    env.isolate("1")
    env.nodes["1"].propose([b"old"])
    env.process("1")
    old = env.nodes["1"].log.last_index()
    # deliver the entry to 2 only, then 1 dies before it learns of the ack
    env.queue = [m for m in env.queue if m.to == "2"]
    env.heal()
    env.deliver()
    env.queue.clear()
    env.down.add("1")
    env.forget_leader("2", "3")
    elect(env, "2")  # 2 has the entry and wins; its no-op commits it indirectly
    assert env.nodes["2"].log.commit > old
    assert env.nodes["2"].log.term(env.nodes["2"].log.commit) == env.nodes["2"].term


def test_snapshot_install_to_lagging_follower() -> None:
    env = Env(["1", "2", "3"])
    elect(env, "1")
    env.down.add("3")
    env.propose("1", *[b"v%d" % i for i in range(30)])
    leader = env.nodes["1"]
    leader.compact(leader.log.applied, env.appliers["1"].snapshot())
    env.propose("1", b"after", seq0=40)
    assert leader.log.first_index() > 2
    env.down.discard("3")
    env.tick_all(3)
    assert env.items("3") == env.items("1")
    assert any("3 restored snapshot" in line for line in env.lines)
    # Chunked: the 16-byte chunk size took several InstallSnapshot messages.
    assert env.delivered[("InstallSnapshot", None, "1")] > 3
    assert env.nodes["3"].log.commit == leader.log.commit


def test_learner_promotion() -> None:
    env = Env(["1", "2", "3"])
    elect(env, "1")
    env.propose("1", b"x")
    env.add_node("4")
    env.conf("1", ConfOp.ADD_LEARNER, "4")
    env.tick_all(2)
    assert env.items("4") == [b"x"]
    status = env.nodes["1"].status()
    assert status.learners == ("4",) and "4" not in status.voters
    for _ in range(40):  # a learner never campaigns
        env.nodes["4"].tick()
    assert env.nodes["4"].role.value == "follower"
    env.conf("1", ConfOp.PROMOTE, "4")
    assert env.nodes["1"].status().voters == ("1", "2", "3", "4")
    assert env.nodes["4"].status().voters == ("1", "2", "3", "4")


def test_one_membership_change_at_a_time() -> None:
    env = Env(["1", "2", "3"])
    elect(env, "1")
    env.down.add("2")
    env.down.add("3")
    env.add_node("4")
    env.nodes["1"].propose_conf(ConfChange(ConfOp.ADD_LEARNER, "4"))
    with pytest.raises(ConfChangeInProgress):
        env.nodes["1"].propose_conf(ConfChange(ConfOp.ADD_LEARNER, "5"))


def test_membership_change_with_a_node_down() -> None:
    env = Env(["1", "2", "3"])
    elect(env, "1")
    env.down.add("3")
    env.conf("1", ConfOp.REMOVE, "3")  # 2 of the 3 old voters agree: committed
    assert env.nodes["1"].status().voters == ("1", "2")
    env.add_node("4")
    env.conf("1", ConfOp.ADD_VOTER, "4")
    env.tick_all(3)
    assert env.nodes["4"].status().voters == ("1", "2", "4")
    env.propose("1", b"y")
    assert env.items("4") == [b"y"]
    # The leader removes itself: it commits the change, then hands over.
    env.conf("1", ConfOp.REMOVE, "1")
    env.tick_all(25)
    assert len(env.leaders()) == 1 and env.leaders()[0] in ("2", "4")


def test_leadership_transfer() -> None:
    env = Env(["1", "2", "3"])
    elect(env, "1")
    env.down.add("3")
    env.propose("1", b"a")
    env.down.discard("3")
    env.nodes["1"].transfer_leadership("3")
    with pytest.raises(ProposalDropped):
        env.nodes["1"].propose([b"during"])
    env.tick_all(1)
    assert env.leaders() == ["3"]
    assert "3 received TimeoutNow from 1" in env.lines
    assert env.nodes["3"].term == 3


def test_read_index_on_leader_and_follower() -> None:
    env = Env(["1", "2", "3"])
    elect(env, "1")
    env.propose("1", b"a")
    seen: list = []
    for node, ctx in (("1", 7), ("2", 8)):
        env.nodes[node].read_index(ctx)
        core = env.nodes[node]
        while core.has_ready():
            rd = core.ready()
            seen.extend(rd.read_states)
            env.queue.extend(rd.messages)
            core.advance(rd)
        for _ in range(4):
            env.deliver()
            for i in sorted(env.nodes):
                c = env.nodes[i]
                while c.has_ready():
                    rd = c.ready()
                    seen.extend(rd.read_states)
                    env.queue.extend(rd.messages)
                    c.advance(rd)
    commit = env.nodes["1"].log.commit
    assert sorted((r.ctx, r.index) for r in seen) == [(7, commit), (8, commit)]


def test_read_index_needs_a_quorum() -> None:
    env = Env(["1", "2", "3"])
    elect(env, "1")
    env.isolate("1")
    env.nodes["1"].read_index(1)
    env.stabilize()
    assert not env.nodes["1"].ready().read_states


def test_retried_command_applies_once() -> None:
    env = Env(["1", "2", "3"])
    elect(env, "1")
    env.propose("1", b"a", client="k", seq0=1)
    env.propose("2", b"a", client="k", seq0=1)  # retry through a follower
    env.propose("1", b"b", client="k", seq0=2)
    assert env.items("3") == [b"a", b"b"]
    assert env.results[("2", env.sessions["k"], 1)] == b"1"


def test_stale_leader_steps_down_on_higher_term_reply() -> None:
    env = Env(["1", "2", "3"])
    elect(env, "1")
    env.isolate("1")
    env.heal()
    env.nodes["2"].term = 5  # e.g. it campaigned in a partition long ago
    env.nodes["1"].tick()
    env.stabilize()
    env.tick_all(30)
    assert len(env.leaders()) == 1
    assert env.nodes[env.leaders()[0]].term > 5


def test_vote_rejected_for_stale_log() -> None:
    env = Env(["1", "2", "3"])
    elect(env, "1")
    env.propose("1", b"a")
    n2 = env.nodes["2"]
    env.forget_leader("2")
    n2.step(Vote(term=9, frm="3", to="2", last_index=1, last_term=1))
    rd = n2.ready()
    assert [(type(m).__name__, m.granted) for m in rd.messages] == [("VoteResp", False)]
    n2.advance(rd)
    assert n2.vote is None  # the stale candidate got no vote
    assert n2.term == 9  # but its higher term was adopted


def test_a_silent_follower_is_not_resent_batches_until_it_answers() -> None:
    """A follower that is down gets each entry at most once (until the pipeline is full), not a
    full batch every few ticks; once it answers a heartbeat it catches up."""
    env = Env(["1", "2", "3"])
    env.campaign("1")
    env.propose("1", b"first")
    leader = env.nodes["1"]
    sent: list[int] = []
    send = leader._send

    def counting(m):  # type: ignore[no-untyped-def]
        if isinstance(m, Append) and m.to == "3":
            sent.extend(e.index for e in m.entries)
        send(m)

    leader._send = counting  # type: ignore[method-assign]
    env.down.add("3")
    for i in range(40):
        env.propose("1", b"x%d" % i, seq0=10 + i)
        env.tick_all(1)
    assert len(sent) == len(set(sent)), f"entries resent to a silent follower: {len(sent)} for {len(set(sent))}"
    env.down.discard("3")
    env.tick_all(3)
    assert env.items("3") == env.items("1") and env.items("1")[-1] == b"x39"

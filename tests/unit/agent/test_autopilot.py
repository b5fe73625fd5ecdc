"""Autopilot decisions, table-driven (pure)."""

import pytest

from meshd.agent._autopilot import Action, AutopilotConfig, Health, MemberView, Op, decide, target_voters

A, F, L, S = Health.ALIVE, Health.FAILED, Health.LEFT, Health.SUSPECT
CFG = AutopilotConfig(fail_grace_s=30, stable_s=5, max_lag=100)


def members(*specs):
    """specs: (name, health, since, lag); joined_at = order given."""
    return [MemberView(n, h, since, joined_at=i, lag=lag) for i, (n, h, since, lag) in enumerate(specs)]


def step(voters, learners, specs, now=100.0, leader="h1"):
    return decide(leader=leader, voters=voters, learners=learners, members=members(*specs), now=now, cfg=CFG)


@pytest.mark.parametrize("alive,want", [(1, 1), (2, 1), (3, 3), (4, 3), (5, 5), (9, 5)])
def test_target_voters_is_odd(alive, want):
    assert target_voters(alive) == want


def test_bootstrap_host_alone_needs_nothing():
    assert step({"h1"}, set(), [("h1", A, 0, 0)]) is None


def test_new_member_becomes_learner_then_voter_when_three():
    specs = [("h1", A, 0, 0), ("h2", A, 0, None)]
    assert step({"h1"}, set(), specs) == Action(Op.ADD_LEARNER, "h2", "new live member")
    specs = [("h1", A, 0, 0), ("h2", A, 0, 0)]
    assert step({"h1"}, {"h2"}, specs) is None  # two hosts: still one voter
    specs += [("h3", A, 0, 0)]
    act = step({"h1"}, {"h2", "h3"}, specs)
    assert (act.op, act.node) == (Op.PROMOTE, "h2")


def test_the_first_promotion_from_one_voter_waits_for_two_ready_learners():
    """Two voters are a quorum of two: stalled by either. Pass through that state only with the
    third voter ready; a learner the leader has not heard from lately has no known lag."""
    specs = [("h1", A, 0, 0), ("h2", A, 0, 0), ("h3", A, 0, None), ("h4", A, 98, 0)]
    assert step({"h1"}, {"h2", "h3", "h4"}, specs) is None  # h3 silent, h4 not stable yet
    act = step({"h1"}, {"h2", "h3", "h4"}, specs, now=103.0)
    assert (act.op, act.node) == (Op.PROMOTE, "h2")
    act = step({"h1", "h2"}, {"h3", "h4"}, specs, now=103.0)
    assert (act.op, act.node) == (Op.PROMOTE, "h4")  # from two voters on, one ready is enough


def test_unstable_or_lagging_learners_wait():
    specs = [("h1", A, 0, 0), ("h2", A, 98, 0), ("h3", A, 0, 5000)]
    assert step({"h1"}, {"h2", "h3"}, specs) is None


def test_failed_voter_replaced_after_grace_promote_first_then_remove():
    specs = [("h1", A, 0, 0), ("h2", A, 0, 0), ("h3", F, 60, None), ("h4", A, 0, 0)]
    assert step({"h1", "h2", "h3"}, {"h4"}, specs, now=80) is None  # 20 s < grace
    act = step({"h1", "h2", "h3"}, {"h4"}, specs, now=100)
    assert (act.op, act.node) == (Op.PROMOTE, "h4")
    act = step({"h1", "h2", "h3", "h4"}, set(), specs, now=100)
    assert (act.op, act.node) == (Op.REMOVE, "h3")


def test_failed_voter_without_replacement_stays_in_a_three_voter_cluster():
    """3 -> 2 -> 1 voters would not tolerate one failure more, and the failed host may come back."""
    specs = [("h1", A, 0, 0), ("h2", A, 0, 0), ("h3", F, 0, None)]
    assert step({"h1", "h2", "h3"}, set(), specs) is None


def test_failed_voters_of_five_without_replacement_are_removed_down_to_three():
    """5 voters with 2 failed tolerate no further failure; the 3 alive ones alone tolerate one."""
    specs = [("h1", A, 0, 0), ("h2", A, 0, 0), ("h3", A, 0, 0), ("h4", F, 0, None), ("h5", F, 0, None)]
    voters = {"h1", "h2", "h3", "h4", "h5"}
    act = step(voters, set(), specs)
    assert (act.op, act.node) == (Op.REMOVE, "h4")
    act = step(voters - {"h4"}, set(), specs)
    assert (act.op, act.node) == (Op.REMOVE, "h5")
    assert step({"h1", "h2", "h3"}, set(), specs) is None


def test_never_removes_when_alive_voters_would_lose_majority():
    specs = [("h1", A, 0, 0), ("h2", F, 0, None), ("h3", F, 0, None)]
    assert step({"h1", "h2", "h3"}, set(), specs) is None


def test_left_member_removed_at_once():
    specs = [("h1", A, 0, 0), ("h2", A, 0, 0), ("h3", L, 99, None), ("h4", A, 0, 0)]
    assert step({"h1", "h2", "h3"}, {"h4"}, specs) == Action(Op.REMOVE, "h3", "left the cluster")


def test_five_voters_at_most():
    names = [f"h{i}" for i in range(1, 8)]
    specs = [(n, A, 0, 0) for n in names]
    assert step(set(names[:5]), set(names[5:]), specs) is None


def test_shrunk_cluster_demotes_newest_voter():
    specs = [("h1", A, 0, 0), ("h2", A, 0, 0), ("h3", A, 0, 0), ("h4", A, 0, 0)]
    act = step({"h1", "h2", "h3", "h4"}, set(), specs)  # 4 alive -> want 3
    assert (act.op, act.node) == (Op.REMOVE, "h4")


def test_failed_learner_removed_after_grace_and_suspects_are_kept():
    specs = [("h1", A, 0, 0), ("h2", F, 0, None), ("h3", S, 0, 0)]
    assert step({"h1"}, {"h2", "h3"}, specs) == Action(Op.REMOVE, "h2", "learner failed for 30s or more")


@pytest.mark.parametrize("seed", range(200))
def test_random_histories_keep_quorum_and_converge(seed):
    """Members come, fail, recover and leave at random; applying every decision must never
    remove a voter when that costs the alive voters their majority, never go past 5 voters
    (6 for a moment while a failed one is replaced), and always reach a fixed point."""
    import random

    rng = random.Random(seed)
    now, leader = 0.0, "h0"
    views = {"h0": MemberView("h0", A, 0.0, 0.0, lag=0)}
    voters, learners = {"h0"}, set()
    for tick in range(60):
        now += rng.choice([1.0, 5.0, 40.0])
        name = f"h{rng.randrange(1, 9)}"
        old = views.get(name)
        health = rng.choice([A, A, A, F, L, S])
        if old is None or old.health is not health:
            views[name] = MemberView(name, health, now, old.joined_at if old else now, lag=0 if health is A else None)
        for _ in range(20):
            alive = {n for n, m in views.items() if m.health in (A, S)}
            act = decide(leader=leader, voters=voters, learners=learners, members=views.values(), now=now, cfg=CFG)
            if act is None:
                break
            had_majority = len(voters & alive) > len(voters) // 2
            removes_voter = act.op is Op.REMOVE and act.node in voters
            if act.op is Op.ADD_LEARNER:
                learners.add(act.node)
            elif act.op is Op.PROMOTE:
                learners.discard(act.node)
                voters.add(act.node)
            else:
                voters.discard(act.node)
                learners.discard(act.node)
            assert leader in voters and len(voters) <= 6, (seed, tick, act)
            if removes_voter and had_majority:  # (random failures may take the majority away by themselves)
                assert len(voters & alive) > len(voters) // 2, (seed, tick, act, voters, alive)
        else:
            raise AssertionError(f"seed {seed}: no fixed point at tick {tick}")
    alive = {n for n, m in views.items() if m.health is A}
    if all(now - views[v].since >= CFG.fail_grace_s for v in voters if v not in alive):
        assert len(voters) <= 5

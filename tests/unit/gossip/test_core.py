"""GossipCore over a scripted network: detection, Lifeguard, leave, metadata, merge rules."""

from __future__ import annotations

import random

from gossip_scripted import Net

from meshd.gossip import (
    EventKind,
    Gossip,
    GossipConfig,
    GossipCore,
    IndirectPing,
    Member,
    Meta,
    Ping,
    PushPullResp,
    State,
    Update,
)

NAMES = ["a", "b", "c", "d", "e"]


def states(net: Net, observer: str) -> dict[str, State]:
    return {m.name: m.state for m in net.cores[observer].members()}


def test_members_join_through_one_seed_and_everyone_sees_everyone():
    net = Net()
    net.cluster(NAMES)
    for name in NAMES:
        assert states(net, name) == dict.fromkeys(NAMES, State.ALIVE)
        assert net.cores[name].status().joined
    for observer in NAMES:
        for member in NAMES:
            if member != observer:
                assert len(net.seen(observer, EventKind.JOIN, member)) == 1


def test_a_crashed_member_is_suspected_then_failed_by_every_live_member():
    net = Net()
    net.cluster(NAMES)
    net.down.add("c")
    net.run(12.0)
    for observer in ["a", "b", "d", "e"]:
        assert net.seen(observer, EventKind.SUSPECT, "c") or net.seen(observer, EventKind.FAIL, "c")
        assert len(net.seen(observer, EventKind.FAIL, "c")) == 1
        assert states(net, observer)["c"] == State.DEAD
    assert net.kinds_about("a") == {EventKind.JOIN}  # nobody else was accused
    # the helpers' nacks came back before the probe ended: nobody blamed itself
    failed = [n for n in net.notes if "event=probe_failed member=c" in n]
    assert failed and all(" nacks=3/3 " in n for n in failed), failed


def test_indirect_probes_save_a_member_behind_a_lossy_link():
    net = Net()
    net.cluster(NAMES)
    cut = {("a", "b"), ("b", "a")}
    net.drops.append(lambda src, dst, msg: (src, dst) in cut)
    net.run(20.0)
    a = net.cores["a"].status()
    assert a.indirect_probes > 0 and a.probe_failures == 0
    assert net.kinds_about("b") == {EventKind.JOIN}
    assert net.kinds_about("a") == {EventKind.JOIN}


def test_without_helpers_the_same_link_loss_would_be_a_suspicion():
    net = Net(config=GossipConfig(**{**GossipConfig.local().__dict__, "indirect_checks": 1}))
    net.cluster(["a", "b"])
    net.drops.append(lambda src, dst, msg: (src, dst) == ("a", "b"))
    net.run(3.0)
    assert net.seen("a", EventKind.SUSPECT, "b")


def test_a_suspected_member_refutes_and_nobody_fails_it():
    net = Net()
    net.cluster(NAMES)
    before = net.cores["b"].incarnation
    rumour = Update(name="b", state=State.SUSPECT, incarnation=before, by="a")
    net.handle("a", net.cores["c"].step(Gossip(src="a", src_addr="a", updates=(rumour,)), net.now))
    assert states(net, "c")["b"] == State.SUSPECT
    net.run(5.0)
    assert net.cores["b"].incarnation == before + 1
    assert net.cores["b"].status().refutations == 1
    assert net.seen("c", EventKind.ALIVE, "b")
    assert not any(net.seen(o, EventKind.FAIL, "b") for o in NAMES)
    assert all(states(net, o)["b"] == State.ALIVE for o in NAMES)


def test_a_probe_of_a_suspect_carries_the_suspicion_so_it_can_refute():
    cfg = GossipConfig.local()
    a = GossipCore(name="a", addr="a", config=cfg, rng=random.Random(1), now=0.0)
    a.preload([GossipCore(name="b", addr="b", config=cfg, rng=random.Random(2), now=0).member("b")], 0.0)
    a.step(Gossip(src="x", src_addr="x", updates=(
        Update(name="b", state=State.SUSPECT, incarnation=0, by="x"),)), 0.0)
    out = a.tick(a.next_deadline())
    pings = [m for _, m in out.messages if isinstance(m, Ping)]
    assert pings and pings[0].updates[0] == Update(name="b", state=State.SUSPECT, incarnation=0, by="a")


def test_graceful_leave_is_reported_as_leave_and_a_crash_as_fail():
    net = Net()
    net.cluster(NAMES)
    net.handle("d", net.cores["d"].leave(net.now))
    net.run(0.05)
    assert net.cores["d"].leave_confirmed
    net.down.update({"d", "e"})  # d stops after its leave; e crashes
    net.run(15.0)
    for observer in ["a", "b", "c"]:
        assert len(net.seen(observer, EventKind.LEAVE, "d")) == 1
        assert not net.seen(observer, EventKind.FAIL, "d")
        assert net.seen(observer, EventKind.FAIL, "e") and not net.seen(observer, EventKind.LEAVE, "e")


def test_a_member_that_leaves_before_its_join_is_answered_tells_its_seed():
    """Seen at N = 50 under load: the joiner's join reached everyone through its seed, but SIGTERM
    came before the seed's answer had given it any peer, so its leave went to nobody and every
    member reported it failed. Its seed hears the leave now, and spreads it."""
    net = Net()
    net.cluster(NAMES)
    joiner = net.add("j")
    net.drops.append(lambda src, dst, msg: dst == "j" and isinstance(msg, PushPullResp))  # a starved joiner
    net.handle("j", joiner.join(["a"], net.now))
    net.run(0.5)
    assert all(net.seen(o, EventKind.JOIN, "j") for o in NAMES) and not joiner.joined
    net.handle("j", joiner.leave(net.now))
    assert not joiner.leave_confirmed
    net.run(0.05)
    assert joiner.leave_confirmed  # the seed acknowledged
    net.down.add("j")
    net.run(15.0)
    for observer in NAMES:
        assert len(net.seen(observer, EventKind.LEAVE, "j")) == 1, observer
        assert not net.seen(observer, EventKind.FAIL, "j"), observer


def test_left_members_are_reaped_and_a_rejoin_with_the_same_name_is_a_join():
    net = Net()
    net.cluster(NAMES)
    net.handle("e", net.cores["e"].leave(net.now))
    net.run(1.0)
    net.down.add("e")
    old = net.cores["a"].member("e").incarnation
    net.add("e")  # a new process with the same name, starting at incarnation 0
    net.handle("e", net.cores["e"].join(["a"], net.now))
    net.run(3.0)
    assert net.cores["e"].incarnation > old
    for observer in ["a", "b", "c", "d"]:
        assert states(net, observer)["e"] == State.ALIVE
        assert net.seen(observer, EventKind.JOIN, "e")[-1].member.incarnation > old
    net.handle("e", net.cores["e"].leave(net.now))
    net.run(1.0)
    net.down.add("e")
    net.run(GossipConfig.local().dead_reap_s + 1.0)
    assert all(net.cores[o].member("e") is None for o in ["a", "b", "c", "d"])


def test_metadata_update_reaches_everyone_with_a_fresh_incarnation():
    net = Net()
    net.cluster(NAMES)
    meta = Meta(vtep="192.0.2.3", raft_addr="192.0.2.3:7947", role="voter", labels={"rack": "2"})
    net.handle("c", net.cores["c"].update_meta(meta, net.now))
    net.run(2.0)
    for observer in ["a", "b", "d", "e"]:
        (ev,) = net.seen(observer, EventKind.UPDATE, "c")
        assert ev.member.meta == meta and ev.member.incarnation == 1


def test_push_pull_merge_rules():
    cfg = GossipConfig.local()
    core = GossipCore(name="me", addr="me", config=cfg, rng=random.Random(3), now=0.0)
    m = Meta(vtep="192.0.2.9")

    def pp(*records):
        return core.step(PushPullResp(src="x", src_addr="x", members=records), 1.0)

    def rec(name, state, inc, by=None):
        return Update(name=name, state=state, incarnation=inc, by=by or name, addr=name, meta=m)

    out = pp(rec("a", State.ALIVE, 2), rec("b", State.ALIVE, 1), rec("c", State.SUSPECT, 1, "x"),
             rec("z", State.DEAD, 5, "x"))
    assert [(e.kind, e.member.name) for e in out.events] == [
        (EventKind.JOIN, "a"), (EventKind.JOIN, "b"), (EventKind.JOIN, "c"), (EventKind.SUSPECT, "c")]
    assert core.member("z") is None  # the dead are not learnt
    out = pp(rec("a", State.DEAD, 2, "x"), rec("b", State.LEFT, 2), rec("c", State.ALIVE, 0))
    assert [(e.kind, e.member.name) for e in out.events] == [(EventKind.LEAVE, "b")]
    assert core.member("a").state == State.ALIVE  # another's DEAD is checked with the accused first
    told = Update(name="a", state=State.SUSPECT, incarnation=2, by="me")
    assert ("a", Gossip(src="me", src_addr="me", updates=(told,))) in out.messages
    assert core.member("c").state == State.SUSPECT  # a stale ALIVE does not clear it
    out = pp(rec("a", State.ALIVE, 3), rec("b", State.ALIVE, 2), rec("me", State.DEAD, 0, "x"))
    assert out.events == ()  # a refuted: the quiet doubt ends as quietly
    assert core.member("b").state == State.LEFT and core.incarnation == 1  # refuted
    assert core.status().refutations == 1


def test_a_slow_member_stretches_its_own_probe_timing():
    net = Net()
    net.cluster(NAMES)
    net.drops.append(lambda src, dst, msg: dst == "a" and not isinstance(msg, (Ping, IndirectPing)))
    net.run(3.0)
    assert net.cores["a"].status().health_score > 0
    probes = net.cores["a"].status().probes
    net.run(4.0)
    assert net.cores["a"].status().probes - probes < 4.0 / GossipConfig.local().probe_interval_s / 2


def test_a_partition_heals_by_itself_after_the_cut_is_removed():
    net = Net()
    net.cluster(NAMES)
    left = {"a", "b"}  # c, d, e on the other side
    cut = lambda src, dst, msg: (src in left) != (dst in left)  # noqa: E731
    net.drops.append(cut)
    net.run(20.0)
    assert states(net, "a")["c"] == State.DEAD and states(net, "c")["a"] == State.DEAD
    net.drops.remove(cut)
    net.run(10.0)
    for observer in NAMES:
        assert states(net, observer) == dict.fromkeys(NAMES, State.ALIVE), observer


def test_a_starved_prober_gives_the_helpers_their_window_and_blames_itself():
    """A tick that runs long after its deadline (the prober's own loop was starved) must not send
    the indirect pings and declare the target suspect in one go: the helpers get their whole
    window from the late tick, and the lateness raises the prober's own awareness score."""
    cfg = GossipConfig.local()
    names = ["a", "b", "c", "d", "e"]
    core = GossipCore(name="a", addr="a", config=cfg, rng=random.Random(1), now=0.0)
    core.preload([Member(n, n, State.ALIVE, 0, Meta()) for n in names[1:]], 0.0)
    now = core.next_deadline()
    while not any(isinstance(m, Ping) for _, m in core.tick(now).messages):
        now = core.next_deadline()
    target = core.status()  # the probe is out; its ack never comes (nobody answers in this test)
    assert target.probes == 1 and target.health_score == 0
    stalled = now + 20 * cfg.probe_interval_s  # the loop was starved long past timeout and end
    out = core.tick(stalled)
    indirect = [m for _, m in out.messages if isinstance(m, IndirectPing)]
    assert len(indirect) == cfg.indirect_checks
    suspects = [n for n in names[1:] if core.member(n).state is State.SUSPECT]
    assert suspects == []  # not blamed in the same tick
    status = core.status()
    assert status.late_ticks == 1 and status.health_score == 1
    assert core.next_deadline() > stalled  # the helpers' window is ahead, not behind
    core.tick(core.next_deadline())  # no helper answered in its window: now the target is suspect
    assert [n for n in names[1:] if core.member(n).state is State.SUSPECT] == [indirect[0].target]


def test_a_probe_still_waiting_for_helpers_is_not_replaced_by_the_next_one():
    cfg = GossipConfig.local()
    core = GossipCore(name="a", addr="a", config=cfg, rng=random.Random(2), now=0.0)
    core.preload([Member(n, n, State.ALIVE, 0, Meta()) for n in "bcde"], 0.0)
    now = core.next_deadline()
    while not any(isinstance(m, Ping) for _, m in core.tick(now).messages):
        now = core.next_deadline()
    out = core.tick(now + 5 * cfg.probe_interval_s)  # late: indirect pings go out now
    assert not any(isinstance(m, Ping) for _, m in out.messages)  # no second probe meanwhile
    assert core.status().probes == 1

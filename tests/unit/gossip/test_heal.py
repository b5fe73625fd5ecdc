"""GossipCore's partition-heal rules, one at a time (tests/sim/gossip runs them together).

1. A DEAD that another member concluded is checked with the accused first.
2. What a member we hold DEAD (or LEFT) says about others is not taken.
3. A member told it was declared dead withdraws what it suspected meanwhile.
4. Dead members are pinged; one that answers gets a push-pull.
"""

from __future__ import annotations

import random

from meshd.gossip import (
    Ack,
    EventKind,
    Gossip,
    GossipConfig,
    GossipCore,
    Member,
    Meta,
    Outbox,
    Ping,
    PushPullReq,
    State,
    Update,
)

CFG = GossipConfig.local()
P = CFG.probe_interval_s


def core_with(*names: str) -> GossipCore:
    core = GossipCore(name="me", addr="me", config=CFG, rng=random.Random(1), now=0.0)
    core.preload([Member(n, n, State.ALIVE, 0, Meta()) for n in names], 0.0)
    return core


def gossip(src: str, *updates: Update) -> Gossip:
    return Gossip(src=src, src_addr=src, updates=updates)


def fact(name: str, state: State, by: str, incarnation: int = 0) -> Update:
    return Update(name=name, state=state, incarnation=incarnation, by=by)


def alive(name: str, incarnation: int) -> Update:
    return Update(name=name, state=State.ALIVE, incarnation=incarnation, by=name, addr=name, meta=Meta())


def about(outs: list[Outbox] | Outbox, member: str) -> list[EventKind]:
    outs = outs if isinstance(outs, list) else [outs]
    return [e.kind for o in outs for e in o.events if e.member.name == member]


def run(core: GossipCore, until: float) -> list[Outbox]:
    """Tick at every deadline up to ``until`` (nobody answers anything)."""
    outs = []
    while core.next_deadline() <= until:
        outs.append(core.tick(core.next_deadline()))
    return outs


def declare_dead(core: GossipCore, name: str, by: str = "b") -> float:
    """Make ``core`` hold ``name`` DEAD; returns the time it happened."""
    core.step(gossip(by, fact(name, State.DEAD, by)), 0.0)
    run(core, P)
    assert core.member(name).state == State.DEAD
    return P


# --- 1. a DEAD from another member ---------------------------------------------------


def test_a_dead_declared_elsewhere_is_told_to_the_accused_quietly_and_its_refutation_ends_it():
    core = core_with("a", "b", "x")
    out = core.step(gossip("x", fact("a", State.DEAD, "x")), 0.0)
    assert out.events == () and core.member("a").state == State.ALIVE  # no event, nothing gossiped
    assert out.messages == (("a", gossip("me", fact("a", State.SUSPECT, "me"))),)
    assert core.status().queued_updates == 0
    core.step(gossip("a", alive("a", 1)), 0.01)  # a hears it and refutes
    assert about(run(core, 10 * P), "a") in ([], [EventKind.SUSPECT])  # only this core's own probing
    assert core.member("a").state in (State.ALIVE, State.SUSPECT)


def test_an_accused_member_that_does_not_refute_fails_one_probe_interval_later():
    core = core_with("a", "b", "x")
    core.step(gossip("x", fact("a", State.DEAD, "x")), 0.0)
    fails = [e for o in run(core, 2 * P) for e in o.events if e.kind == EventKind.FAIL]
    assert [(e.member.name, e.at) for e in fails] == [("a", P)]


def test_a_dead_about_a_member_suspected_long_enough_fails_at_once():
    core = core_with("a", "b", "x", "y")
    assert about(core.step(gossip("x", fact("a", State.SUSPECT, "x")), 0.0), "a") == [EventKind.SUSPECT]
    assert about(core.step(gossip("y", fact("a", State.DEAD, "y")), P / 2), "a") == []  # too soon
    core2 = core_with("a", "b", "x", "y")
    core2.step(gossip("x", fact("a", State.SUSPECT, "x")), 0.0)
    assert about(core2.step(gossip("y", fact("a", State.DEAD, "y")), P), "a") == [EventKind.FAIL]
    assert about(run(core, P), "a") == [EventKind.FAIL]  # the first one at the same moment


# --- 2. what a member held dead says --------------------------------------------------


def test_accusations_from_or_by_a_member_held_dead_are_ignored_but_its_news_is_taken():
    core = core_with("a", "b", "c", "x")
    t = declare_dead(core, "x")
    news = Update(name="n", state=State.ALIVE, incarnation=0, by="n", addr="n", meta=Meta())
    out = core.step(gossip("x", fact("a", State.DEAD, "x"), fact("b", State.SUSPECT, "x"), news), t)
    assert [(e.kind, e.member.name) for e in out.events] == [(EventKind.JOIN, "n")]
    out = core.step(gossip("c", fact("a", State.DEAD, "x")), t)  # relayed by a live member
    assert out.events == () and not [m for addr, m in out.messages if addr == "a"]
    assert {m.name: m.state for m in core.members()}.get("a") == State.ALIVE


def test_an_accusation_from_a_member_held_dead_is_refuted_without_doubting_our_own_health():
    core = core_with("a", "b", "x")
    t = declare_dead(core, "x")
    health = core.status().health_score
    out = core.step(gossip("x", fact("me", State.DEAD, "x")), t)
    assert core.incarnation == 1 and core.status().health_score == health
    assert ("x", gossip("me", alive("me", 1))) in [(a, m) for a, m in out.messages]
    core.step(gossip("b", fact("me", State.SUSPECT, "b", incarnation=1)), t)
    assert core.incarnation == 2 and core.status().health_score == health + 1  # Lifeguard, as before


# --- 3. declared dead: withdraw ---------------------------------------------------------


def test_a_member_told_it_was_declared_dead_withdraws_its_own_suspicions():
    core = core_with("a", "b", "c")
    outs = run(core, 3 * P)  # nobody answers: this member suspects whoever it probed
    suspected = {e.member.name for o in outs for e in o.events if e.kind == EventKind.SUSPECT}
    assert suspected and all(core.member(n).state == State.SUSPECT for n in suspected)
    out = core.step(gossip("y", fact("me", State.DEAD, "y")), 3 * P)
    assert sorted(about(out, n) for n in suspected) == [[EventKind.ALIVE]] * len(suspected)
    assert all(core.member(n).state == State.ALIVE for n in suspected)
    later = run(core, 3 * P + CFG.gossip_interval_s)
    sent = [u for o in [out, *later] for _, m in o.messages for u in getattr(m, "updates", ())]
    assert not [u for u in sent if u.by == "me" and u.state in (State.SUSPECT, State.DEAD)]
    assert alive("me", 1) in sent


# --- 4. reconnect ---------------------------------------------------------------------------


def test_a_dead_member_is_pinged_and_when_it_answers_full_state_is_exchanged_once():
    core = core_with("a", "b")
    t = declare_dead(core, "a")
    outs = run(core, t + 3 * CFG.reconnect_interval_s)
    pings = [m for o in outs for addr, m in o.messages if addr == "a"]
    assert pings and all(isinstance(m, Ping) and m.target == "a" and not m.updates for m in pings)
    now = t + 3 * CFG.reconnect_interval_s
    out = core.step(Ack(seq=pings[-1].seq, src="a", src_addr="a"), now)
    (pp,) = [m for addr, m in out.messages if addr == "a"]
    assert isinstance(pp, PushPullReq) and any(u.name == "a" and u.state == State.DEAD for u in pp.members)
    again = core.step(gossip("a"), now + CFG.reconnect_interval_s / 2)
    assert not [m for addr, m in again.messages if isinstance(m, PushPullReq)]  # once per interval


def test_a_reaped_member_s_address_is_handed_back_so_its_connection_can_close():
    core = core_with("a", "b")
    t = declare_dead(core, "a")
    outs = run(core, t + CFG.reconnect_timeout_s + 2 * P)
    assert [o.forgotten for o in outs if o.forgotten] == [("a",)]
    assert core.member("a") is None

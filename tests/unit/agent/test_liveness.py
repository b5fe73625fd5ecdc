"""Host liveness (pure): a host whose agent is dead keeps its entries while its data plane answers."""

from __future__ import annotations

import pytest

from meshd.agent._liveness import Gossip, HostState, Liveness
from meshd.agent._probe import checksum, echo_reply_ident, echo_request

VTEP = "192.0.2.12"


def core(**kw: float) -> Liveness:
    live = Liveness(timeout_s=kw.get("timeout_s", 0.5), grace_s=kw.get("grace_s", 60.0))
    live.on_gossip("h2", VTEP, Gossip.ALIVE, 0.0)
    return live


def states(transitions) -> list[HostState]:
    return [t.new for t in transitions]


def test_a_dead_agent_whose_kernel_answers_is_agent_down_and_keeps_its_entries() -> None:
    live = core()
    assert live.to_probe(9.9) == []  # nobody probed while gossip is happy
    assert states(live.on_gossip("h2", VTEP, Gossip.SUSPECT, 1.0)) == [HostState.SUSPECT]
    assert live.to_probe(9.9) == [VTEP]
    live.on_sent({VTEP}, 1.6)
    live.on_answers({VTEP}, 1.8)
    assert states(live.on_gossip("h2", VTEP, Gossip.DEAD, 2.0)) == [HostState.AGENT_DOWN]
    assert live.kept_vteps() == {"h2": VTEP} and live.to_probe(9.9) == [VTEP]
    for t in (2.2, 2.4, 2.6):  # answers keep it
        live.on_sent({VTEP}, t - 0.1)
        live.on_answers({VTEP}, t)
        assert live.tick(t + 0.1) == []
    live.on_sent({VTEP}, 2.7)
    assert live.tick(3.2) == []  # one lost echo is no verdict
    live.on_sent({VTEP}, 2.9)
    assert live.tick(3.1) == []  # the probe of 2.7 is not overdue yet
    [t] = live.tick(3.2)  # the data plane stopped answering: failed, withdrawn
    assert (t.new, t.old) == (HostState.FAILED, HostState.AGENT_DOWN) and "silent" in t.reason
    assert live.kept_vteps() == {} and live.to_probe(9.9) == []
    live.on_answers({VTEP}, 3.3)  # failed is final until gossip sees the agent again
    assert live.state("h2") is HostState.FAILED
    assert states(live.on_gossip("h2", VTEP, Gossip.ALIVE, 5.0)) == [HostState.ALIVE]


def test_busy_while_a_host_is_probed_or_undecided_idle_otherwise() -> None:
    """The probe driver sleeps until gossip changes while the core is not busy (issue 20: idle CPU)."""
    live = core(grace_s=5.0)
    assert not live.busy()  # every agent answers gossip
    live.on_gossip("h2", VTEP, Gossip.SUSPECT, 1.0)
    assert live.busy()
    live.on_gossip("h2", VTEP, Gossip.ALIVE, 1.2)
    assert not live.busy()  # refuted: nothing to probe
    live.on_answers({VTEP}, 1.9)
    live.on_gossip("h2", VTEP, Gossip.DEAD, 2.0)
    live.on_answers({VTEP}, 2.1)
    assert live.state("h2") is HostState.AGENT_DOWN and live.busy()  # kept while probed, up to the grace
    live.tick(7.5)
    assert live.state("h2") is HostState.FAILED and not live.busy()  # final until gossip sees it again
    live.on_gossip("h3", "192.0.2.13", Gossip.LEFT, 8.0)
    assert not live.busy()
    live.probing = False
    live.on_gossip("h4", "192.0.2.14", Gossip.DEAD, 9.0)
    assert live.busy()  # no probe: first learned dead, its verdict waits for the next tick
    live.tick(9.1)
    assert live.state("h4") is HostState.FAILED and not live.busy()


def test_a_dead_machine_is_withdrawn_when_gossip_declares_it_dead() -> None:
    live = core()
    live.on_gossip("h2", VTEP, Gossip.SUSPECT, 1.0)  # probed during the whole suspicion: no answer
    for t in (1.0, 1.2, 1.4, 1.6):
        live.on_sent({VTEP}, t)
    assert live.on_gossip("h2", VTEP, Gossip.DEAD, 2.5) == []  # answers may wait unread: tick() judges
    assert states(live.tick(2.5)) == [HostState.FAILED]
    assert live.kept_vteps() == {}


def test_first_learned_dead_is_probed_before_a_verdict() -> None:
    live = Liveness(timeout_s=0.5, grace_s=60)
    assert states(live.on_gossip("h3", "192.0.2.13", Gossip.DEAD, 1.0)) == [HostState.SUSPECT]
    assert live.tick(1.2) == []  # no probe has gone out yet: no evidence either way
    live.on_sent({"192.0.2.13"}, 1.2)
    live.on_sent({"192.0.2.13"}, 1.4)
    assert live.kept_vteps() == {"h3": "192.0.2.13"} and live.tick(1.6) == []
    assert states(live.tick(1.7)) == [HostState.FAILED]


def test_a_refuted_suspicion_stops_probing_and_a_leave_withdraws_at_once() -> None:
    live = core()
    live.on_gossip("h2", VTEP, Gossip.SUSPECT, 1.0)
    assert states(live.on_gossip("h2", VTEP, Gossip.ALIVE, 1.2)) == [HostState.ALIVE]
    assert live.to_probe(9.9) == []
    assert states(live.on_gossip("h2", VTEP, Gossip.LEFT, 2.0)) == [HostState.LEFT]
    assert live.kept_vteps() == {}


def test_an_agent_down_past_the_grace_is_failed_even_if_its_kernel_answers() -> None:
    live = core(grace_s=10)
    live.on_gossip("h2", VTEP, Gossip.SUSPECT, 1.0)
    live.on_answers({VTEP}, 1.9)
    live.on_gossip("h2", VTEP, Gossip.DEAD, 2.0)
    for t in range(3, 13):
        live.on_answers({VTEP}, t - 0.1)
        out = live.tick(float(t))
    assert states(out) == [HostState.FAILED] and "agent_down_grace_s" in out[0].reason


def test_without_probing_a_dead_agent_is_failed() -> None:
    live = Liveness(timeout_s=0.5, grace_s=60, probing=False)
    live.on_gossip("h2", VTEP, Gossip.ALIVE, 0.0)
    live.on_gossip("h2", VTEP, Gossip.SUSPECT, 1.0)
    assert live.to_probe(9.9) == []
    assert states(live.on_gossip("h2", VTEP, Gossip.DEAD, 1.1)) == [HostState.FAILED]


def test_answers_are_matched_to_the_host_by_vtep() -> None:
    live = core()
    live.on_gossip("h3", "192.0.2.13", Gossip.ALIVE, 0.0)
    for name, vtep in (("h2", VTEP), ("h3", "192.0.2.13")):
        live.on_gossip(name, vtep, Gossip.SUSPECT, 1.0)
        live.on_sent({vtep}, 1.1)
        live.on_sent({vtep}, 1.3)
    live.on_answers({"192.0.2.13"}, 1.8)
    live.on_gossip("h2", VTEP, Gossip.DEAD, 2.0)
    live.on_gossip("h3", "192.0.2.13", Gossip.DEAD, 2.0)
    live.tick(2.0)
    assert (live.state("h2"), live.state("h3")) == (HostState.FAILED, HostState.AGENT_DOWN)


def test_a_late_loop_is_not_silence() -> None:
    """An agent whose own loop runs late (a starved host) neither probes nor reads answers for a
    while: that lateness is no evidence against the probed data plane (issue 20: a 200-agent join
    on 2 cores withdrew hosts whose kernels answered, "silent for 0.5s", 194 times at one agent)."""
    live = core()
    live.on_gossip("h2", VTEP, Gossip.SUSPECT, 1.0)
    live.on_sent({VTEP}, 1.0)
    live.on_answers({VTEP}, 1.1)
    live.on_gossip("h2", VTEP, Gossip.DEAD, 1.2)  # answered: agent-down
    live.on_sent({VTEP}, 1.2)
    # the loop stalls 3 s; the answer to the probe of 1.2 waits in the socket and is read first
    live.on_answers({VTEP}, 4.2)
    assert live.tick(4.2) == [] and live.state("h2") is HostState.AGENT_DOWN
    live.on_sent({VTEP}, 4.2)
    live.on_sent({VTEP}, 4.4)
    assert states(live.tick(4.7)) == [HostState.FAILED]  # a probe really unanswered for timeout_s


def test_a_silent_host_is_failed_by_tick_not_by_a_gossip_change() -> None:
    live = core()
    live.on_gossip("h2", VTEP, Gossip.SUSPECT, 1.0)
    live.on_sent({VTEP}, 1.0)
    live.on_answers({VTEP}, 1.1)
    live.on_sent({VTEP}, 1.2)
    live.on_sent({VTEP}, 1.4)
    # gossip's "dead" arrives at 3.0 while the answer of 1.2 may still wait unread: no verdict yet
    assert live.on_gossip("h2", VTEP, Gossip.DEAD, 3.0) == []
    assert states(live.tick(3.0)) == [HostState.FAILED]  # the driver read everything: silent since 1.2


def test_an_agent_down_host_is_probed_less_often_than_an_undecided_one() -> None:
    """Its verdict is given; every other host probes it, so the cadence is its load (issue 20)."""
    live = Liveness(timeout_s=0.5, grace_s=60, interval_s=0.2, agent_down_interval_s=1.0)
    for name, vtep in (("h2", VTEP), ("h3", "192.0.2.13")):
        live.on_gossip(name, vtep, Gossip.ALIVE, 0.0)
        live.on_gossip(name, vtep, Gossip.SUSPECT, 1.0)
    assert live.to_probe(1.0) == ["192.0.2.12", "192.0.2.13"]
    live.on_sent({VTEP, "192.0.2.13"}, 1.0)
    assert live.to_probe(1.1) == [] and live.to_probe(1.2) == ["192.0.2.12", "192.0.2.13"]
    live.on_answers({VTEP}, 1.05)
    live.on_gossip("h2", VTEP, Gossip.DEAD, 1.1)
    assert live.state("h2") is HostState.AGENT_DOWN
    assert live.to_probe(1.2) == ["192.0.2.13"]  # h3 is undecided: every 0.2 s
    assert live.to_probe(2.0) == ["192.0.2.12", "192.0.2.13"]  # h2: once a second
    live.on_sent({VTEP}, 2.0)  # its data plane stopped at 1.5
    assert live.tick(2.6) == []  # one lost echo is no verdict
    live.on_sent({VTEP}, 3.0)
    assert states(live.tick(3.0)) == [HostState.FAILED]  # two unanswered, the first 1 s ago


@pytest.mark.parametrize("ident,seq", [(0, 0), (0x1234, 7), (0xFFFF, 0xFFFF)])
def test_echo_request_has_a_valid_checksum_and_replies_are_recognised(ident: int, seq: int) -> None:
    packet = echo_request(ident, seq)
    assert checksum(packet) == 0  # a correct Internet checksum sums to zero
    ip = bytes([0x45]) + bytes(19)
    reply = bytes([0]) + packet[1:]
    assert echo_reply_ident(ip + reply) == ident
    assert echo_reply_ident(ip + packet) is None  # a request is not a reply
    assert echo_reply_ident(b"\x45") is None and echo_reply_ident(bytes([0x60]) + bytes(40)) is None

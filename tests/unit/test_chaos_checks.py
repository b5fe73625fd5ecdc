"""The chaos checkers: acknowledged operations, duplicates, the matrix, ping attribution, false FAILED, the table."""

import pytest

from tools.chaos import _checks as ck
from tools.chaos._report import as_json, report, table
from tools.chaos._schedule import TIMING
from tools.chaos._topology import ICMP, UDP, Expect, Probe

T = TIMING["local"]  # recovery 2 s, fail grace 1 s


def _ep(cid, network, ip, mac="02:00:00:00:00:01", host="h1"):
    return {"endpoint_id": cid, "network": network, "ip": ip, "mac": mac, "host": host}


# ---------------------------------------------------------------- ledger
def test_acked_connect_must_be_there_with_its_address_on_every_replica():
    led = ck.Ledger()
    led.endpoint("c1", "blue", ck.Op(1.0, "connect", ck.ACKED, ip="10.1.0.2"))
    led.endpoint("c2", "blue", ck.Op(2.0, "connect", ck.ACKED, ip="10.1.0.3"))
    led.endpoint("c2", "blue", ck.Op(3.0, "disconnect", ck.ACKED))
    nets = [{"name": "blue"}]
    good = (nets, [_ep("c1", "blue", "10.1.0.2")])
    tally = ck.Tally()
    ck.check_ledger(tally, led, {"h1": good, "h2": good})
    assert (tally.checks[ck.LOST], tally.violations[ck.LOST]) == (4, 0)
    bad = {"h1": (nets, [_ep("c1", "blue", "10.1.0.9"), _ep("c2", "blue", "10.1.0.3")]), "h2": (nets, [])}
    tally = ck.Tally()
    ck.check_ledger(tally, led, bad)
    text = "\n".join(tally.details[ck.LOST])
    assert tally.violations[ck.LOST] == 3
    assert "h1: acked c1 in blue at 10.1.0.2, has 10.1.0.9" in text
    assert "h1: c2 in blue was disconnected, still at 10.1.0.3" in text
    assert "h2: acked c1 in blue at 10.1.0.2, missing" in text


def test_ambiguous_operations_suspend_judgement_until_the_next_acked_one():
    led = ck.Ledger()
    led.endpoint("c1", "blue", ck.Op(1.0, "connect", ck.ACKED, ip="10.1.0.2"))
    led.endpoint("c1", "blue", ck.Op(2.0, "disconnect", ck.AMBIGUOUS, note="no answer from h2"))
    assert led.expected_endpoints() == {}
    assert led.believed_connected("c1", "blue") is None
    led.endpoint("c1", "blue", ck.Op(3.0, "disconnect", ck.REFUSED, note="unknown endpoint"))
    assert led.believed_connected("c1", "blue") is False
    assert led.expected_endpoints() == {}  # a refusal proves nothing about the address
    led.endpoint("c1", "blue", ck.Op(4.0, "connect", ck.ACKED, ip="10.1.0.7"))
    assert led.expected_endpoints() == {("c1", "blue"): "10.1.0.7"}
    assert led.believed_connected("c1", "blue") is True
    led.endpoint("c1", "blue", ck.Op(5.0, "connect", ck.REFUSED, note="[1017] via h1"))
    assert led.expected_endpoints() == {("c1", "blue"): "10.1.0.7"}
    assert led.believed_connected("c9", "blue") is False  # never touched


def test_a_deleted_network_takes_its_endpoints_and_must_be_gone():
    led = ck.Ledger()
    led.network("lc-0", ck.Op(1.0, "create", ck.ACKED))
    led.endpoint("c1", "lc-0", ck.Op(2.0, "connect", ck.ACKED, ip="10.100.0.2"))
    led.network("lc-0", ck.Op(3.0, "delete", ck.ACKED))
    led.network("lc-1", ck.Op(4.0, "create", ck.ACKED))
    led.network("lc-2", ck.Op(5.0, "create", ck.AMBIGUOUS))
    assert led.expected_endpoints() == {("c1", "lc-0"): None}
    assert led.expected_networks() == {"lc-0": False, "lc-1": True}
    tally = ck.Tally()
    ck.check_ledger(tally, led, {"h1": ([{"name": "lc-0"}], [])})
    assert sorted(tally.details[ck.LOST]) == ["h1: network lc-0 deleted but present", "h1: network lc-1 missing"]


def test_duplicates_per_network_and_vnis_across_networks():
    nets = [{"name": "a", "vni": 1}, {"name": "b", "vni": 2}]
    eps = [_ep("c1", "a", "10.1.0.2", "m1"), _ep("c2", "b", "10.1.0.2", "m1")]  # same IP/MAC, other networks
    tally = ck.Tally()
    ck.check_duplicates(tally, "h1", nets, eps)
    assert (tally.checks[ck.DUPLICATES], tally.violations[ck.DUPLICATES]) == (6, 0)
    ck.check_duplicates(tally, "h2", nets + [{"name": "c", "vni": 2}], eps + [_ep("c3", "a", "10.1.0.2", "m3")])
    assert sorted(tally.details[ck.DUPLICATES]) == ["h2: IP 10.1.0.2 held 2 times in a", "h2: VNI 2 held by 2 networks"]


# ---------------------------------------------------------------- matrix
def test_matrix_findings_name_the_cell_and_what_went_wrong():
    probes = [Probe("x", "10.1.0.3", ICMP, "y", Expect(True, "y")),
              Probe("x", "10.1.0.9", UDP, "z", Expect(False)),
              Probe("x", "10.1.0.3", UDP, "y", Expect(True, "y")),
              Probe("x", "10.1.0.4", UDP, "w", Expect(False))]
    answers = [ck.Answer(False), ck.Answer(True, "q"), ck.Answer(True, "q"), ck.Answer(False)]
    tally = ck.Tally()
    ck.check_matrix(tally, "final", probes, answers)
    assert tally.checks[ck.ISOLATION] == 4
    assert tally.details[ck.ISOLATION] == [
        "final: icmp x -> y (10.1.0.3) blocked, must pass",
        "final: udp x -> z (10.1.0.9) answered by q, must be blocked",
        "final: udp x -> y (10.1.0.3) answered by q, must be y",
    ]


# ---------------------------------------------------------------- pings
def _w(fid, kind, host, peer, start, end):
    return ck.Window(fid, kind, host, peer, start, end, f"#{fid} {kind} {host}")


WINDOWS = [_w(0, "kill", "h1", None, 10, 20), _w(1, "cut", "h3", None, 30, 40),
           _w(2, "cut-pair", "h1", "h2", 50, 60), _w(3, "restart", "h2", None, 70, 71)]


@pytest.mark.parametrize("at, a, b, category, fid", [
    (5, "h1", "h2", ck.HEALTHY, None),       # before any fault
    (15, "h1", "h2", ck.AGENT, 0),           # h1's agent is dead
    (21.5, "h2", "h1", ck.AGENT, 0),         # within the recovery time after the restart
    (23, "h1", "h2", ck.AFTER, 0),           # later than that: traffic should be back
    (15, "h2", "h3", ck.HEALTHY, 0),         # a healthy pair while h1 is killed
    (35, "h1", "h3", ck.EXCLUDED, 1),        # h3 is cut off: the loss is the fault itself
    (41, "h3", "h2", ck.EXCLUDED, 1),        # healed 1 s ago
    (43, "h3", "h2", ck.AFTER, 1),           # healed 3 s ago
    (55, "h1", "h2", ck.EXCLUDED, 2),        # the pair is cut from each other
    (55, "h1", "h3", ck.AFTER, 1),           # h1-h3 is not cut; h3 was healed 15 s ago
    (70.5, "h3", "h1", ck.AFTER, 2),         # h2 restarts; h1's pairwise cut ended 10.5 s ago
    (70.5, "h2", "h3", ck.AGENT, 3),
    (95, "h3", "h1", ck.HEALTHY, None),      # their last faults ended more than AFTER_HORIZON_S ago
])
def test_each_ping_is_attributed_to_the_fault_of_its_time(at, a, b, category, fid):
    got, w = ck.classify_ping(at, a, b, WINDOWS, T)
    assert (got, w.fid if w else None) == (category, fid)


def test_lost_pings_are_counted_per_category_and_reported_per_window():
    sent = [(t / 2, not 14 <= t / 2 <= 17) for t in range(0, 50)]  # 0..24.5 s every 0.5 s, lost 14..17
    tally = ck.Tally()
    ck.check_pings(tally, ck.PingPair("p", "h1", "h2"), sent, WINDOWS, T)
    assert tally.violations[ck.PING_AGENT] == 7 and tally.violations[ck.PING_HEALTHY] == 0
    assert tally.checks[ck.PING_AGENT] == 25  # 10 .. 22 s: the kill plus 2 s of recovery
    assert tally.checks[ck.PING_HEALTHY] == 20 and tally.checks[ck.PING_AFTER] == 5
    assert tally.details[ck.PING_AGENT] == ["p: 7 of 25 lost during/after #0 kill h1"]


# ---------------------------------------------------------------- member events
@pytest.mark.parametrize("event, false", [
    (ck.MemberEvent(12, "h2", "fail", "h1"), False),   # h1 was killed
    (ck.MemberEvent(20.5, "h2", "fail", "h1"), False),  # within the grace after its restart
    (ck.MemberEvent(22, "h2", "fail", "h1"), True),     # later: h1 is back
    (ck.MemberEvent(12, "h1", "fail", "h2"), True),     # h2 was never down then
    (ck.MemberEvent(35, "h3", "fail", "h1"), False),    # seen from the host that is cut off
    (ck.MemberEvent(35, "h1", "fail", "h3"), False),    # about the host that is cut off
    (ck.MemberEvent(41.5, "h1", "fail", "h2"), True),   # after the heal, a stale DEAD claim about h2
    (ck.MemberEvent(55, "h3", "fail", "h2"), False),    # h2 is in a pairwise cut
    (ck.MemberEvent(70.5, "h1", "fail", "h2"), True),   # a graceful restart is a leave, not a failure
    (ck.MemberEvent(80, "h1", "leave", "h2"), False),
])
def test_false_failed(event, false):
    assert ck.false_failed(event, WINDOWS, T.fail_grace_s) is false


def test_false_failed_findings_say_who_declared_whom_and_the_faults_then():
    tally = ck.Tally()
    events = [ck.MemberEvent(40.5, "h1", "fail", "h2"), ck.MemberEvent(12, "h2", "fail", "h1"),
              ck.MemberEvent(45, "h3", "fail", "h1")]
    ck.check_events(tally, events, WINDOWS, T, run_time=lambda t: t - 1.5)
    assert tally.checks[ck.FALSE_FAILED] == 3
    assert tally.details[ck.FALSE_FAILED] == [
        "h1 declared h2 failed at 39.0s (faults then: #1 cut h3; #0 kill h1 ended 20.5 s before)",
        "h3 declared h1 failed at 43.5s (faults then: none; #1 cut h3 ended 5.0 s before)"]


# ---------------------------------------------------------------- tally and report
def test_tally_keeps_the_first_findings_and_counts_all():
    tally = ck.Tally()
    tally.add(ck.KERNEL, 100, [f"x{i}" for i in range(ck.MAX_DETAILS + 5)])
    tally.add(ck.PING_AGENT, 50, ["one window"], violations=12)
    assert tally.violations[ck.KERNEL] == ck.MAX_DETAILS + 5 and len(tally.details[ck.KERNEL]) == ck.MAX_DETAILS
    assert tally.violations[ck.PING_AGENT] == 12
    assert not tally.ok() and tally.ok([ck.LOST, ck.LEAKS])
    with pytest.raises(ValueError, match="unknown invariant"):
        tally.add("nonsense", 1)


def test_report_has_a_row_per_invariant_the_findings_and_the_replay_command():
    tally = ck.Tally()
    tally.add(ck.LOST, 84)
    tally.add(ck.FALSE_FAILED, 23, ["h1 declared h2 failed at 40.0s"])
    lines = table(tally).splitlines()
    assert lines[0].split() == ["invariant", "checks", "violations"]
    assert len(lines) == 2 + len(ck.INVARIANTS)
    assert lines[2].split()[-2:] == ["84", "0"]
    text = report(tally, "seed 9: 3 kill", "python -m tools.chaos --seed 9", ["agent h2 exited with 1"])
    assert "false FAILED (issue 13 item 2): 1 violation(s), first 1:\n  - h1 declared h2 failed at 40.0s" in text
    assert "notes:\n  - agent h2 exited with 1" in text
    assert text.endswith("FAIL: invariants violated; replay this schedule with: python -m tools.chaos --seed 9")


def test_json_has_every_invariant_with_its_findings():
    tally = ck.Tally()
    tally.add(ck.LEAKS, 10, ["h1: device mb-9 leaked"])
    doc = as_json(tally, 5, "seed 5: 1 cut")
    assert doc["seed"] == 5 and doc["ok"] is False
    assert [r["invariant"] for r in doc["invariants"]] == list(ck.INVARIANTS)
    leaks = next(r for r in doc["invariants"] if r["invariant"] == ck.LEAKS)
    assert leaks == {"invariant": ck.LEAKS, "checks": 10, "violations": 1, "findings": ["h1: device mb-9 leaked"]}

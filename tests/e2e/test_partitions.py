"""Partitions with real agents and Docker containers: each cut kind, then the heal.

Four agents (local profile), one container each on one network; h4 is cut
from everyone (until it has itself declared every other host failed, so its
stale claims all exist when the cut heals), then from h1 both ways, then one way
(the harness is ``tools.bench.partition``, which the benchmark runs 20 times
per kind).  Throughout, containers ping each other every 0.1 s on every path
the cut does not touch.  What must hold: no host that kept its network reports
another such host failed (MEMBER_FAIL on the PUB sockets), none of their
kernel entries is deleted, no ping on an untouched path is lost, and after
the whole-host cut h4 is back: alive in every view, its FDB entries on every
other host, its Raft replica caught up.  Heal times are printed, not asserted.
"""

from __future__ import annotations

import pytest

from tools.bench.partition import Rig

pytestmark = [pytest.mark.root, pytest.mark.docker]

PAIR_CUT_S = 4.0


def test_cut_and_heal_fail_no_healthy_host_lose_no_ping_and_bring_the_cut_host_back(make_cluster):
    lab, cluster = make_cluster(hosts=4)
    rig = Rig(lab, cluster)
    try:
        rig.attach()
        cycles = [rig.cycle("host", 1.0, until_victim_fails=True),
                  rig.cycle("pair", PAIR_CUT_S), rig.cycle("oneway", PAIR_CUT_S)]
    finally:
        rig.close()
    host = cycles[0]
    print(f"host cut {host.cut_s} s; heal -> members {host.members_s} s, FDB {host.fdb_s} s, "
          f"Raft {host.raft_s} s; pings {sum(c.pings_sent for c in cycles)}")
    for cy in cycles:
        assert cy.false_fails == [], f"{cy.kind} cut: healthy hosts reported failed: {cy.false_fails}"
        assert cy.churn == 0, f"{cy.kind} cut: {cy.churn} kernel entries of healthy hosts were deleted"
        assert cy.pings_sent > 0 and cy.pings_lost == 0, f"{cy.kind} cut: {cy.pings_lost} pings lost"
    assert host.back, f"the cut host did not come back: {host}"

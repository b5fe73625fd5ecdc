"""Gossip processes in lab hosts, partitioned at the underlay switch and healed.

Four ``python -m meshd.gossip`` members (local profile), one per lab host.
Each cut kind the lab has — h3 from everyone, h3 from h4 both ways, h3 to h4
one way — is held, then healed.  What must hold: no member that kept its
network reports another such member failed (before the heal rules the cut
member's DEAD claims, delivered after the heal, failed healthy members), and
after a whole-host cut the cut member is back in everyone's view.  Heal times
are printed, not asserted.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from gossip_procs import Agent, write_secret

pytestmark = [pytest.mark.root, pytest.mark.timeout(300)]

HOSTS = ["h1", "h2", "h3", "h4"]
CUT, PEER = "h3", "h4"
PAIR_CUT_S = 4.0  # many probe periods of the local profile: indirect probes must carry h3 and h4


def test_no_healthy_member_fails_across_cuts_and_the_cut_member_comes_back(make_lab, tmp_path):
    lab = make_lab(hosts=len(HOSTS))
    secret = write_secret(tmp_path / "secret")
    agents: dict[str, Agent] = {}
    try:
        for h in HOSTS:
            ip = lab.host(h).underlay_ip
            join = [agents["h1"].addr] if agents else []
            agents[h] = Agent(h, secret, join=join, extra=["--bind", f"tcp://{ip}:0"],
                              inside=lab.exec_argv(h))
        for a in agents.values():
            for other in HOSTS:
                if other != a.name:
                    a.wait_for("join", other, timeout_s=30)
        heal_times = {kind: _cut_and_heal(lab, agents, kind) for kind in ("host", "pair", "oneway")}
        print(f"seconds from the heal until every member saw {CUT} alive again: {heal_times['host']}")
    finally:
        for a in agents.values():
            a.stop()


def _cut_and_heal(lab, agents: dict[str, Agent], kind: str) -> float | None:
    t_cut = time.time()
    if kind == "host":
        lab.cut(CUT)
        for h in HOSTS:  # everyone fails h3, and the isolated h3 fails everyone: its claims exist
            for other in ([m for m in HOSTS if m != CUT] if h == CUT else [CUT]):
                agents[h].wait_for("fail", other, after=t_cut, timeout_s=30)
    else:
        lab.cut(CUT, PEER, oneway=kind == "oneway")
        time.sleep(PAIR_CUT_S)
    t_heal = time.time()
    lab.heal(CUT)
    back = None
    if kind == "host":
        for h in HOSTS:
            for other in ([m for m in HOSTS if m != CUT] if h == CUT else [CUT]):
                agents[h].wait_for("join", other, after=t_heal, timeout_s=30)
        back = round(time.time() - t_heal, 2)
    time.sleep(2.0)  # a late burst of stale claims would land here
    healthy = [h for h in HOSTS if kind != "host" or h != CUT]
    false_fails = [(h, e["member"]) for h in healthy for e in agents[h].find("fail", after=t_cut)
                   if e["member"] in healthy]
    assert false_fails == [], f"{kind} cut: members that kept their network were failed: {false_fails}"
    return back

"""Real agent processes on loopback, CURVE on: join, kill, leave, rejoin, wrong secret."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from gossip_procs import Agent, write_secret

N = 10


@pytest.fixture
def agents():
    started: list[Agent] = []
    yield started
    for a in started:
        a.stop()


def test_ten_agents_join_one_killed_one_leaves_one_rejoins_and_an_outsider_is_refused(
        tmp_path, agents):
    secret = write_secret(tmp_path / "secret")
    names = [f"g{i}" for i in range(N)]
    first = Agent(names[0], secret)
    agents.append(first)
    seed = first.addr
    by_name = {names[0]: first}
    for name in names[1:]:
        by_name[name] = Agent(name, secret, join=[seed])
        agents.append(by_name[name])
    for a in by_name.values():
        for other in names:
            if other != a.name:
                a.wait_for("join", other)

    # kill -9: every live member reports a failure (never a leave)
    victim = by_name["g3"]
    old_inc = first.wait_for("join", "g3")["incarnation"]
    t_kill = time.time()
    victim.stop()
    live = [a for n, a in by_name.items() if n != "g3"]
    for a in live:
        a.wait_for("fail", "g3", after=t_kill, timeout_s=30)
        assert not a.find("leave", "g3")

    # graceful leave: reported as a leave by everyone, never a failure
    leaver = by_name["g5"]
    leaver.signal(signal.SIGTERM)
    assert leaver.wait_for("left")["confirmed"] is True
    live = [a for a in live if a is not leaver]
    for a in live:
        a.wait_for("leave", "g5", timeout_s=5)
    # metadata update reaches everyone
    by_name["g1"].signal(signal.SIGUSR2)
    for a in live:
        if a.name != "g1":
            assert a.wait_for("update", "g1")["labels"] == {"gen": "1"}

    # the killed member comes back under the same name: a join with a newer incarnation
    t_back = time.time()
    back = Agent("g3", secret, join=[by_name["g7"].addr])
    agents.append(back)
    back.wait_for("joined")
    for a in live:
        ev = a.wait_for("join", "g3", after=t_back)
        assert ev["incarnation"] > old_inc

    # an agent without the cluster secret cannot join, and nobody ever sees it
    other = write_secret(tmp_path / "other-secret")
    outsider = Agent("intruder", other, join=[seed], extra=["--join-timeout-s", "3"])
    agents.append(outsider)
    err = outsider.wait_for("error", timeout_s=30)
    assert "same cluster secret" in err["error"]
    assert outsider.proc.wait(timeout=10) == 2
    time.sleep(1.0)
    for a in [*live, back]:
        assert not a.find(member="intruder")
        assert not [e for e in a.find("fail") if e["member"] not in ("g3",)]

    # counters are exposed: probes ran, nothing undecodable arrived
    first.signal(signal.SIGUSR1)
    st = first.wait_for("status")
    assert st["probes"] > 0 and st["members_alive"] == N - 1 and st["undecodable"] == 0

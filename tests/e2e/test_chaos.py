"""The chaos suite's short run (issue 13 item 4): one seeded ``--quick`` schedule against real agents.

3 lab hosts, 6 networks of two tenants with the same subnets and all four
policy kinds, 12 Docker containers plus a churn container per host; then
3 kill -9, 1 graceful restart of the leader, 1 pairwise cut, a network
lifecycle and a stream of connects/disconnects through random hosts' APIs.
The same run, by hand: ``sudo .venv/bin/python -m tools.chaos --quick --seed 54``.

The run happens once (module fixture); each test asserts one invariant of
its table. All of them hold on today's code: no ping is lost while an agent
is down (its host stays in every FDB as "agent down"), traffic is back within
the recovery time after a restart or heal, and a healed cut declares no
healthy host failed (issue 13 items 1-3).
"""

from __future__ import annotations

import pytest

from tools.chaos import ChaosParams, RunResult, report, run
from tools.chaos import _checks as ck
from tools.lab import unique_prefix

pytestmark = [pytest.mark.root, pytest.mark.docker]

SEED = 54  # kill h2 3.4 s, cut h2<->h3 10.9 s, kill h1 5.9 s, restart of the leader, kill h3 1.2 s
PARAMS = ChaosParams(seed=SEED, hosts=3, replicas=2, kills=3, restarts=1, cuts=1, lifecycles=1)


@pytest.fixture(scope="module")
def chaos(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    result = run(PARAMS, prefix=unique_prefix("c"), workdir=tmp_path_factory.mktemp("chaos"))
    print(report(result.tally, result.schedule.summary(), f"python -m tools.chaos --quick --seed {SEED}",
                 result.notes))
    return result


def _holds(result: RunResult, invariant: str) -> None:
    tally = result.tally
    assert tally.checks[invariant] > 0, f"{invariant}: nothing was checked"
    assert tally.violations[invariant] == 0, (
        f"{invariant}: {tally.violations[invariant]} of {tally.checks[invariant]} checks violated:\n  "
        + "\n  ".join(tally.details[invariant]) + f"\nagent logs: {result.workdir}")


def test_the_schedule_ran_every_fault(chaos):
    assert [w.kind for w in sorted(chaos.windows, key=lambda w: w.fid)] == [f.kind for f in chaos.schedule.faults]


def test_no_acknowledged_allocation_is_lost(chaos):
    _holds(chaos, ck.LOST)


def test_no_duplicate_ip_mac_or_vni(chaos):
    _holds(chaos, ck.DUPLICATES)


def test_every_kernel_matches_the_state_after_convergence(chaos):
    _holds(chaos, ck.KERNEL)


def test_nothing_leaks_after_lifecycles_and_churn(chaos):
    _holds(chaos, ck.LEAKS)


def test_tenants_and_policies_isolate(chaos):
    _holds(chaos, ck.ISOLATION)


def test_no_agent_exits_by_itself(chaos):
    _holds(chaos, ck.CRASHED)


def test_no_ping_lost_between_healthy_hosts(chaos):
    _holds(chaos, ck.PING_HEALTHY)


def test_no_ping_lost_while_an_agent_is_down(chaos):
    _holds(chaos, ck.PING_AGENT)


def test_traffic_is_back_within_the_recovery_time(chaos):
    _holds(chaos, ck.PING_AFTER)


def test_no_false_failed(chaos):
    _holds(chaos, ck.FALSE_FAILED)

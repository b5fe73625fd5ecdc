"""The chaos suite: seeded faults against real agents in a lab, every invariant counted (docs/chaos.md).

Pure parts (no root, unit-tested): the scenario and its reachability oracle
(``_topology``), the schedule (``_schedule``), the expected kernel state
(``_expect``), the checkers (``_checks``) and the report (``_report``).
I/O parts: the world (``_world``: lab, agents, containers, API writes), the
kernel reader (``_kernel``), traffic (``_probe``), member events
(``_events``) and the runner (``_runner``) that ties them together.

    from tools.chaos import ChaosParams, run
    result = run(ChaosParams(seed=7, hosts=3, replicas=2, kills=3, cuts=1), prefix="tchaos", workdir=path)
    assert result.tally.ok()
"""

from tools.chaos._checks import INVARIANTS, Tally
from tools.chaos._report import report
from tools.chaos._runner import RunResult, run
from tools.chaos._schedule import ChaosParams, Schedule, ScheduleError, make_schedule

__all__ = ["INVARIANTS", "ChaosParams", "RunResult", "Schedule", "ScheduleError", "Tally", "make_schedule",
           "report", "run"]

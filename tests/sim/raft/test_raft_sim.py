"""CI share of the Raft simulation: 1,000 seeds (about 90 s on one core).

Longer runs: ``.venv/bin/python -m tests.sim.raft --seeds 10000 --jobs 2``.
A failure names its seed; replay it with ``--seed N``.
"""

from __future__ import annotations

import pytest

from .checker import Op, check_key
from .scale import ScaleSim
from .sim import Sim, Violation

CHUNK = 100


@pytest.mark.parametrize("start", range(0, 1000, CHUNK))
def test_seeds(start: int) -> None:
    failures = []
    for seed in range(start, start + CHUNK):
        try:
            Sim(seed).run()
        except Violation as exc:
            failures.append(str(exc))
        except Exception as exc:  # the core raised: also a failure of that seed
            failures.append(f"seed {seed}: {type(exc).__name__}: {exc}")
    assert not failures, (
        "\n".join(failures[:3]) + f"\nreplay: .venv/bin/python -m tests.sim.raft --seed "
        f"{failures[0].split()[1].rstrip(':')}"
    )


def test_a_seed_replays_exactly() -> None:
    assert Sim(12345).run() == Sim(12345).run()


def test_checker_rejects_a_stale_read() -> None:
    history = [
        Op("a", "k", "swap", "1", None, call=0, ret=1),
        Op("b", "k", "swap", "2", "1", call=2, ret=3),
        Op("c", "k", "read", None, "1", call=4, ret=5),
    ]
    assert check_key(history) is False
    assert check_key(history[:2] + [Op("c", "k", "read", None, "2", call=4, ret=5)]) is True


def test_checker_allows_an_unfinished_write_either_way() -> None:
    w = Op("a", "k", "swap", "1", None, call=0)  # never answered
    assert check_key([w, Op("b", "k", "read", None, "1", call=5, ret=6)]) is True
    assert check_key([w, Op("b", "k", "read", None, None, call=5, ret=6)]) is True


@pytest.mark.parametrize("fanout,sends", [(4, 4 + 4), (0, 59)])
def test_the_leader_sends_each_entry_to_voters_and_the_first_tier_only(fanout: int, sends: int) -> None:
    figures = ScaleSim(60, fanout=fanout, seconds=0.5).run()
    assert figures["entries"] == 10 and figures["leader_sends_per_entry"] == sends
    assert figures["tree_depth"] == (3 if fanout else 1)  # 55 learners: 4 + 16 + 35
    assert figures["apply_all_p99_s"] is not None  # every host applied every entry

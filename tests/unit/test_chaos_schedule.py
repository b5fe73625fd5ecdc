"""The chaos schedule: seeded, complete, serial faults, valid targets, clear errors."""

import pytest

from tools.chaos.__main__ import main, params_from, parse_args, replay_command
from tools.chaos._schedule import (
    AGENT_FAULTS,
    CUT,
    CUT_FAULTS,
    CUT_ONEWAY,
    CUT_PAIR,
    KILL,
    LEADER,
    RESTART,
    TIMING,
    WARMUP_S,
    ChaosParams,
    LifecycleStep,
    ScheduleError,
    Toggle,
    make_schedule,
)


def test_same_seed_same_schedule_other_seed_another():
    p = ChaosParams(seed=42, hosts=5, kills=30, cuts=10)
    assert make_schedule(p) == make_schedule(p)
    assert make_schedule(p).faults != make_schedule(ChaosParams(seed=43, hosts=5, kills=30, cuts=10)).faults


def test_counts_kinds_and_targets():
    s = make_schedule(ChaosParams(seed=1, hosts=5, kills=100, restarts=10, cuts=20, lifecycles=4))
    kinds = [f.kind for f in s.faults]
    assert kinds.count(KILL) == 100 and kinds.count(RESTART) == 10
    assert sum(k in CUT_FAULTS for k in kinds) == 20
    assert {CUT, CUT_PAIR, CUT_ONEWAY} <= set(kinds)  # every shape of cut appears in 20 draws
    hosts = {f"h{i}" for i in range(1, 6)}
    for f in s.faults:
        if f.kind in AGENT_FAULTS:
            assert f.host in hosts | {LEADER} and f.peer is None
        else:
            assert f.host in hosts and (f.peer is None) == (f.kind == CUT) and f.peer != f.host
    leader = sum(f.host == LEADER for f in s.faults)
    assert 20 <= leader <= 55  # about a third of 110 agent faults
    assert [f.fid for f in s.faults] == list(range(130))


def test_faults_are_serial_within_their_ranges_and_checkpoints_fall_between_them():
    p = ChaosParams(seed=7, hosts=3, kills=25, restarts=3, cuts=6, check_every=5)
    s = make_schedule(p)
    t = TIMING["local"]
    assert s.faults[0].start_s == WARMUP_S
    for a, b in zip(s.faults, s.faults[1:], strict=False):
        gap = b.start_s - a.end_s
        assert t.gap_s[0] - 1e-3 <= gap <= t.gap_s[1] + 1e-3
    for f in s.faults:
        lo, hi = {KILL: t.kill_down_s, RESTART: t.restart_pause_s}.get(f.kind, t.cut_s)
        assert lo - 1e-3 <= f.end_s - f.start_s <= hi + 1e-3
    starts = [f.start_s for f in s.faults]
    middle = s.checkpoints[:-1]
    assert len(middle) == (len(s.faults) - 1) // 5 and s.checkpoints[-1].final
    for c in middle:  # at the next fault's start, after the previous one's end
        assert c.at_s in starts
    assert s.checkpoints[-1].at_s == s.end_s >= s.faults[-1].end_s


def test_api_track_toggles_and_whole_lifecycles_inside_the_run():
    s = make_schedule(ChaosParams(seed=3, hosts=4, kills=20, cuts=4, lifecycles=3, toggles_per_min=60))
    toggles = [o for o in s.api_ops if isinstance(o, Toggle)]
    minutes = s.end_s / 60
    assert 0.5 * 60 * minutes <= len(toggles) <= 1.5 * 60 * minutes
    assert all(0 < o.at_s < s.end_s for o in s.api_ops)
    assert [o.at_s for o in s.api_ops] == sorted(o.at_s for o in s.api_ops)
    steps = [o for o in s.api_ops if isinstance(o, LifecycleStep)]
    for n in range(3):
        mine = [o for o in steps if o.n == n]
        assert [o.op for o in mine] == ["create", "connect", "connect", "disconnect", "delete"]
        assert mine[1].host != mine[2].host and mine[3].host == mine[1].host
        assert len({(o.network, o.tenant, o.subnet) for o in mine}) == 1
    assert len({o.subnet for o in steps}) == 3


def test_duration_spreads_the_faults_or_says_what_is_missing():
    s = make_schedule(ChaosParams(seed=5, hosts=3, kills=4, cuts=1, duration_s=120))
    assert s.end_s == pytest.approx(120, abs=0.01)
    with pytest.raises(ScheduleError, match=r"--duration 30 s is too short: .* raise --duration or lower"):
        make_schedule(ChaosParams(seed=5, hosts=3, kills=10, cuts=5, duration_s=30))


def test_invalid_parameters_are_all_named():
    with pytest.raises(ScheduleError) as exc:
        make_schedule(ChaosParams(seed=1, hosts=2, replicas=3, kills=-1, profile="wan", check_every=0))
    text = str(exc.value)
    for part in ("--hosts 2", "--replicas 3", "--kills -1", "--profile 'wan'", "--check-every 0"):
        assert part in text


def test_no_faults_still_has_a_final_checkpoint():
    s = make_schedule(ChaosParams(seed=1, hosts=3, kills=0, restarts=0, cuts=0, lifecycles=0, toggles_per_min=0))
    assert s.faults == () and s.api_ops == ()
    assert [c.final for c in s.checkpoints] == [True]
    assert "no faults" in s.summary()


def test_cli_quick_preset_takes_overrides_and_replay_sets_the_seed(capsys):
    p = params_from(parse_args(["--quick", "--kills", "5", "--seed", "9"]))
    assert (p.hosts, p.replica_count, p.kills, p.cuts, p.seed) == (3, 2, 5, 1, 9)
    assert params_from(parse_args(["--seed", "1"])).hosts == 5
    assert replay_command(["--quick", "--seed", "3", "--prefix", "x"], 77) == \
        "python -m tools.chaos --quick --prefix x --seed 77"
    assert main(["--quick", "--seed", "54", "--dry-run"]) == 0
    assert "seed 54: 1 cut-pair, 3 kill, 1 restart" in capsys.readouterr().out
    assert main(["--hosts", "2", "--seed", "1", "--dry-run"]) == 2
    assert "error: --hosts 2: use 3 or more" in capsys.readouterr().err

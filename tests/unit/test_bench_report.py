"""The benchmark report's pure parts: figures, the budget plan and the rendering."""

import json
import math
import types

import pytest

from tools.bench import report
from tools.bench._figures import Budget, Figure, Plot, Section, percentile
from tools.bench._render import fmt, render


def test_figure_median_spread_and_goal():
    f = Figure("a.p50_ms", "attach p50", "ms", goal=("<=", 15.0))
    assert f.met() is None  # no values yet
    for v in (12.0, 30.0, 14.0):
        f.add(v)
    assert (f.median, f.low, f.high) == (14.0, 12.0, 30.0)
    assert f.met() is True
    f.add(float("nan"))  # a repetition that could not measure does not count
    assert f.median == 14.0
    assert Figure("x", "x", "/s", [4000.0], goal=(">=", 5000.0)).met() is False


def test_section_round_trips_through_json():
    s = Section("alloc", "Allocation", "method", setup={"n": 3})
    s.figure("alloc.x", "x", "/s", goal=(">=", 5.0), ratio_to="alloc.y").add(7)
    s.figure("alloc.x", "x", "/s").add(9)  # same key: same figure
    s.plots.append(Plot("p", "t", "x", "y", {"a": [[1, 2], [3, 4]]}))
    back = Section.from_json(json.loads(json.dumps(s.to_json())))
    assert back == s
    assert back.get("alloc.x").values == [7.0, 9.0] and back.get("alloc.x").goal == (">=", 5.0)


def test_percentile_is_nearest_rank():
    samples = list(range(1, 101))
    assert percentile(samples, 50) == 50 and percentile(samples, 99) == 99 and percentile(samples, 100) == 100
    assert math.isnan(percentile([], 50))


def test_fmt_keeps_three_significant_digits():
    assert [fmt(v) for v in (12345.6, 123.4, 12.34, 1.234, 0.01234, 0, float("nan"))] == [
        "12,346", "123", "12.3", "1.23", "0.0123", "0", "–"]


def _fake_sections(monkeypatch, per_rep):
    mods = {name: types.SimpleNamespace(estimate_s=lambda b, c=cost: c * b.reps) for name, cost in per_rep.items()}
    monkeypatch.setattr(report, "_module", lambda name: mods[name])


def test_plan_lowers_repetitions_of_the_costliest_first_and_drops_what_cannot_fit(monkeypatch):
    _fake_sections(monkeypatch, {"a": 100, "b": 100, "c": 1000})
    assert report.plan(["a", "b"], 600, 3, False) == [("a", 3, 300), ("b", 3, 300)]
    assert report.plan(["a", "b"], 400, 3, False) == [("a", 2, 200), ("b", 2, 200)]
    assert report.plan(["a", "c", "b"], 2500, 3, False) == [("a", 3, 300), ("c", 1, 1000), ("b", 3, 300)]
    # all at one repetition and still too long: sections are dropped from the end until it fits
    assert report.plan(["a", "c", "b"], 1150, 3, False) == [("a", 1, 100), ("c", 1, 1000), ("b", 0, 100)]


def test_render_writes_tables_goals_and_plots(tmp_path):
    s = Section("attach", "Attach", "how it is measured", setup={"containers": 1000, "raw": [1, 2]})
    s.figure("attach.p50", "attach p50", "ms", goal=("<=", 15.0)).add(20.0)
    s.figure("attach.docker", "docker run", "ms").add(100.0)
    s.figure("attach.p50_vs", "attach p50", "ms", anchor="docker run", ratio_to="attach.docker").add(20.0)
    s.plots.append(Plot("attach_cdf", "latency", "ms", "", {"meshd": [[], [1.0, 2.0, 3.0]]}, kind="cdf"))
    s.plots.append(Plot("bars", "by kind", "kind", "ms", {"p50": [["none", "bridge"], [5, 9]]}, kind="bar"))
    broken = Section("alloc", "Alloc", "", error="stopped after 900 s")
    text = render({"runs": [{"started": "t0", "command": "c", "quick": True}], "machine": {"cores": 2}}, [s, broken],
                  tmp_path / "plots")
    assert "| attach | attach p50 | ≤ 15 | 20.0 ms | **missed** |" in text
    assert "| attach p50 | 20.0 |  | ms | docker run = 100 ms | 0.20 |" in text
    assert "**Not complete:** stopped after 900 s" in text
    assert "- t0 to ?, meshd ?: `c` (**quick sizes**" in text
    assert '"raw"' not in text  # raw samples stay in the JSON
    for name in ("attach_cdf.png", "bars.png"):
        assert (tmp_path / "plots" / name).read_bytes().startswith(b"\x89PNG")
        assert f"](plots/{name})" in text


def test_unknown_section_is_refused(capsys):
    with pytest.raises(SystemExit):
        report.main(["--sections", "attach,nope", "--out", "/nonexistent/x.md"])
    assert "unknown section(s) nope" in capsys.readouterr().err


def test_budget_defaults():
    assert Budget() == Budget(reps=3, quick=False, workdir="/var/tmp")


def test_a_run_that_measured_nothing_keeps_the_earlier_figures_and_says_so():
    good = Section("alloc", "Allocation", "method", setup={"measured": "2026-12-06T10:00:00+00:00"})
    good.figure("alloc.x", "x", "/s").add(7)
    rep = {"sections": {"alloc": good.to_json()}}
    failed = Section("alloc", "alloc", "", error="exit 1, no result; log /var/tmp/x.log: etcd is not installed")
    report.keep_or_replace(rep, failed, "2026-12-07T03:30:00+00:00")
    kept = Section.from_json(rep["sections"]["alloc"])
    assert kept.get("alloc.x").median == 7
    assert "re-measuring failed in the run of 2026-12-07T03:30:00+00:00" in kept.error
    assert "etcd is not installed" in kept.error and "2026-12-06T10:00:00+00:00" in kept.error
    fresh = Section("alloc", "Allocation", "method")
    fresh.figure("alloc.x", "x", "/s").add(9)
    report.keep_or_replace(rep, fresh, "2026-12-07T04:00:00+00:00")  # a good run replaces it, error and all
    assert Section.from_json(rep["sections"]["alloc"]).get("alloc.x").median == 9
    assert rep["sections"]["alloc"]["error"] == ""
    report.keep_or_replace(rep := {"sections": {}}, failed, "t")  # nothing earlier: the failure is shown
    assert rep["sections"]["alloc"]["error"].startswith("exit 1")

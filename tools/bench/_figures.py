"""The data model of the benchmark report: figures, plots and sections.

Every section of ``tools.bench.report`` returns one :class:`Section`. A
:class:`Figure` holds one value per repetition (configurations are
interleaved inside a repetition, so machine noise hits all alike); the
report prints its median and min–max, its goal, and the anchor it sits
beside. Everything here is plain data that round-trips through JSON, so the
raw figures file can be rendered again without measuring.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

_OPS = {"<=": lambda v, t: v <= t, ">=": lambda v, t: v >= t}


@dataclass
class Figure:
    """One measured quantity, one value per repetition.

    ``goal`` is ``("<=", 15.0)`` or ``(">=", 5000.0)``, checked against the
    median; ``goal_text`` says where the goal comes from when it is not a
    plain number (e.g. "≤ detection + 0.5 s"). ``anchor`` names what the
    figure is compared with (e.g. "etcd put, same run"), and ``ratio_to``
    the key of another figure in the same section to print the ratio of the
    medians beside it.
    """

    key: str
    label: str
    unit: str
    values: list[float] = field(default_factory=list)
    goal: tuple[str, float] | None = None
    goal_text: str = ""
    anchor: str = ""
    ratio_to: str = ""
    note: str = ""

    def add(self, value: float) -> None:
        self.values.append(float(value))

    @property
    def median(self) -> float:
        vals = [v for v in self.values if not math.isnan(v)]
        return statistics.median(vals) if vals else math.nan

    @property
    def low(self) -> float:
        vals = [v for v in self.values if not math.isnan(v)]
        return min(vals) if vals else math.nan

    @property
    def high(self) -> float:
        vals = [v for v in self.values if not math.isnan(v)]
        return max(vals) if vals else math.nan

    def met(self) -> bool | None:
        """True/False against the goal (on the median); None without a goal or values."""
        if self.goal is None or math.isnan(self.median):
            return None
        op, target = self.goal
        return _OPS[op](self.median, target)


@dataclass
class Plot:
    """A line plot (``kind="line"``), CDF (``"cdf"``: ``lines`` hold raw samples as y) or bar chart.

    ``lines`` maps a legend label to ``[xs, ys]``; for ``"cdf"`` the xs are
    ignored and the ys are the samples; for ``"bar"`` each line is one bar
    group with xs as category labels.
    """

    key: str
    title: str
    xlabel: str
    ylabel: str
    lines: dict[str, list[list[Any]]] = field(default_factory=dict)
    kind: str = "line"
    logy: bool = False


@dataclass
class Section:
    """One part of the report: its figures, plots, notes and the setup it ran with."""

    key: str
    title: str
    method: str
    figures: list[Figure] = field(default_factory=list)
    plots: list[Plot] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    setup: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    error: str = ""

    def figure(self, key: str, label: str, unit: str, **kw: Any) -> Figure:
        """Get the figure ``key``, creating it on first use (call once per repetition)."""
        for f in self.figures:
            if f.key == key:
                return f
        f = Figure(key, label, unit, **kw)
        self.figures.append(f)
        return f

    def get(self, key: str) -> Figure | None:
        return next((f for f in self.figures if f.key == key), None)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Section:
        data = dict(data)
        figures = [Figure(**{**f, "goal": tuple(f["goal"]) if f.get("goal") else None})
                   for f in data.pop("figures", [])]
        plots = [Plot(**p) for p in data.pop("plots", [])]
        return cls(**data, figures=figures, plots=plots)


@dataclass(frozen=True)
class Budget:
    """What the report asks of a section: repetitions, smaller sizes, and a place for files.

    ``quick`` shrinks sizes for a smoke run (the report says so); a section
    must still produce every figure. ``workdir`` is a fresh directory on a
    real disk that the section may fill and that the report removes.
    """

    reps: int = 3
    quick: bool = False
    workdir: str = "/var/tmp"


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of ``samples``; NaN when empty."""
    if not samples:
        return math.nan
    s = sorted(samples)
    k = max(0, min(len(s) - 1, math.ceil(q / 100 * len(s)) - 1))
    return s[k]


def section_main(run: Any, doc: str, quick_help: str, argv: list[str] | None = None) -> int:
    """The command line of a section module: ``--reps``, ``--quick``; prints the Section as one JSON line."""
    import argparse
    import json
    import time

    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3, help="repetitions (default 3)")
    ap.add_argument("--quick", action="store_true", help=quick_help)
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    section = run(Budget(reps=args.reps, quick=args.quick))
    section.seconds = round(time.monotonic() - t0, 1)
    print(json.dumps(section.to_json()))
    return 1 if section.error else 0

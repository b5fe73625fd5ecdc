"""Rendering of the benchmark report: markdown tables, PNG plots, and the machine it ran on.

Pure apart from the plot files and the version probes: ``render`` turns the
raw report (``docs/benchmarks.json``) into ``docs/benchmarks.md``.
"""

from __future__ import annotations

import math
import os
import platform
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from tools.bench._figures import Figure, Plot, Section

TOOLS = {  # name -> command printing its version
    "docker": ["docker", "version", "--format", "{{.Server.Version}}"],
    "serf": ["serf", "version"],
    "etcd": ["etcd", "--version"],
    "iperf3": ["iperf3", "--version"],
    "pyzmq / libzmq": ["python3", "-c", "import zmq; print(zmq.__version__, zmq.zmq_version())"],
}


def machine_info() -> dict[str, Any]:
    """The machine and the versions the figures were measured with."""
    cpu = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text())
    mem = re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text())
    info: dict[str, Any] = {
        "cpu": cpu[1] if cpu else platform.processor(),
        "cores": os.cpu_count(),
        "memory_gib": round(int(mem[1]) / 2**20, 1) if mem else None,
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "meshd_commit": _probe(["git", "-C", str(Path(__file__).resolve().parents[2]), "rev-parse", "--short",
                                "HEAD"]),
        "load_avg_start": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
    }
    for name, argv in TOOLS.items():
        argv = [sys.executable, *argv[1:]] if argv[0] == "python3" else argv
        info[name] = _probe(argv)
    return info


def _probe(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0].strip() if text and out.returncode == 0 else "not available"


def fmt(v: float) -> str:
    """A figure for a table: three significant digits, thousands separated."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    if a == 0:
        return "0"
    return f"{v:.3g}"


def _goal_text(f: Figure) -> str:
    if f.goal_text:
        return f.goal_text
    if f.goal is None:
        return ""
    op, target = f.goal
    return f"{'≤' if op == '<=' else '≥'} {f'{target:,.0f}' if target == int(target) else fmt(target)}"


def _met(f: Figure) -> str:
    met = f.met()
    return "" if met is None else ("met" if met else "**missed**")


def _beside(f: Figure, section: Section) -> tuple[str, str]:
    """(the anchor with its median, the ratio of the medians) for the table."""
    other = section.get(f.ratio_to) if f.ratio_to else None
    if other is None or math.isnan(other.median):
        return f.anchor, ""
    ratio = "" if not other.median or math.isnan(f.median) else f"{f.median / other.median:.2f}"
    beside = f"{other.label} = {fmt(other.median)} {other.unit}"
    return (f"{f.anchor}; {beside}" if f.anchor and f.anchor not in other.label else beside), ratio


def figure_table(section: Section) -> list[str]:
    rows = ["| figure | median | min–max | unit | beside (its median) | ratio | goal | |",
            "|---|---:|---|---|---|---:|---|---|"]
    for f in section.figures:
        spread = f"{fmt(f.low)}–{fmt(f.high)}" if len(f.values) > 1 else ""
        anchor, ratio = _beside(f, section)
        rows.append(f"| {f.label} | {fmt(f.median)} | {spread} | {f.unit} | {anchor} | {ratio} "
                    f"| {_goal_text(f)} | {_met(f)} |")
    return rows


def goals_table(sections: list[Section]) -> list[str]:
    rows = ["| section | figure | goal | median (min–max) | |", "|---|---|---|---|---|"]
    for s in sections:
        for f in s.figures:
            if f.goal is not None or f.goal_text:
                spread = f" ({fmt(f.low)}–{fmt(f.high)})" if len(f.values) > 1 else ""
                rows.append(f"| {s.key} | {f.label} | {_goal_text(f)} | {fmt(f.median)}{spread} {f.unit} "
                            f"| {_met(f)} |")
    return rows


def draw(plot: Plot, path: Path) -> None:
    """One PNG per plot (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    try:
        if plot.kind == "bar":
            _bars(ax, plot)
        else:
            for label, (xs, ys) in plot.lines.items():
                if plot.kind == "cdf":
                    ys = sorted(y for y in ys if y is not None)
                    xs, ys = ys, [(i + 1) / len(ys) for i in range(len(ys))]
                ax.plot(xs, ys, label=label, marker="." if len(xs) < 50 else None, linewidth=1)
        if plot.logy:
            ax.set_yscale("log")
        ax.set_title(plot.title)
        ax.set_xlabel(plot.xlabel)
        ax.set_ylabel("fraction of samples" if plot.kind == "cdf" else plot.ylabel)
        if len(plot.lines) > 1 or plot.kind == "bar":
            ax.legend(fontsize="small")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    finally:
        plt.close(fig)


def _bars(ax: Any, plot: Plot) -> None:
    cats: list[str] = []
    for xs, _ys in plot.lines.values():
        cats += [x for x in xs if x not in cats]
    width = 0.8 / max(1, len(plot.lines))
    for i, (label, (xs, ys)) in enumerate(plot.lines.items()):
        pos = [cats.index(x) + i * width for x in xs]
        ax.bar(pos, ys, width, label=label)
    ax.set_xticks([c + 0.4 - width / 2 for c in range(len(cats))], cats, rotation=20, ha="right",
                  fontsize="small")


def render(report: dict[str, Any], sections: list[Section], plotdir: Path) -> str:
    """The whole markdown report; plots are written into ``plotdir``."""
    machine = report.get("machine", {})
    lines = [
        "# meshd benchmarks",
        "",
        "Generated by `sudo .venv/bin/python -m tools.bench.report` (see its `--help`; `tools/setup.sh --bench`",
        "installs what it needs). Do not edit by hand: the figures come from `docs/benchmarks.json`, and",
        "`--render-only` re-renders this file from it. Each figure is the median over repetitions with the",
        "min–max beside it; within a repetition the configurations are interleaved, so machine noise hits",
        "every configuration alike. Ratios divide medians.",
        "",
        "Runs whose figures are shown (a section's setup line names its run by date and commit):",
        "",
        *[f"- {r.get('started', '?')} to {r.get('finished', '?')}, meshd {r.get('meshd_commit', '?')}: "
          f"`{r.get('command', '?')}`"
          f"{' (**quick sizes**: a smoke run, not figures to quote)' if r.get('quick') else ''}"
          for r in report.get("runs", [])],
        "",
        "## Machine and versions (of the last run)",
        "",
        "| | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in machine.items()],
        "",
        "## Goals at a glance",
        "",
        *goals_table(sections),
        "",
    ]
    for s in sections:
        lines += section_markdown(s, plotdir)
    text = "\n".join(lines) + "\n"
    for old in plotdir.glob("*.png"):  # plots of an earlier run that this one does not draw
        if f"]({plotdir.name}/{old.name})" not in text:
            old.unlink()
    return text


def section_markdown(s: Section, plotdir: Path) -> list[str]:
    out = [f"## {s.title}", ""]
    if s.error:
        out += [f"**Not complete:** {s.error}", ""]
    if s.method:
        out += [s.method, ""]
    if s.figures:
        out += [*figure_table(s), ""]
    for plot in s.plots:
        if not any(ys for _xs, ys in plot.lines.values()):
            continue
        path = plotdir / f"{plot.key}.png"
        draw(plot, path)
        out += [f"![{plot.title}]({plotdir.name}/{path.name})", ""]
    if s.notes:
        out += ["Notes:", "", *[f"- {n}" for n in s.notes], ""]
    setup = {k: v for k, v in s.setup.items() if k != "raw"}
    if setup:
        out += [f"Setup: `{_compact(setup)}`; section wall time {s.seconds:.0f} s.", ""]
    return out


def _compact(d: dict[str, Any]) -> str:
    import json

    text = json.dumps(d, separators=(", ", ": "), default=str)
    return text if len(text) < 600 else text[:597] + "..."

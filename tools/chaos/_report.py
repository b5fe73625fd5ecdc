"""The run's table and findings as plain text (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tools.chaos._checks import Tally


def table(tally: Tally) -> str:
    """``invariant | checks | violations`` for every invariant, in a fixed order."""
    rows = [("invariant", "checks", "violations")] + [(i, str(c), str(v)) for i, c, v in tally.rows()]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    w2 = max(len(r[2]) for r in rows)
    lines = [f"{a:<{w0}}  {b:>{w1}}  {c:>{w2}}" for a, b, c in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def findings(tally: Tally) -> str:
    """The kept findings of every violated invariant ("" when there are none)."""
    out = []
    for invariant, _checks, violations in tally.rows():
        if not violations:
            continue
        kept = tally.details[invariant]
        out.append(f"{invariant}: {violations} violation(s)" + (f", first {len(kept)}:" if kept else ""))
        out += [f"  - {text}" for text in kept]
    return "\n".join(out)


def report(tally: Tally, summary: str, replay: str, notes: Sequence[str] = ()) -> str:
    """Table, findings, notes, and the command that replays the same schedule."""
    parts = [summary, "", table(tally)]
    if text := findings(tally):
        parts += ["", text]
    if notes:
        parts += ["", "notes:"] + [f"  - {n}" for n in notes]
    verdict = "PASS: no invariant violated" if tally.ok() else "FAIL: invariants violated"
    parts += ["", f"{verdict}; replay this schedule with: {replay}"]
    return "\n".join(parts)


def as_json(tally: Tally, seed: int, summary: str, notes: Sequence[str] = ()) -> dict[str, Any]:
    """The same content for machines: ``{"seed", "summary", "ok", "invariants": [...], "notes"}``."""
    rows = [{"invariant": i, "checks": c, "violations": v, "findings": list(tally.details[i])}
            for i, c, v in tally.rows()]
    return {"seed": seed, "summary": summary, "ok": tally.ok(), "invariants": rows, "notes": list(notes)}

"""A small linearizability checker (Wing & Gong search with memoization).

The model is a register per key with two operations: ``swap(v)`` writes v
and returns the previous value, ``read()`` returns the value.  Keys are
independent (linearizability is compositional), so each key's history is
checked alone.  An operation whose outcome is unknown (the client gave up)
has ``ret = inf``: it may take effect at any point after its call, or never.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Op:
    client: str
    key: str
    kind: str  # "swap" or "read"
    arg: Any
    result: Any  # None when unknown
    call: float
    ret: float = math.inf  # inf: no response seen

    @property
    def known(self) -> bool:
        return self.ret != math.inf


def _step(op: Op, state: Any) -> tuple[bool, Any]:
    if op.kind == "swap":
        return (not op.known or op.result == state), op.arg
    return op.result == state, state


def check_key(ops: list[Op], initial: Any = None, budget: int = 2_000_000) -> bool | None:
    """True if the history is linearizable, False if not, None if the search gave up."""
    ops = sorted(ops, key=lambda o: o.call)
    ops = [o for o in ops if o.known or o.kind == "swap"]  # unanswered reads constrain nothing
    n = len(ops)
    required = sum(1 << i for i, o in enumerate(ops) if o.known)
    seen: set[tuple[int, Any]] = set()
    steps = 0

    def search(done: int, state: Any) -> bool:
        nonlocal steps
        if done & required == required:
            return True
        if (done, state) in seen:
            return False
        seen.add((done, state))
        steps += 1
        if steps > budget:
            raise _GaveUp
        horizon = min(ops[i].ret for i in range(n) if not done >> i & 1)
        for i in range(n):
            if done >> i & 1:
                continue
            if ops[i].call > horizon:
                break
            ok, new = _step(ops[i], state)
            if ok and search(done | 1 << i, new):
                return True
        return False

    try:
        return search(0, initial)
    except _GaveUp:
        return None


class _GaveUp(Exception):
    """The linearizability search hit its step budget."""


def check_history(ops: list[Op]) -> list[str]:
    """Problems found (empty when every key's history is linearizable)."""
    by_key: dict[str, list[Op]] = {}
    for op in ops:
        by_key.setdefault(op.key, []).append(op)
    out = []
    for key, kops in sorted(by_key.items()):
        ok = check_key(kops)
        if ok is False:
            lines = "\n    ".join(repr(o) for o in sorted(kops, key=lambda o: o.call))
            out.append(f"history of key {key!r} is not linearizable:\n    {lines}")
    return out

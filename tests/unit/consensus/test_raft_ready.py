"""plan_ready: the one place that orders a Ready's I/O (the driver and the simulation both follow it)."""

from __future__ import annotations

import pytest

from consensus import Advance, AnswerReads, Apply, Persist, Report, Send, plan_ready
from consensus._messages import ConfState, Entry, HardState, Heartbeat, VoteResp
from consensus._types import ReadState, Ready, Role, Snapshot, SoftState

SAVED = HardState(term=3, vote="a", commit=5)
ENTRY = Entry(3, 7, 0, b"x")
MSG = Heartbeat(term=3, frm="a", to="b", commit=6)


def ready(**kw) -> Ready:
    base = dict(hard_state=None, entries=(), snapshot=None, committed=(), messages=(), read_states=(),
                soft_state=None, notes=())  # fmt: skip
    return Ready(**{**base, **kw})


def kinds(actions) -> list[str]:
    out = []
    for a in actions:
        name = type(a).__name__
        out.append(f"{name}(sync)" if isinstance(a, Persist) and a.sync else name)
    return out


@pytest.mark.parametrize("leader,rd,expected", [
    # a follower acknowledges entries only once they are durable
    (False, ready(entries=(ENTRY,), messages=(MSG,)), ["Persist(sync)", "Send", "Advance"]),
    # a leader whose term and vote are durable sends first (thesis 10.2.1)
    (True, ready(entries=(ENTRY,), messages=(MSG,)), ["Send", "Persist(sync)", "Advance"]),
    # ... but a new term or vote is durable before any message reveals it, leader or not
    (True, ready(hard_state=HardState(4, "a", 5), messages=(MSG,)), ["Persist(sync)", "Send", "Advance"]),
    (False, ready(hard_state=HardState(3, "a", 6), messages=(MSG,)), ["Persist", "Send", "Advance"]),
    (True, ready(hard_state=HardState(3, "a", 6), messages=(MSG,)), ["Send", "Persist", "Advance"]),
    (False, ready(hard_state=HardState(4, "c", 5), messages=(VoteResp(term=4, frm="a", to="c", granted=True),)),
     ["Persist(sync)", "Send", "Advance"]),
    # the commit index alone is not worth an fsync
    (False, ready(hard_state=HardState(3, "a", 7), committed=(ENTRY,)), ["Persist", "Apply", "Advance"]),
    (False, ready(snapshot=Snapshot(9, 3, ConfState(frozenset("ab")), b"s")), ["Persist(sync)", "Apply", "Advance"]),
    (False, ready(read_states=(ReadState(1, 7),), notes=("n",)), ["AnswerReads", "Report", "Advance"]),
    (True, ready(soft_state=SoftState(Role.LEADER, "a", 3)), ["Report", "Advance"]),
    (False, ready(), ["Advance"]),
])  # fmt: skip
def test_actions_come_in_the_documented_order(leader, rd, expected):
    assert kinds(plan_ready(rd, leader=leader, saved=SAVED)) == expected


def test_the_actions_carry_the_ready_whole():
    snap = Snapshot(9, 3, ConfState(frozenset("ab")), b"s")
    hs = HardState(4, "b", 9)
    rd = ready(hard_state=hs, entries=(ENTRY,), snapshot=snap, committed=(ENTRY,), messages=(MSG,),
               read_states=(ReadState(1, 7),), soft_state=SoftState(Role.FOLLOWER, "b", 4), notes=("x",))
    assert plan_ready(rd, leader=False, saved=SAVED) == (
        Persist(hs, (ENTRY,), snap, True), Send((MSG,)), Apply(snap, (ENTRY,)), AnswerReads((ReadState(1, 7),)),
        Report(("x",), SoftState(Role.FOLLOWER, "b", 4)), Advance(rd),
    )  # fmt: skip

"""The autopilot's trio driver: on the Raft leader, carry out what :func:`~meshd.agent._autopilot.decide` says.

Woken by every member and Raft event (and at least once a second), it sets
the Raft peer addresses from gossip once a second (the agent sets them on
every burst of member events; this heals a missed one, and is no scan of
every member per wake), and on the leader asks the pure
:mod:`~meshd.agent._autopilot` for the next membership change and makes it.
"""

from __future__ import annotations

import logging

import trio

import consensus

from . import _autopilot as ap
from ._events import Events
from ._members import MemberBook
from ._replica import Replica

log = logging.getLogger("meshd.agent")


class Autopilot:
    def __init__(self, host: str, replica: Replica, members: MemberBook, events: Events,
                 cfg: ap.AutopilotConfig) -> None:
        self._host = host
        self._replica = replica
        self._members = members
        self._events = events
        self._cfg = cfg
        self._wake = trio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        peers_set = -float("inf")
        while True:
            with trio.move_on_after(1.0):
                await self._wake.wait()
            self._wake = trio.Event()
            raft = self._replica.raft
            if not raft.is_leader:  # the status of a large cluster is not cheap; followers wake on every member event
                continue
            # the leader's peers also drop members gossip reaped (no member event says so); a
            # follower's come from the member bursts (Agent._on_members): a scan of every member
            # every second on every host was 5 % of a starved agent's CPU at 200 hosts
            if trio.current_time() - peers_set >= 1.0:
                raft.set_peers(self._members.raft_peers())
                peers_set = trio.current_time()
            status = raft.status()
            # a learner the leader has not heard from at its cadence (starved, cut off) has no
            # known lag: a small index distance proves nothing while the log is short
            lags = {p.id: p.lag for p in status.peers if p.responsive}
            lags[self._host] = 0
            action = ap.decide(leader=self._host, voters=status.voters, learners=status.learners,
                               members=self._members.views(lags, (*status.voters, *status.learners)),
                               now=trio.current_time(), cfg=self._cfg)
            if action is not None:
                await self._carry_out(raft, action)

    async def _carry_out(self, raft: consensus.RaftNode, action: ap.Action) -> None:
        op = {ap.Op.ADD_LEARNER: raft.add_learner, ap.Op.PROMOTE: raft.promote,
              ap.Op.REMOVE: raft.remove}[action.op]
        try:
            await op(action.node)
        except consensus.RaftError as exc:
            log.info("autopilot step failed op=%s node=%s error=%s", action.op.value, action.node, exc)
            return
        log.info("autopilot op=%s node=%s reason=%r", action.op.value, action.node, action.reason)
        self._events.note("raft", f"{action.op.value} {action.node}: {action.reason}")
        self._wake.set()

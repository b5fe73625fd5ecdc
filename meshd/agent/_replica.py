"""This host's replica: the Raft node and the network state it applies to, owned together.

Everything that reads the replicated state or proposes to the log asks the
:class:`Replica` for its current :attr:`~Replica.state` and
:attr:`~Replica.raft` each time: ``meshd join`` on a host that bootstrapped an
empty cluster of its own replaces both (:meth:`Replica.reset`).

What Raft reports is turned into calls on a :class:`ReplicaListener`: the
role changes, and after each applied batch the state's change stream
(:meth:`meshd.state.NetworkState.changes_since`).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import trio

import consensus
from meshd import state as st
from meshd.config import Config
from meshd.transport import PeerTransport

log = logging.getLogger("meshd.agent")


class ReplicaListener(Protocol):
    def on_role_changed(self, event: consensus.RoleChanged) -> None: ...

    def on_changes(self, changes: Sequence[st.Change]) -> None: ...


class Replica:
    """The Raft node of this host and its :class:`meshd.state.NetworkState`; see the module docstring."""

    def __init__(self, name: str, cfg: Config, transport: PeerTransport, listener: ReplicaListener) -> None:
        self.name = name
        self._cfg = cfg
        self._transport = transport
        self._listener = listener
        self._dir = Path(cfg.agent.data_dir) / "raft"
        self.state = st.NetworkState()
        self._raft: consensus.RaftNode | None = None
        self._stop: tuple[trio.CancelScope, trio.Event] | None = None

    @property
    def raft(self) -> consensus.RaftNode:
        if self._raft is None:
            raise RuntimeError("the Raft node is not started")
        return self._raft

    @property
    def started(self) -> bool:
        return self._raft is not None

    async def start(self, nursery: trio.Nursery, *, may_bootstrap: bool) -> None:
        """Open the log and run a Raft node (and its event relay) in its own cancel scope.

        A fresh log (no entries, no term) with ``may_bootstrap`` bootstraps a
        one-voter cluster of this host.
        """
        storage = consensus.Storage.open(self._dir)
        fresh = not storage.last_index() and not storage.hard_state.term
        bootstrap = [self.name] if fresh and may_bootstrap else None
        raft = consensus.RaftNode(self.name, config=self._cfg.raft, transport=self._transport,
                                  storage=storage, state_machine=self.state, bootstrap=bootstrap)
        scope, closed = trio.CancelScope(), trio.Event()

        async def run(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            with scope:
                try:
                    async with trio.open_nursery() as inner:
                        await inner.start(raft.run)
                        inner.start_soon(self._relay, raft, self.state)
                        task_status.started()
                finally:
                    storage.close()
                    closed.set()

        await nursery.start(run)
        self._raft, self._stop = raft, (scope, closed)
        if bootstrap:
            await raft.campaign()
            log.info("bootstrapped a new cluster with this host as its only voter")

    async def reset(self, nursery: trio.Nursery) -> None:
        """Drop this host's log and state and start again as a member waiting to be added."""
        assert self._stop is not None
        scope, closed = self._stop
        scope.cancel()
        await closed.wait()
        shutil.rmtree(self._dir)
        self.state = st.NetworkState()
        await self.start(nursery, may_bootstrap=False)

    def others(self) -> list[str]:
        """The other voters and learners of the Raft configuration."""
        status = self.raft.status()
        return [n for n in (*status.voters, *status.learners) if n != self.name]

    async def _relay(self, raft: consensus.RaftNode, state: st.NetworkState) -> None:
        seen = state.last_index
        events = raft.subscribe()
        async for event in events:
            applied = True
            if isinstance(event, consensus.RoleChanged):
                applied = False
                self._listener.on_role_changed(event)
            while True:  # every event already waiting: one pass over the changes, not one per entry
                try:
                    event = events.receive_nowait()
                except trio.WouldBlock:
                    break
                if isinstance(event, consensus.RoleChanged):
                    self._listener.on_role_changed(event)
                else:
                    applied = True
            if applied:
                changes = state.changes_since(seen)
                seen = changes.last_index
                self._listener.on_changes(changes.changes)

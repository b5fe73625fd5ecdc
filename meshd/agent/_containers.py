"""The agent's Docker side: the :class:`meshd.runtime.RuntimeListener` callbacks.

Containers started with ``meshd.*`` labels (or the seed-002 environment) are
connected through Raft; the PIDs of this host's running containers feed the
desired data plane; a stopped container keeps its endpoints (same IP and MAC
when it starts again), a removed one releases them.  With
``agent.container_labels`` set (several agents sharing one dockerd, as in the
lab) only containers carrying those labels belong to this host.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from meshd import state as st
from meshd._attach import ADDRESS, LABELS
from meshd import wire
from meshd.runtime import ConnectRequest, ContainerInfo, ContainerSpec, DockerError, RuntimeSnapshot, SpecError

from ._backend import has_labels

log = logging.getLogger("meshd.agent")


class ContainerListener:
    """Mixed into :class:`~meshd.agent.Agent` (uses its state, raft, pids and reconcile trigger)."""

    cfg: Any
    name: str
    state: st.NetworkState
    raft: Any
    runtime: Any
    pids: dict[str, int]
    container_names: dict[str, str]
    container_errors: dict[str, dict[str, Any]]

    async def on_resync(self, snapshot: RuntimeSnapshot) -> None:
        self._resync_pending = set(snapshot.running)  # their started calls follow
        self._resync_seen(None)
        for cid in list(self.pids):
            if cid not in snapshot.running and cid in snapshot.existing:
                del self.pids[cid]
        self._reconcile_wake.set()

    async def _is_mine(self, container_id: str) -> bool:
        """With ``agent.container_labels`` set, only containers carrying them belong to this host."""
        if not self.cfg.agent.container_labels or self.runtime is None:
            return True
        try:
            info = await self.runtime.resolve(container_id)
        except DockerError:
            return False
        return has_labels(info.labels, self.cfg.agent.container_labels)

    def _resync_seen(self, container_id: str | None) -> None:
        self._resync_pending.discard(container_id)
        if not self._resync_pending:
            self._runtime_synced.set()

    async def on_container_started(self, spec: ContainerSpec) -> None:
        mine = await self._is_mine(spec.container_id)
        if mine:
            self.pids[spec.container_id] = spec.pid
            self.container_names[spec.container_id] = spec.container_name
        self._resync_seen(spec.container_id)
        if not mine:
            return
        for req in spec.requests:
            if self.state.endpoint(spec.container_id, req.network) is None:
                await self._connect_from_labels(spec, req)
        self._reconcile_wake.set()

    async def _connect_from_labels(self, spec: ContainerSpec, req: ConnectRequest) -> None:
        try:
            result = await self._execute(req.to_connect(self.name))
        except Exception as exc:  # the watcher must go on with the next container
            log.warning("connect from labels failed container=%s network=%s error=%s",
                        spec.container_name, req.network, exc)
            self._attach_failed(spec.container_id, ADDRESS, str(exc), req.network)
            return
        if isinstance(result, st.CommandError):
            log.warning("connect from labels refused container=%s network=%s error=%s",
                        spec.container_name, req.network, result.message)
            self._note("error", f"{spec.container_name}: {result.message}")
            self._attach_failed(spec.container_id, ADDRESS, result.message, req.network)
        else:
            self.container_errors.pop(spec.container_id, None)

    def _attach_failed(self, container_id: str, step: str, error: str, network: str = "") -> None:
        """Remember why a container got no network (``meshd why``)."""
        self.container_errors[container_id] = {"step": step, "network": network, "error": error,
                                               "time": time.time()}

    async def on_container_invalid(self, info: ContainerInfo, error: SpecError) -> None:
        mine = await self._is_mine(info.id)
        if mine:
            self.pids[info.id] = info.pid  # its API-made endpoints still need the PID
            self.container_names[info.id] = info.name
        self._resync_seen(info.id)
        if not mine:
            return
        self._note("error", str(error))  # the SpecError names the container
        self._attach_failed(info.id, LABELS, str(error))

    async def on_container_stopped(self, container_id: str) -> None:
        self.pids.pop(container_id, None)
        self._reconcile_wake.set()

    async def on_container_removed(self, container_id: str) -> None:
        self.pids.pop(container_id, None)
        self.container_names.pop(container_id, None)
        self.container_errors.pop(container_id, None)
        for ep in self.state.endpoints(host=self.name):
            if ep.endpoint_id == container_id:
                try:
                    await self._execute(st.Disconnect(container_id, ep.network))
                except Exception as exc:  # retried at the next resync
                    log.warning("release of removed container failed container=%s error=%s", container_id, exc)

    async def _execute(self, cmd: Any) -> Any:
        """Commit a state command through Raft (from any host) and return its result."""
        return wire.decode(await self.raft.propose(wire.encode(cmd)))

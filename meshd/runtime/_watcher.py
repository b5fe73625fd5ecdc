"""RuntimeWatcher: turns Docker events into calls on the agent (a thin trio task).

Theory of operation
-------------------
The watcher reads :meth:`DockerRuntime.events` and reports; the agent decides.
Only containers the listener :meth:`~RuntimeListener.owns` are reported as
started or invalid (several agents may share one dockerd: another host's
containers are not parsed, warned about or counted as ours).
On every ``CONNECTED`` marker (startup, and after dockerd came back) it
resyncs: one :meth:`RuntimeListener.on_resync` with the ids of all containers
and of the running ones it owns, then ``on_container_started`` (or
``on_container_invalid``) for each of those, so containers started while meshd
(or dockerd) was down are picked up.  Then, per event:

===========  =============================================================
``start``    inspect → :func:`parse_spec` → ``on_container_started(spec)``
             (``spec.requests`` is empty for containers without meshd labels:
             the agent may still own endpoints for them, connected by API)
             or ``on_container_invalid(info, error)`` for bad labels
``die``      ``on_container_stopped(id)``: keep the IP/MAC (seed 002)
``destroy``  ``on_container_removed(id)``: release the IP
``restart``  nothing (``die`` and ``start`` already reported it)
===========  =============================================================

Calls are awaited one at a time, in event order, so a container's stop is
never reported before its start.  ``on_container_started`` can come twice for
one start (once from a resync, once from the event): handle it idempotently.
A :class:`SpecError` never escapes the loop; an exception raised by the
listener does (it is a bug in the agent, not a bad container).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

import trio

from ._docker import DockerRuntime
from ._errors import ContainerNotFound, ContainerNotRunning, DockerError, SpecError
from ._spec import ContainerSpec, parse_spec
from ._types import ContainerInfo, EventKind, RuntimeEvent, RuntimeSnapshot

log = logging.getLogger("meshd.runtime")

#: resync attempts after a CONNECTED marker, and the pause between them
RESYNC_ATTEMPTS = 3
RESYNC_RETRY_S = 0.5


class RuntimeListener(Protocol):
    """What the agent implements to hear about containers (see docs/runtime.md)."""

    def owns(self, info: ContainerInfo) -> bool:
        """Whether this container belongs to the listener's host (others are ignored)."""

    async def on_resync(self, snapshot: RuntimeSnapshot) -> None:
        """All container ids and the running ones; started calls for the running follow."""

    async def on_container_started(self, spec: ContainerSpec) -> None:
        """The container runs with process ``spec.pid`` (a new network namespace)."""

    async def on_container_invalid(self, info: ContainerInfo, error: SpecError) -> None:
        """The container started but its meshd labels/environment are wrong."""

    async def on_container_stopped(self, container_id: str) -> None:
        """The container's process exited; it may start again (same id)."""

    async def on_container_removed(self, container_id: str) -> None:
        """The container is gone for good."""


@dataclass(frozen=True, slots=True)
class WatcherStatus:
    """Counters of a :class:`RuntimeWatcher` (its ``status()``)."""

    resyncs: int
    resync_failures: int
    started: int
    invalid: int
    stopped: int
    removed: int
    vanished: int
    foreign: int  #: started containers of another host (agent.container_labels), ignored
    errors: int
    last_error: str


class RuntimeWatcher:
    """Reports container starts, stops and removals to a :class:`RuntimeListener`.

    Run it in the agent's nursery: ``await nursery.start(watcher.run)``;
    ``started`` is signalled once the event stream is open (dockerd may still be
    down: the watcher connects, and resyncs, as soon as it is up).
    """

    def __init__(self, runtime: DockerRuntime, listener: RuntimeListener) -> None:
        self._runtime = runtime
        self._listener = listener
        self._n = dict.fromkeys((s for s in WatcherStatus.__slots__ if s != "last_error"), 0)
        self._last_error = ""

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with self._runtime.events() as stream:
            task_status.started()
            async for event in stream:
                await self._on_event(event)

    async def _on_event(self, event: RuntimeEvent) -> None:
        kind, cid = event.kind, event.container_id
        if kind is EventKind.CONNECTED:
            await self._resync()
        elif kind is EventKind.STARTED:
            await self._on_started(cid)
        elif kind is EventKind.STOPPED:
            self._n["stopped"] += 1
            log.debug("event=container-stopped id=%s name=%s exit_code=%s", cid[:12], event.name, event.exit_code)
            await self._listener.on_container_stopped(cid)
        elif kind is EventKind.REMOVED:
            self._n["removed"] += 1
            log.debug("event=container-removed id=%s name=%s", cid[:12], event.name)
            await self._listener.on_container_removed(cid)

    async def _resync(self) -> None:
        for attempt in range(RESYNC_ATTEMPTS):
            try:
                snapshot, running = await self._runtime.snapshot()
                break
            except DockerError as exc:
                self._error(str(exc))
                if attempt + 1 < RESYNC_ATTEMPTS:
                    await trio.sleep(RESYNC_RETRY_S)
        else:
            self._n["resync_failures"] += 1  # the stream reconnects (and resyncs) when dockerd is back
            return
        self._n["resyncs"] += 1
        mine = [info for info in running if self._listener.owns(info)]
        log.info("event=runtime-resync containers=%d running=%d here=%d", len(snapshot.existing), len(running),
                 len(mine))
        await self._listener.on_resync(RuntimeSnapshot(snapshot.existing, frozenset(i.id for i in mine)))
        for info in mine:
            await self._report_started(info)

    async def _on_started(self, container_id: str) -> None:
        try:
            info = await self._runtime.resolve(container_id)
        except (ContainerNotFound, ContainerNotRunning):
            self._n["vanished"] += 1  # it died or went away already: its die/destroy event follows
            return
        except DockerError as exc:
            self._error(str(exc))
            return
        if not self._listener.owns(info):
            self._n["foreign"] += 1
            return
        await self._report_started(info)

    async def _report_started(self, info: ContainerInfo) -> None:
        try:
            spec = parse_spec(info)
        except SpecError as err:
            self._n["invalid"] += 1
            log.warning("event=container-invalid id=%s name=%s error=%r", info.id[:12], info.name, str(err))
            await self._listener.on_container_invalid(info, err)
            return
        self._n["started"] += 1
        log.debug("event=container-started id=%s name=%s pid=%d networks=%s",
                  info.id[:12], info.name, info.pid, ",".join(spec.networks) or "-")  # fmt: skip
        await self._listener.on_container_started(spec)

    def _error(self, message: str) -> None:
        self._n["errors"] += 1
        self._last_error = message
        log.warning("event=runtime-error error=%r", message)

    def status(self) -> WatcherStatus:
        return WatcherStatus(**self._n, last_error=self._last_error)

"""Helpers for the Docker integration tests: a container factory and a recording listener."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from meshd.runtime import ContainerInfo, ContainerSpec, RuntimeSnapshot, SpecError
from tools.lab import IMAGE

#: label on every test container, so cleanup finds them even after a crash
TEST_LABEL = "org.meshd.test-runtime"


class Containers:
    """Starts real containers (``--network none``, ``sleep 3600``) with a unique name prefix."""

    def __init__(self, client: Any, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    def name(self, short: str) -> str:
        return f"{self.prefix}-{short}"

    async def run(self, short: str, *, labels: dict[str, str] | None = None,
                  env: dict[str, str] | None = None, start: bool = True) -> Any:  # fmt: skip
        kwargs = dict(
            image=IMAGE, command=["sleep", "3600"], name=self.name(short), network_mode="none",
            labels={TEST_LABEL: self.prefix, **(labels or {})}, environment=env or {},
        )  # fmt: skip
        if start:
            return await trio.to_thread.run_sync(lambda: self.client.containers.run(detach=True, **kwargs))
        return await trio.to_thread.run_sync(lambda: self.client.containers.create(**kwargs))

    async def restart(self, container: Any) -> None:
        await trio.to_thread.run_sync(lambda: container.restart(timeout=0))

    async def remove(self, container: Any) -> None:
        await trio.to_thread.run_sync(lambda: container.remove(force=True))

    def remove_all(self) -> None:
        for c in self.client.containers.list(all=True, filters={"label": f"{TEST_LABEL}={self.prefix}"}):
            c.remove(force=True)


class Recorder:
    """A RuntimeListener that records every call as (method, argument), for the containers of
    one :class:`Containers` (the shared dockerd holds other tests' and labs' containers too)."""

    def __init__(self, containers: Containers) -> None:
        self.prefix = containers.prefix
        self.calls: list[tuple[str, Any]] = []
        self._changed = trio.Event()

    def _add(self, name: str, arg: Any) -> None:
        self.calls.append((name, arg))
        self._changed.set()
        self._changed = trio.Event()

    def owns(self, info: ContainerInfo) -> bool:
        return info.labels.get(TEST_LABEL) == self.prefix

    async def on_resync(self, snapshot: RuntimeSnapshot) -> None:
        self._add("resync", snapshot)

    async def on_container_started(self, spec: ContainerSpec) -> None:
        self._add("started", spec)

    async def on_container_invalid(self, info: ContainerInfo, error: SpecError) -> None:
        self._add("invalid", (info, error))

    async def on_container_stopped(self, container_id: str) -> None:
        self._add("stopped", container_id)

    async def on_container_removed(self, container_id: str) -> None:
        self._add("removed", container_id)

    def about(self, container_id: str) -> list[tuple[str, Any]]:
        """The calls concerning one container, in order."""
        out = []
        for name, arg in self.calls:
            cid = arg if isinstance(arg, str) else getattr(arg, "container_id", None)
            if isinstance(arg, tuple):
                cid = arg[0].id
            if cid == container_id:
                out.append((name, arg))
        return out

    async def wait_for(self, check: Callable[[], bool], timeout_s: float = 20.0) -> None:
        with trio.fail_after(timeout_s):
            while not check():
                await self._changed.wait()

"""Benchmark of the Docker integration (meshd.runtime): prints one JSON line.

    sudo .venv/bin/python -m tools.bench.runtime                  # 50 containers (~30 s)
    sudo .venv/bin/python -m tools.bench.runtime --containers 200

Needs dockerd and the meshd-busybox image (tools/setup.sh).  Starts
``--containers`` labelled containers (``--network none``, ``sleep 3600``, a
unique name prefix, all removed at the end) one after another while a
:class:`RuntimeWatcher` runs, and measures, against dockerd's own event
timestamps (``timeNano``, same host clock):

* ``event_ms`` p50/p99: dockerd stamps ``start`` → the event is in trio
  (HTTP stream, reading thread, hand-off);
* ``started_ms`` p50/p99: dockerd stamps ``start`` → the agent's
  ``on_container_started`` runs (adds inspect and :func:`parse_spec`);
* ``resync_ms``: one resync (list all + inspect running) with all of them up;
* ``parse_per_s``: :func:`parse_spec` of a three-network labelled container (pure).
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from typing import Any

import trio

from meshd.runtime import (
    ContainerInfo,
    ContainerSpec,
    DockerRuntime,
    EventKind,
    RuntimeSnapshot,
    RuntimeWatcher,
    SpecError,
    parse_spec,
)
from tools.lab import IMAGE, ensure_image

BENCH_LABEL = "org.meshd.bench-runtime"


class _Listener:
    def __init__(self) -> None:
        self.started_at: dict[str, int] = {}
        self.resynced = trio.Event()

    def owns(self, info: ContainerInfo) -> bool:
        return BENCH_LABEL in info.labels

    async def on_resync(self, snapshot: RuntimeSnapshot) -> None:
        self.resynced.set()

    async def on_container_started(self, spec: ContainerSpec) -> None:
        self.started_at.setdefault(spec.container_id, time.time_ns())

    async def on_container_invalid(self, info: ContainerInfo, error: SpecError) -> None:
        raise AssertionError(f"bench container rejected: {error}")

    async def on_container_stopped(self, container_id: str) -> None:
        """Not measured: the benchmark times start events only."""

    async def on_container_removed(self, container_id: str) -> None:
        """Not measured: the benchmark times start events only."""


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


async def _record_events(rt: DockerRuntime, stamps: dict[str, tuple[int, int]],
                         task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:  # fmt: skip
    async with rt.events() as stream:
        async for event in stream:
            if event.kind is EventKind.CONNECTED:
                task_status.started()
            elif event.kind is EventKind.STARTED:
                stamps[event.container_id] = (event.time_ns, time.time_ns())


def parse_rate(n: int = 20_000) -> float:
    info = ContainerInfo("c" * 64, "bench", 1, True, labels={
        "meshd.network": "red,blue,green", "meshd.ip.red": "10.1.0.5", "meshd.rate_kbit": "1000",
        "meshd.mac.blue": "02:00:00:00:00:01", "meshd.lab.prefix": "x"})  # fmt: skip
    t0 = time.perf_counter()
    for _ in range(n):
        parse_spec(info)
    return round(n / (time.perf_counter() - t0))


async def run_bench(count: int) -> dict[str, Any]:
    import docker

    client = docker.from_env(timeout=60)
    ensure_image(client)
    prefix = f"mrb-{uuid.uuid4().hex[:8]}"
    listener = _Listener()
    stamps: dict[str, tuple[int, int]] = {}
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(_record_events, DockerRuntime(), stamps)
            watcher_rt = DockerRuntime()
            await nursery.start(RuntimeWatcher(watcher_rt, listener).run)
            await listener.resynced.wait()

            def start(i: int) -> None:
                client.containers.run(
                    IMAGE, ["sleep", "3600"], name=f"{prefix}-{i}", detach=True, network_mode="none",
                    labels={BENCH_LABEL: prefix, "meshd.network": "bench", "meshd.rate_kbit": "1000"})  # fmt: skip

            for i in range(count):
                await trio.to_thread.run_sync(start, i)
            # a listed container always has its Id
            ids = {c.id for c in client.containers.list(filters={"label": f"{BENCH_LABEL}={prefix}"}) if c.id}
            with trio.fail_after(30):
                while not ids <= listener.started_at.keys() or not ids <= stamps.keys():
                    await trio.sleep(0.05)
            t0 = time.perf_counter()
            await watcher_rt.snapshot()
            resync_ms = (time.perf_counter() - t0) * 1000
            nursery.cancel_scope.cancel()
    finally:
        for c in client.containers.list(all=True, filters={"label": f"{BENCH_LABEL}={prefix}"}):
            c.remove(force=True)
        client.close()
    event_ms = [(stamps[i][1] - stamps[i][0]) / 1e6 for i in ids]
    started_ms = [(listener.started_at[i] - stamps[i][0]) / 1e6 for i in ids]
    return {
        "bench": "runtime", "containers": count,
        "event_ms_p50": _pct(event_ms, 0.5), "event_ms_p99": _pct(event_ms, 0.99),
        "started_ms_p50": _pct(started_ms, 0.5), "started_ms_p99": _pct(started_ms, 0.99),
        "resync_ms": round(resync_ms, 1), "parse_per_s": parse_rate(),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--containers", type=int, default=50)
    args = parser.parse_args()
    print(json.dumps(trio.run(run_bench, args.containers)))


if __name__ == "__main__":
    main()

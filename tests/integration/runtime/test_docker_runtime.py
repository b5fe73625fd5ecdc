"""DockerRuntime against the real dockerd: lookups, the event stream, reconnects, clean close."""

from __future__ import annotations

import os
import random
from collections.abc import Callable

import pytest
import trio

from meshd.runtime import (
    ContainerNotFound,
    ContainerNotRunning,
    DockerRuntime,
    DockerUnavailable,
    EventKind,
    EventStream,
    RuntimeEvent,
)
from tests.integration.runtime.docker_proxy import DockerProxy
from tests.integration.runtime.runtime_helpers import Containers

pytestmark = pytest.mark.docker


def netns_of(pid: int | str) -> str:
    return os.readlink(f"/proc/{pid}/ns/net")


async def next_matching(stream: EventStream, match: Callable[[RuntimeEvent], bool], timeout_s: float = 20.0
                        ) -> RuntimeEvent:  # fmt: skip
    with trio.fail_after(timeout_s):
        async for event in stream:
            if match(event):
                return event
    raise AssertionError("event stream ended")


def about(cid: str) -> Callable[[RuntimeEvent], bool]:
    return lambda e: e.container_id == cid


async def test_resolve_by_name_id_and_prefix(containers: Containers) -> None:
    c = await containers.run("web", labels={"meshd.network": "red"}, env={"TYPE": "vlan"})
    rt = DockerRuntime()
    by_name = await rt.resolve(containers.name("web"))
    assert by_name.id == c.id and by_name.name == containers.name("web")
    assert by_name.running and by_name.pid > 0
    assert by_name.labels["meshd.network"] == "red" and by_name.env["TYPE"] == "vlan"
    assert by_name.network_mode == "none"
    assert netns_of(by_name.pid) != netns_of("self")  # a namespace of its own
    assert (await rt.resolve(c.id)).pid == by_name.pid
    assert (await rt.resolve(c.id[:12])).id == c.id
    rt.close()


async def test_resolve_unknown_and_stopped_containers_say_what_to_do(containers: Containers) -> None:
    rt = DockerRuntime()
    ghost = containers.name("ghost")
    with pytest.raises(ContainerNotFound, match=f"container '{ghost}' not found on this host.*docker ps -a"):
        await rt.resolve(ghost)
    await containers.run("idle", start=False)
    idle = containers.name("idle")
    with pytest.raises(ContainerNotRunning, match=f"container {idle} is not running .*start it first"):
        await rt.resolve(idle)
    assert not (await rt.inspect(idle)).running
    rt.close()


async def test_list_running_and_snapshot(containers: Containers) -> None:
    up = await containers.run("up")
    down = await containers.run("down", start=False)
    rt = DockerRuntime()
    running = {i.id: i for i in await rt.list_running()}
    assert up.id in running and running[up.id].pid > 0
    assert down.id not in running
    snap, infos = await rt.snapshot()
    assert {up.id, down.id} <= snap.existing
    assert up.id in snap.running and down.id not in snap.running
    assert {i.id for i in infos} == snap.running
    rt.close()


async def test_events_start_restart_remove(containers: Containers) -> None:
    rt = DockerRuntime()
    async with rt.events() as stream:
        first = await next_matching(stream, lambda e: True)
        assert first.kind is EventKind.CONNECTED
        c = await containers.run("ev", labels={"meshd.network": "red"})
        started = await next_matching(stream, about(c.id))
        assert started.kind is EventKind.STARTED and started.name == containers.name("ev")
        assert started.labels["meshd.network"] == "red"
        await containers.restart(c)
        kinds = [(await next_matching(stream, about(c.id))).kind for _ in range(3)]
        assert kinds == [EventKind.STOPPED, EventKind.STARTED, EventKind.RESTARTED]
        await containers.remove(c)
        removed = await next_matching(stream, lambda e: e.container_id == c.id and e.kind is EventKind.REMOVED)
        assert removed.name == containers.name("ev")
        assert rt.status().connected
    st = rt.status()
    assert not st.connected and st.connects == 1 and st.disconnects == 1  # the reading thread has ended
    rt.close()


async def test_closing_an_idle_stream_ends_its_thread_at_once(docker_available: bool) -> None:
    rt = DockerRuntime()
    with trio.fail_after(5):
        async with rt.events() as stream:
            assert (await next_matching(stream, lambda e: True)).kind is EventKind.CONNECTED
            await trio.sleep(0.2)  # the thread is now blocked reading an idle stream
    assert rt.status().disconnects == 1 and not rt.status().connected


async def test_stream_reconnects_after_dockerd_connection_drops(containers: Containers, tmp_path) -> None:
    proxy = DockerProxy(str(tmp_path / "docker.sock"))
    rt = DockerRuntime(base_url=proxy.url, rng=random.Random(7), backoff_min_s=0.05, backoff_max_s=0.2)
    async with trio.open_nursery() as nursery:
        await nursery.start(proxy.serve)
        async with rt.events() as stream:
            assert (await next_matching(stream, lambda e: True)).kind is EventKind.CONNECTED
            proxy.drop_all()  # what a dockerd restart does to the stream
            # other containers' events may come first (dockerd is shared): wait for the marker
            await next_matching(stream, lambda e: e.kind is EventKind.CONNECTED)
            c = await containers.run("after-drop")
            assert (await next_matching(stream, about(c.id))).kind is EventKind.STARTED
        nursery.cancel_scope.cancel()
    st = rt.status()
    assert st.connects == 2 and st.disconnects == 2


async def test_stream_waits_for_an_unreachable_dockerd(docker_available: bool, tmp_path) -> None:
    proxy = DockerProxy(str(tmp_path / "docker.sock"))
    rt = DockerRuntime(base_url=proxy.url, rng=random.Random(3), backoff_min_s=0.05, backoff_max_s=0.2)
    with pytest.raises(DockerUnavailable, match="dockerd is not reachable at unix://.*start it"):
        await rt.resolve("anything")
    async with rt.events() as stream, trio.open_nursery() as nursery:
        with trio.fail_after(10):
            while rt.status().connect_failures < 2:
                await trio.sleep(0.05)
        await nursery.start(proxy.serve)  # dockerd "comes back"
        assert (await next_matching(stream, lambda e: True)).kind is EventKind.CONNECTED
        assert await rt.ping()
        nursery.cancel_scope.cancel()
    assert "not reachable" in rt.status().last_error


async def test_calls_recover_when_dockerd_comes_back(containers: Containers, tmp_path) -> None:
    c = await containers.run("probe")
    path = str(tmp_path / "docker.sock")
    rt = DockerRuntime(base_url=f"unix://{path}")
    for round_ in range(2):
        async with trio.open_nursery() as nursery:
            await nursery.start(DockerProxy(path).serve)
            assert (await rt.resolve(containers.name("probe"))).id == c.id, round_
            nursery.cancel_scope.cancel()  # dockerd "goes away": connections cut, socket removed
        with pytest.raises(DockerUnavailable, match="not reachable"):
            await rt.resolve(c.id)
    assert rt.status().call_errors == 2
    rt.close()

"""RuntimeWatcher against the real dockerd: what the agent hears when containers start, restart, go."""

from __future__ import annotations

import os

import pytest
import trio

from meshd.runtime import ContainerSpec, DockerRuntime, RuntimeWatcher, Source, SpecError
from tests.integration.runtime.runtime_helpers import Containers, Recorder

pytestmark = pytest.mark.docker


def netns_of(pid: int | str) -> str:
    return os.readlink(f"/proc/{pid}/ns/net")


def names(calls: list[tuple[str, object]]) -> list[str]:
    return [name for name, _ in calls]


async def start_watcher(nursery: trio.Nursery, rec: Recorder) -> RuntimeWatcher:
    watcher = RuntimeWatcher(DockerRuntime(), rec)
    await nursery.start(watcher.run)
    await rec.wait_for(lambda: "resync" in names(rec.calls))
    return watcher


async def test_labelled_container_started_restarted_removed(containers: Containers, nursery: trio.Nursery) -> None:
    rec = Recorder(containers)
    watcher = await start_watcher(nursery, rec)
    labels = {"meshd.network": "red", "meshd.ip": "10.1.0.5", "meshd.mac": "02:6D:0A:01:00:05",
              "meshd.rate_kbit": "2000", "meshd.latency_ms": "20"}  # fmt: skip
    c = await containers.run("web", labels=labels)
    await rec.wait_for(lambda: names(rec.about(c.id)) == ["started"])
    spec = rec.about(c.id)[0][1]
    assert isinstance(spec, ContainerSpec) and spec.source is Source.LABELS
    (req,) = spec.requests
    assert (req.container_id, req.container_name, req.network) == (c.id, containers.name("web"), "red")
    assert (req.ip, req.mac) == ("10.1.0.5", "02:6d:0a:01:00:05")
    assert (req.rate_kbit, req.burst_bytes, req.latency_ms) == (2000, 32768, 20)
    assert req.pid == spec.pid > 0 and netns_of(req.pid) != netns_of("self")

    await containers.restart(c)
    await rec.wait_for(lambda: names(rec.about(c.id)) == ["started", "stopped", "started"])
    again = rec.about(c.id)[2][1]
    assert again.container_id == c.id and again.requests[0].ip == "10.1.0.5"
    # a new process in a new namespace (the kernel may reuse the old namespace's inode number,
    # so only the PID and the event tell the agent that it must attach again)
    assert again.pid != spec.pid and netns_of(again.pid) != netns_of("self")

    await containers.remove(c)
    await rec.wait_for(lambda: names(rec.about(c.id))[-1:] == ["removed"])
    assert names(rec.about(c.id)) == ["started", "stopped", "started", "stopped", "removed"]
    st = watcher.status()
    assert st.started >= 2 and st.stopped >= 2 and st.removed >= 1 and st.invalid == 0


async def test_resync_picks_up_containers_started_before_the_watcher(
    containers: Containers, nursery: trio.Nursery
) -> None:
    early = await containers.run("early", labels={"meshd.network": "red,blue", "meshd.ip.blue": "10.2.0.9"})
    stopped = await containers.run("stopped", start=False)
    rec = Recorder(containers)
    await start_watcher(nursery, rec)
    (resync,) = [arg for name, arg in rec.calls if name == "resync"]
    assert early.id in resync.running and early.id in resync.existing
    assert stopped.id in resync.existing and stopped.id not in resync.running
    await rec.wait_for(lambda: names(rec.about(early.id)) == ["started"])
    spec = rec.about(early.id)[0][1]
    assert [(r.network, r.ip) for r in spec.requests] == [("red", None), ("blue", "10.2.0.9")]


async def test_seed_002_environment_container(containers: Containers, nursery: trio.Nursery) -> None:
    rec = Recorder(containers)
    await start_watcher(nursery, rec)
    env = {"TYPE": "vlan", "VLAN": "test1", "IP": "10.10.10.3/24", "GW": "10.10.10.1",
           "RATE": "500", "BRUST": "4096", "LATENCY": "70"}  # fmt: skip
    c = await containers.run("seed", env=env)
    await rec.wait_for(lambda: names(rec.about(c.id)) == ["started"])
    (req,) = rec.about(c.id)[0][1].requests
    assert req.source is Source.ENV and req.seed_type == "vlan" and req.network == "test1"
    assert (req.ip, req.prefix_len, req.gateway) == ("10.10.10.3", 24, "10.10.10.1")
    assert (req.rate_kbit, req.burst_bytes, req.latency_ms) == (500, 4096, 70)


async def test_bad_label_is_reported_and_the_watcher_goes_on(containers: Containers, nursery: trio.Nursery) -> None:
    rec = Recorder(containers)
    watcher = await start_watcher(nursery, rec)
    bad = await containers.run("bad", labels={"meshd.network": "red", "meshd.rate_kbit": "fast"})
    plain = await containers.run("plain")
    await rec.wait_for(lambda: names(rec.about(bad.id)) == ["invalid"] and names(rec.about(plain.id)) == ["started"])
    info, error = rec.about(bad.id)[0][1]
    assert isinstance(error, SpecError) and info.pid > 0
    assert (error.container, error.key, error.value) == (f"{containers.name('bad')} ({bad.id[:12]})",
                                                         "meshd.rate_kbit", "fast")  # fmt: skip
    assert "whole number of kbit/s" in str(error) and "meshd.rate_kbit=500" in str(error)
    assert not rec.about(plain.id)[0][1].managed  # reported anyway: the agent may own API endpoints for it
    assert watcher.status().invalid == 1


async def test_another_hosts_containers_are_not_parsed_or_counted(
        containers: Containers, nursery: trio.Nursery) -> None:
    """Several agents share one dockerd: a container the listener does not own is ignored, even a malformed one."""

    class HostH1(Recorder):
        def owns(self, info) -> bool:
            return super().owns(info) and info.labels.get("meshd.lab.host") == "h1"

    rec = HostH1(containers)
    watcher = await start_watcher(nursery, rec)
    theirs = await containers.run("theirs", labels={"meshd.lab.host": "h2", "meshd.rate_kbit": "fast"})
    mine = await containers.run("mine", labels={"meshd.lab.host": "h1", "meshd.network": "red"})
    await rec.wait_for(lambda: names(rec.about(mine.id)) == ["started"])
    with trio.fail_after(10):
        while watcher.status().foreign < 1:
            await trio.sleep(0.05)
    assert rec.about(theirs.id) == [] and watcher.status().invalid == 0

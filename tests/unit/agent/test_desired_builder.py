"""DesiredBuilder folds changes into the last desired state; the result must equal a full build."""

from __future__ import annotations

import random

import pytest

from meshd import state as st
from meshd.agent._translate import DesiredBuilder, host_desired

HOSTS = ("h1", "h2", "h3")


class World:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.state = st.NetworkState()
        self.index = 0
        self.pids: dict[str, int] = {}
        self.changed: set[str] = set()
        self.live = {"h1": "192.0.2.1", "h2": "192.0.2.2", "h3": "192.0.2.3"}
        self.now = 0.0
        for name, subnet in (("a", "10.1.0.0/24"), ("b", "10.2.0.0/24")):
            self.apply(st.CreateNetwork(name=name, tenant="t", subnet=subnet))

    def apply(self, command: object) -> None:
        self.index += 1
        self.state.apply(self.index, st.encode_command(command))

    def step(self) -> None:
        r, rng = self.rng.random(), self.rng
        cid = f"c{rng.randrange(40)}"
        if r < 0.35:
            self.apply(st.Connect(endpoint_id=cid, network=rng.choice("ab"), host=rng.choice(HOSTS)))
        elif r < 0.5:
            self.apply(st.Disconnect(endpoint_id=cid, network=rng.choice("ab")))
        elif r < 0.6:
            self.apply(st.SetQos(endpoint_id=cid, network=rng.choice("ab"),
                                 qos=st.qos_with_defaults(rng.choice((100, 2000)), None, None)))
        elif r < 0.75:
            self.pids[cid] = rng.randrange(2, 10_000)
            self.changed.add(cid)
        elif r < 0.85:
            self.pids.pop(cid, None)
            self.changed.add(cid)
        elif r < 0.88:
            self.apply(st.CreateNetwork(name=f"n{self.index}", tenant=rng.choice("tu"),
                                        subnet=f"10.9.{self.index % 250}.0/24"))
        elif r < 0.91:
            name = rng.choice(HOSTS[1:])
            if name in self.live:
                del self.live[name]
            else:
                self.live[name] = f"192.0.2.{HOSTS.index(name) + 1}"
        elif r < 0.94:
            self.apply(st.PublishService(name="web", network="a", endpoint_id=cid, port=80))
        else:
            self.now += self.rng.choice((0.1, 0.6, 1.5))


@pytest.mark.parametrize("seed", range(25))
def test_folded_builds_equal_full_builds(seed: int) -> None:
    world, builder = World(seed), DesiredBuilder(full_every_s=1.0)
    for _ in range(300):
        world.step()
        kw = {"host": "h1", "state": world.state, "live_vteps": dict(world.live), "pids": dict(world.pids),
              "underlay_ip": "192.0.2.1", "underlay_dev": "eth0", "underlay_mtu": 1500}
        got = builder.build(now=world.now, containers_changed=frozenset(world.changed), **kw)
        world.changed.clear()
        assert got == host_desired(**kw)
    assert builder.builds["folded"] > builder.builds["full"] / 2  # the fold is exercised, not bypassed


def test_an_attach_is_folded_and_unknown_container_changes_rebuild() -> None:
    world, builder = World(1), DesiredBuilder(full_every_s=60.0)
    kw = {"host": "h1", "state": world.state, "live_vteps": world.live, "underlay_ip": "192.0.2.1",
          "underlay_dev": "eth0", "underlay_mtu": 1500}
    world.apply(st.Connect(endpoint_id="first", network="a", host="h1"))
    builder.build(now=0.0, containers_changed=None, pids={"first": 5}, **kw)
    for n in range(20):
        world.apply(st.Connect(endpoint_id=f"x{n}", network="a", host="h1"))
        pids = {"first": 5, **{f"x{i}": 10 + i for i in range(n + 1)}}
        got = builder.build(now=1.0, containers_changed=frozenset({f"x{n}"}), pids=pids, **kw)
        assert got == host_desired(pids=pids, **kw)
    assert builder.builds == {"full": 1, "folded": 20}
    builder.build(now=1.0, containers_changed=None, pids=pids, **kw)
    assert builder.builds["full"] == 2

"""Restarting an agent keeps its host's containers on the network (SIGTERM and kill -9, leader included).

A host is not its agent: while an agent is down its host's kernel keeps forwarding, the other hosts
see the host as "agent-down" (its VTEP answers an ICMP probe) and keep its FDB and neighbour entries.
Continuous pings between containers, to and from the restarted host's containers, lose nothing.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from meshd.api import MsgType
from tests.e2e.conftest import container_addr


class Pinger:
    """``ping -i 0.2`` from a container until stopped; counts what was sent and answered."""

    def __init__(self, container, ip: str) -> None:
        self.container, self.ip = container, ip
        self.proc = subprocess.Popen(["docker", "exec", container.id, "ping", "-i", "0.2", ip],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def stop(self) -> tuple[int, list[int], str]:
        """(sent, the sequence numbers lost, output) after SIGINT to the ping inside the container.

        Lost means unanswered while a later request was answered: the last request, sent just
        before the SIGINT, may still be in flight when ping prints its statistics (under CI load
        it was), and that is no loss of the network's."""
        subprocess.run(["docker", "exec", self.container.id, "killall", "-INT", "ping"], capture_output=True)
        out, _ = self.proc.communicate(timeout=20)
        m = re.search(r"(\d+) packets transmitted, (\d+) packets received", out)
        assert m, f"ping {self.container.name} -> {self.ip} printed no statistics: {out[-500:]}"
        answered = {int(s) for s in re.findall(r"seq=(\d+)", out)}
        lost = sorted(set(range(max(answered, default=-1) + 1)) - answered)
        if not answered:
            lost = list(range(int(m.group(1))))
        return int(m.group(1)), lost, out


@contextmanager
def pinging(pairs) -> Iterator[list[Pinger]]:
    pingers = [Pinger(c, ip) for c, ip in pairs]
    try:
        yield pingers
    finally:
        for p in pingers:
            if p.proc.poll() is None:
                p.proc.kill()


def _leader(cluster, asked: str) -> str:
    return cluster.wait("a Raft leader", lambda: cluster.query(asked, MsgType.QUERY_STATUS)["raft"]["leader"])


def _one_container_per_host(lab, cluster) -> tuple[dict, dict[str, str]]:
    """A network blue and one container on it per host, each connected through its own host's API
    and up in its namespace: ({host: container}, {host: its address})."""
    cluster.query("h1", MsgType.NETWORK_CREATE, name="blue", subnet="10.1.0.0/24")
    boxes = {h: lab.container(h, f"c{h[-1]}") for h in ("h1", "h2", "h3")}
    ips = {}
    for h, box in boxes.items():
        with cluster.scheduler(h) as api:
            ips[h] = api.request(MsgType.ENDPOINT_CONNECT, container_id=box.id, network="blue", host=h)["ip"]
        cluster.wait(f"{box.name} up",
                     lambda box=box, h=h: (a := container_addr(box.id)) and a[0].startswith(ips[h] + "/"))
    return boxes, ips


def _down_then_back(cluster, host: str, how: str, observer: str) -> None:
    """Stop ``host``'s agent (``stop``: SIGTERM, ``kill``: SIGKILL), wait until ``observer`` sees it
    agent-down (gossip declared it dead, its data plane answers), then start it again."""
    (cluster.stop if how == "stop" else cluster.kill)(host)
    cluster.wait(f"{observer} sees {host}'s agent down", lambda: cluster.members(observer).get(host) == "agent-down",
                 timeout_s=30)
    cluster.start(host)
    cluster.wait(f"{host} alive again", lambda: cluster.members(observer).get(host) == "alive", timeout_s=30)


def test_sigterm_and_kill9_restarts_leader_included_lose_no_ping(make_cluster):
    lab, cluster = make_cluster(hosts=3)
    boxes, ips = _one_container_per_host(lab, cluster)
    leader = _leader(cluster, "h1")
    follower = next(h for h in ("h2", "h3") if h != leader)
    third = next(h for h in ("h1", "h2", "h3") if h not in (leader, follower))
    pairs = [(boxes[third], ips[leader]), (boxes[leader], ips[follower]), (boxes[follower], ips[third]),
             (boxes[third], ips[follower])]
    with pinging(pairs) as pingers:
        _down_then_back(cluster, follower, "stop", observer=third)     # systemctl restart of a follower
        _down_then_back(cluster, leader, "kill", observer=third)       # kill -9 of the leader
        new_leader = _leader(cluster, third)
        observer = next(h for h in ("h1", "h2", "h3") if h != new_leader)
        _down_then_back(cluster, new_leader, "stop", observer=observer)  # systemctl restart of the new leader
        results = [p.stop() for p in pingers]
    for (box, ip), (sent, lost, out) in zip(pairs, results, strict=True):
        assert sent > 20 and not lost, f"{box.name} -> {ip}: {len(lost)} of {sent} pings lost (seq {lost})\n{out}"
    for h in ("h1", "h2", "h3"):
        assert set(cluster.members(h).values()) == {"alive"}, cluster.members(h)


DEAD_S = 60.0


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["local", "lan"])
def test_an_agent_dead_for_a_minute_then_restarted_loses_no_ping(make_cluster, profile):
    """Issue 13 item 1's goal: while one agent is dead for 60 s, and when it comes back, pings
    between containers (to, from and past its host) lose nothing, in both timing profiles."""
    lab, cluster = make_cluster(hosts=3, profile=profile)
    boxes, ips = _one_container_per_host(lab, cluster)
    dead, observer = "h3", "h1"
    pairs = [(boxes["h1"], ips["h3"]), (boxes["h3"], ips["h2"]), (boxes["h2"], ips["h1"])]
    with pinging(pairs) as pingers:
        time.sleep(2)
        killed = time.monotonic()
        cluster.kill(dead)
        cluster.wait(f"{observer} sees {dead}'s agent down",
                     lambda: cluster.members(observer).get(dead) == "agent-down", timeout_s=DEAD_S)
        time.sleep(max(0.0, DEAD_S - (time.monotonic() - killed)))
        started = time.monotonic()
        cluster.start(dead)
        cluster.wait(f"{dead} alive again", lambda: cluster.members(observer).get(dead) == "alive", timeout_s=60,
                     interval_s=0.05)
        print(f"{profile}: {dead} alive in {observer}'s view {time.monotonic() - started:.2f} s after its agent "
              f"was started (process start included), dead for {started - killed:.1f} s")
        time.sleep(3)
        results = [p.stop() for p in pingers]
    for (box, ip), (sent, lost, out) in zip(pairs, results, strict=True):
        assert sent >= DEAD_S / 0.2 and not lost, \
            f"{profile}: {box.name} -> {ip}: {len(lost)} of {sent} pings lost (seq {lost}, killed at seq ~10)\n" \
            f"{out[-2000:]}"

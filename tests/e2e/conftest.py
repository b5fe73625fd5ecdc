"""E2E fixtures: real `meshd agent` processes in lab hosts, real Docker containers.

Everything is torn down at the end (agents stopped, lab down), also on failure.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshd.api import MsgType
from tools.cluster import Cluster
from tools.lab import Lab, unique_prefix

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every e2e test needs root and dockerd (a ``pytestmark`` in a conftest is ignored by pytest)."""
    for item in items:
        if item.path.is_relative_to(_HERE):
            item.add_marker(pytest.mark.root)
            item.add_marker(pytest.mark.docker)


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator:
    """Factory: ``make_cluster(hosts=3, started=3, profile="local")`` -> (lab, cluster) with h1
    bootstrapped and the others joined through it; everything is removed after the test."""
    made: list[tuple[Lab, Cluster]] = []

    def make(hosts: int = 3, started: int | None = None, extra_args: tuple[str, ...] = (),
             profile: str = "local") -> tuple[Lab, Cluster]:
        lab = Lab(unique_prefix())
        cluster = None
        try:
            lab.up(hosts)
            cluster = Cluster(lab, tmp_path / lab.prefix, profile=profile, extra_args=extra_args)
            made.append((lab, cluster))
            started = hosts if started is None else started
            if started:
                cluster.start("h1")
                cluster.wait("h1 leads", lambda: cluster.query("h1", MsgType.QUERY_STATUS)["raft"]["role"] == "leader",
                             timeout_s=60)
            for i in range(2, started + 1):
                cluster.start(f"h{i}", join=["192.0.2.11"])
            if started:
                cluster.wait_members("h1", started, timeout_s=60)
        except BaseException:
            if cluster is not None:
                cluster.down()
            lab.down()
            raise
        return lab, cluster

    yield make
    for lab, cluster in made:
        try:
            cluster.down()
        finally:
            lab.down()


def ping(container_id: str, ip: str, count: int = 2) -> bool:
    """True when ``ip`` answers from inside the container."""
    r = subprocess.run(["docker", "exec", container_id, "ping", "-c", str(count), "-W", "1", ip],
                       capture_output=True, text=True, timeout=30)
    return r.returncode == 0


def container_addr(container_id: str, ifname: str = "eth0") -> tuple[str, str] | None:
    """(ip/prefix, mac) of ``ifname`` inside the container, or None."""
    r = subprocess.run(["docker", "exec", container_id, "ip", "-o", "addr", "show", ifname],
                       capture_output=True, text=True, timeout=30)
    if r.returncode:
        return None
    ip = next((w2 for w1, w2 in zip(r.stdout.split(), r.stdout.split()[1:], strict=False) if w1 == "inet"), None)
    link = subprocess.run(["docker", "exec", container_id, "cat", f"/sys/class/net/{ifname}/address"],
                          capture_output=True, text=True, timeout=30)
    return (ip, link.stdout.strip()) if ip else None

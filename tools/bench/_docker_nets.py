"""Docker networks the benchmarks compare meshd with, and their removal.

Everything a benchmark makes carries its lab prefix: containers the label
``meshd.bench=<prefix>``, networks ``<prefix>-...`` names, and the macvlan
parent the links ``<prefix>-mv0`` / ``<prefix>-mv1``.
"""

from __future__ import annotations

import subprocess
from typing import Any

BENCH_LABEL = "meshd.bench"


def macvlan_parent(prefix: str) -> str:
    return f"{prefix}-mv0"


def macvlan_network(cli: Any, prefix: str, subnet: str) -> str:
    """A Docker macvlan network (bridge mode) named ``<prefix>-macvlan``; returns its name.

    This kernel has no ``dummy`` link type, so the parent is one end of a
    veth pair whose other end stays unconnected (no traffic leaves the host).
    """
    import docker

    parent, peer = macvlan_parent(prefix), f"{prefix}-mv1"
    subprocess.run(["ip", "link", "add", parent, "type", "veth", "peer", "name", peer], check=True)
    for dev in (parent, peer):
        subprocess.run(["ip", "link", "set", dev, "up"], check=True)
    name = f"{prefix}-macvlan"
    ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet)])
    cli.networks.create(name, driver="macvlan", ipam=ipam, labels={BENCH_LABEL: prefix},
                        options={"parent": parent, "macvlan_mode": "bridge"})
    return name


def remove_leftovers(cli: Any, prefix: str, networks: tuple[str, ...]) -> None:
    """Containers labelled for ``prefix``, the named networks, and the macvlan parent link."""
    for c in cli.containers.list(all=True, filters={"label": f"{BENCH_LABEL}={prefix}"}):
        c.remove(force=True)
    for n in cli.networks.list(names=list(networks)):
        if n.name in networks:  # the name filter matches substrings
            n.remove()
    subprocess.run(["ip", "link", "del", macvlan_parent(prefix)], capture_output=True)

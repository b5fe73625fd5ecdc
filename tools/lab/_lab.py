"""The Lab: many meshd hosts on one machine.

    with Lab("mlab") as lab:          # `down()` on exit, also on error
        h1, h2, h3 = lab.up(3)
        lab.exec(h1, "ping", "-c1", h2.underlay_ip)
        c = lab.container(h1, "web")  # real Docker container, --network none
        lab.cut(h2); lab.heal(h2)

Every object carries the prefix (netns `<prefix>-ul`, `<prefix>-h<i>`, nft
table `<prefix>` inside `<prefix>-ul`, containers labelled
`meshd.lab.prefix=<prefix>` and named `<prefix>-h<i>-<name>`), and is found
again by it, so `down()` works from a fresh process after a crash.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from tools.lab import _dhcp, _docker, _net, _nft
from tools.lab._docker import Container
from tools.lab._net import LabHost
from tools.lab._sh import LabError, require_tool, run

DEFAULT_PREFIX = "mlab"
PREFIX_RE = re.compile(r"[a-z][a-z0-9]{0,11}")
DEFAULT_EXEC_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class HostStatus:
    name: str
    netns: str
    addresses: tuple[str, ...]
    link_up: bool
    cut: bool  # cut from everyone
    cut_to: tuple[str, ...] = ()  # hosts this one's frames to are dropped (pairwise cuts)


@dataclass(frozen=True, slots=True)
class LabStatus:
    """What exists now for one prefix (read from the kernel and dockerd)."""

    prefix: str
    underlay: bool  # the underlay netns exists
    hosts: tuple[HostStatus, ...]
    containers: tuple[Container, ...]
    docker_error: str = ""  # why containers could not be listed, if so


@dataclass(frozen=True, slots=True)
class DownReport:
    removed_netns: tuple[str, ...]
    removed_containers: int
    docker_error: str = ""


def unique_prefix(first: str = "t") -> str:
    """A random lab prefix (e.g. for one test), unlikely to collide with any other."""
    return check_prefix(first + uuid.uuid4().hex[:9])


def check_prefix(prefix: str) -> str:
    if not PREFIX_RE.fullmatch(prefix):
        raise LabError(
            f"lab prefix {prefix!r} is invalid: use 1-12 lowercase letters/digits starting with a letter (e.g. mlab)"
        )
    return prefix


def require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, nftables): run it as root, e.g. with sudo")
    require_tool("ip", "iproute2")
    require_tool("nft", "nftables")


class Lab:
    """A set of host network namespaces on one underlay bridge, found by prefix."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        self.prefix = check_prefix(prefix)

    def __repr__(self) -> str:
        return f"Lab(prefix={self.prefix!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    def up(self, hosts: int) -> list[LabHost]:
        """Make sure the underlay and hosts h1..h<hosts> exist (idempotent).

        Hosts beyond `hosts` that exist already are left alone.

        Returns:
            The hosts h1..h<hosts>, in order.
        Raises:
            LabError: not root, tools missing, or a kernel step failed.
        """
        if not 1 <= hosts <= _net.MAX_HOSTS:
            raise LabError(f"--hosts {hosts} out of range: use 1..{_net.MAX_HOSTS}")
        require_root()
        _net.ensure_underlay(self.prefix)
        _nft.ensure_table(self.prefix)
        return [_net.ensure_host(self.prefix, i) for i in range(1, hosts + 1)]

    def hosts(self) -> list[LabHost]:
        """The hosts that exist now, in index order."""
        return _net.discover_hosts(self.prefix)

    def host(self, host: LabHost | str) -> LabHost:
        """Resolve `h1`, `<prefix>-h1` or a LabHost to an existing LabHost."""
        name = host.name if isinstance(host, LabHost) else host
        if name.startswith(f"{self.prefix}-"):
            name = name[len(self.prefix) + 1 :]
        wanted = _net.make_host(self.prefix, _net.host_index(name))
        if wanted.netns not in _net.list_netns():
            raise LabError(f"lab host {wanted.netns} does not exist: create it with `python -m tools.lab up`")
        return wanted

    def exec(
        self, host: LabHost | str, *argv: str, check: bool = True, timeout: float = DEFAULT_EXEC_TIMEOUT_S
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside a host's netns and capture its output.

        Raises:
            LabError: unknown host, timeout, or (with check) a non-zero exit.
        """
        if not argv:
            raise LabError("lab exec needs a command: e.g. lab.exec('h1', 'ip', 'addr')")
        h = self.host(host)
        return run(["ip", "netns", "exec", h.netns, *argv], check=check, timeout_s=timeout, what=f"lab host {h.netns}")

    def exec_argv(self, host: LabHost | str, *argv: str) -> list[str]:
        """The argv that runs a command in a host (for Popen of long-running daemons)."""
        return ["ip", "netns", "exec", self.host(host).netns, *argv]

    def popen(self, host: LabHost | str, *argv: str, **kwargs: Any) -> subprocess.Popen:
        """Start a long-running command (e.g. a meshd daemon) in a host; `down()` stops it."""
        return subprocess.Popen(self.exec_argv(host, *argv), **kwargs)

    def container(self, host: LabHost | str, name: str) -> Container:
        """Start (or return the running) Docker container `name` on `host`."""
        if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,40}", name):
            raise LabError(f"container name {name!r} is invalid: use letters, digits, '_', '.', '-'")
        h = self.host(host)
        return _docker.start_container(self.prefix, h.name, name)

    def containers(self) -> list[Container]:
        return _docker.list_containers(self.prefix)

    def dhcp_server(self, workdir: Path, *, subnet: str = "10.78.0.0/24", lease_s: int = 120,
                    first: int = 100, last: int = 199) -> _dhcp.DhcpServer:
        """Start dnsmasq on the lab's LAN (the underlay bridge) serving ``subnet``; `down()` stops it.

        See :mod:`tools.lab._dhcp` (the server is offset 2 of the subnet, the router it names offset 1,
        the leases offsets ``first``..``last``; lease file and log under ``workdir``).
        """
        return _dhcp.start(self.prefix, workdir, subnet=subnet, lease_s=lease_s, first=first, last=last)

    def cut(self, host: LabHost | str, peer: LabHost | str | None = None, *, oneway: bool = False) -> None:
        """Partition at the underlay switch (idempotent).

        Args:
            host: the host to cut.
            peer: None cuts `host` from everyone (all frames, ARP included);
                a peer cuts only traffic between the two (ARP still passes).
            oneway: with a peer, drop only frames from `host` to `peer`.
        """
        if oneway and peer is None:
            raise LabError("a one-way cut needs a peer: e.g. lab.cut('h1', 'h2', oneway=True)")
        _nft.cut(self.prefix, self.host(host).name, self.host(peer).name if peer else None, oneway)

    def heal(self, host: LabHost | str, peer: LabHost | str | None = None) -> None:
        """Undo `cut`: all cuts of `host`, or only those between `host` and `peer` (no-op if none)."""
        _nft.heal(self.prefix, self.host(host).name, self.host(peer).name if peer else None)

    def status(self) -> LabStatus:
        underlay = _net.underlay_ns(self.prefix) in _net.list_netns()
        table = underlay and _nft.table_exists(self.prefix)
        cut = _nft.cut_ports(self.prefix) if table else set()
        pairs = _nft.cut_pairs(self.prefix) if table else set()
        hosts = tuple(
            HostStatus(
                h.name,
                h.netns,
                tuple(_net.host_addresses(h.netns)),
                _net.host_is_up(h.netns),
                h.name in cut,
                tuple(sorted((b for a, b in pairs if a == h.name), key=_net.host_index)),
            )
            for h in self.hosts()
        )
        try:
            containers, err = tuple(self.containers()), ""
        except LabError as exc:
            containers, err = (), str(exc)
        return LabStatus(self.prefix, underlay, hosts, containers, err)

    def down(self) -> DownReport:
        """Remove everything with this prefix: containers, processes, netns, links.

        Works without any state from `up` (after a crash, from another process).
        """
        try:
            removed, err = _docker.remove_containers(self.prefix), ""
        except LabError as exc:
            removed, err = 0, str(exc)
        if _net.owned_netns(self.prefix) or _net.root_links(self.prefix):
            require_root()
        gone = _net.delete_all(self.prefix)
        _delete_root_table(self.prefix)
        return DownReport(tuple(gone), removed, err)


def lab_prefixes() -> list[str]:
    """Prefixes of every lab on this machine: by underlay netns and by container label."""
    found = set(_net.lab_prefixes())
    if _docker.docker_available():
        found |= _docker.lab_prefixes()
    return sorted(found)


def _delete_root_table(prefix: str) -> None:
    """Remove a `bridge <prefix>` table from the root netns, should one exist there."""
    if os.geteuid() == 0 and run(["nft", "list", "table", "bridge", prefix], check=False).returncode == 0:
        run(["nft", "delete", "table", "bridge", prefix], what=f"nft table bridge {prefix}")

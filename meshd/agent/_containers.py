"""This host's containers: which run here and with which PID, and what Docker tells about them.

* :class:`LocalContainers` is the one owner of ``{container id: PID}`` for the
  containers running on this host (Docker's, and those given by PID through
  the API), of the network namespaces given by path (the CNI plugin, the
  Docker network driver, a connect with ``netns``: kept in
  ``<run_dir>/netns.json`` so they survive a restart) and the interface names
  asked for there, of their names, and of why a container got no network
  before a reconcile pass could try (``meshd why``); it knows when Docker's
  list has been read once after a start (the first reconcile pass waits for it).
* :class:`DockerListener` is the :class:`meshd.runtime.RuntimeListener` of the
  agent: containers started with ``meshd.*`` labels (or the seed-002
  environment) are connected through the :class:`~meshd.agent._commit.Committer`;
  a stopped container keeps its endpoints (same IP and MAC when it starts
  again), a removed one releases them. With ``agent.container_labels`` set
  (several agents sharing one dockerd, as in the lab) only containers carrying
  those labels belong to this host; the others are not even looked at.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

import trio

from meshd import state as st
from meshd._attach import ADDRESS, LABELS
from meshd.api import Unavailable
from meshd.runtime import ConnectRequest, ContainerInfo, ContainerSpec, RuntimeSnapshot, SpecError

from ._commit import Committer
from ._dataplane import mode_refusal
from ._dhcp import DhcpLeases, LeaseRefused
from ._dns import publish_from_spec
from ._events import Events
from ._replica import Replica

#: how many container changes :meth:`LocalContainers.changed_since` can reach back
_LOG_LENGTH = 4096

log = logging.getLogger("meshd.agent")


def has_labels(labels: Mapping[str, str], wanted: tuple[str, ...]) -> bool:
    """True when ``labels`` carries every ``key=value`` of ``wanted``."""
    return all(labels.get(k) == v for k, _, v in (w.partition("=") for w in wanted))


class LocalContainers:
    """The containers running on this host and their PIDs; see the module docstring.

    Args:
        labels: ``key=value`` labels a Docker container must carry to belong to
            this host (``agent.container_labels``; empty: all do).
        docker: whether Docker is watched (else :meth:`wait_listed` returns at once).
    """

    def __init__(self, *, labels: tuple[str, ...] = (), docker: bool = True, netns_file: str | None = None) -> None:
        self.labels = labels
        self._pids: dict[str, int] = {}
        #: {endpoint id: netns path} of containers attached by path, and {endpoint id: {network: ifname or ""}}
        self._netns: dict[str, str] = {}
        self._ifnames: dict[str, dict[str, str]] = {}
        self._netns_file = netns_file
        #: bumped on every change of a PID, netns path or interface name; ``_log`` names the container
        self.version = 0
        self._log: collections.deque[tuple[int, str]] = collections.deque(maxlen=_LOG_LENGTH)
        if netns_file is not None:
            self._load(netns_file)
        #: Docker's names of this host's containers
        self.names: dict[str, str] = {}
        #: why a container got no network before a pass tried: {"step", "network", "error", "time"}
        self.errors: dict[str, dict[str, Any]] = {}
        self._listed = trio.Event()
        self._unlisted: set[str | None] = {None}  # None: Docker's list not read yet
        if not docker:
            self._listed.set()

    @property
    def pids(self) -> Mapping[str, int]:
        """``{container id: PID}`` of the containers running here (read only)."""
        return MappingProxyType(self._pids)

    @property
    def netns(self) -> dict[str, str]:
        """``{endpoint id: netns path}`` of every container running here: Docker's and those given
        by PID (``/proc/<pid>/ns/net``), and those attached by path whose netns still exists."""
        out = {cid: f"/proc/{pid}/ns/net" for cid, pid in self._pids.items()}
        out.update((eid, path) for eid, path in self._netns.items() if os.path.exists(path))
        return out

    def running(self, endpoint_id: str) -> bool:
        """Whether ``endpoint_id``'s container runs here (a PID, or a netns path that exists)."""
        return endpoint_id in self._pids or (endpoint_id in self._netns and os.path.exists(self._netns[endpoint_id]))

    @property
    def ifnames(self) -> dict[tuple[str, str], str]:
        """``{(endpoint id, network): interface name}`` asked for by attaches by path."""
        return {(eid, net): name for eid, nets in self._ifnames.items() for net, name in nets.items() if name}

    def attached(self, endpoint_id: str, netns: str, network: str, ifname: str | None) -> None:
        """A container in the netns at path ``netns`` joins ``network`` (as ``ifname``, else
        ``eth<n>`` by the order of its networks); remembered across restarts."""
        old = self._netns.get(endpoint_id)
        if old is not None and old != netns:
            self._ifnames.pop(endpoint_id, None)  # a new sandbox for the same id: its old names are gone
        self._netns[endpoint_id] = netns
        self._ifnames.setdefault(endpoint_id, {})[network] = ifname or ""  # "": eth<n> by the network order
        self._changed(endpoint_id)
        self._save()

    def detached(self, endpoint_id: str, network: str | None = None) -> None:
        """``endpoint_id`` left ``network`` (None: every network; its netns is forgotten when none is left)."""
        if endpoint_id not in self._netns:
            return
        names = self._ifnames.get(endpoint_id, {})
        if network is not None:
            names.pop(network, None)
        if network is None or not names:
            self._netns.pop(endpoint_id, None)
            self._ifnames.pop(endpoint_id, None)
            self.names.pop(endpoint_id, None)
        self._changed(endpoint_id)
        self._save()

    def name_sandbox(self, container_id: str, pid: int, name: str) -> None:
        """A Docker container started: the endpoints attached by path to its netns (the Docker
        driver's) are shown under its name."""
        try:
            ns = os.stat(f"/proc/{pid}/ns/net")
        except OSError:
            return  # it already exited
        for eid, path in self._netns.items():
            try:
                same = os.stat(path)
            except OSError:
                continue
            if (same.st_dev, same.st_ino) == (ns.st_dev, ns.st_ino) and eid != container_id:
                self.names[eid] = name

    def free_ifname(self, netns: str) -> str:
        """The first ``eth<n>`` no container attached to the netns at ``netns`` was given."""
        taken = {name for eid, path in self._netns.items() if path == netns
                 for name in self._ifnames.get(eid, {}).values() if name}
        return next(f"eth{n}" for n in range(len(taken) + 1) if f"eth{n}" not in taken)

    def changed_since(self, version: int) -> frozenset[str] | None:
        """The containers whose PID, netns path or interface names changed after ``version``
        (None when that is too far back to tell)."""
        if version == self.version:
            return frozenset()
        if version > self.version or not self._log or self._log[0][0] > version + 1:
            return None
        out = set()
        for v, cid in reversed(self._log):
            if v <= version:
                break
            out.add(cid)
        return frozenset(out)

    def _changed(self, container_id: str) -> None:
        self.version += 1
        self._log.append((self.version, container_id))

    def _load(self, path: str) -> None:
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
            self._netns = {str(k): str(v) for k, v in data.get("netns", {}).items()}
            self._ifnames = {str(k): {str(n): str(i) for n, i in v.items()} for k, v in data.get("ifnames", {}).items()}
        except FileNotFoundError:
            return
        except (OSError, ValueError, AttributeError, TypeError) as exc:
            log.warning("ignoring %s (%s): containers attached by netns path before the restart get their "
                        "interfaces back only when attached again", path, exc)
            self._netns, self._ifnames = {}, {}

    def _save(self) -> None:
        if self._netns_file is None:
            return
        os.makedirs(os.path.dirname(self._netns_file) or ".", exist_ok=True)
        tmp = f"{self._netns_file}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"netns": self._netns, "ifnames": self._ifnames}, f)
        os.replace(tmp, self._netns_file)

    def owns(self, info: ContainerInfo) -> bool:
        """Whether a Docker container belongs to this host (carries ``labels``)."""
        return has_labels(info.labels, self.labels)

    def started(self, container_id: str, pid: int) -> None:
        self._pids[container_id] = pid
        self._changed(container_id)
        self._seen(container_id)

    def stopped(self, container_id: str) -> None:
        self._pids.pop(container_id, None)
        self._changed(container_id)

    def removed(self, container_id: str) -> None:
        self._pids.pop(container_id, None)
        self._changed(container_id)
        self.detached(container_id)
        self.names.pop(container_id, None)
        self.errors.pop(container_id, None)

    def failed(self, container_id: str, step: str, error: str, network: str = "") -> None:
        """Remember why a container got no network (``meshd why``; steps in :mod:`meshd._attach`)."""
        self.errors[container_id] = {"step": step, "network": network, "error": error, "time": time.time()}

    def listed(self, snapshot: RuntimeSnapshot) -> None:
        """Docker's list of this host's containers; a ``started`` call for each running one follows."""
        self._unlisted = set(snapshot.running)
        for cid in list(self._pids):
            if cid not in snapshot.running and cid in snapshot.existing:
                del self._pids[cid]
                self._changed(cid)
        self._seen(None)

    def seen(self, container_id: str) -> None:
        """A running container of the list was reported (even one whose labels are wrong)."""
        self._seen(container_id)

    def _seen(self, container_id: str | None) -> None:
        self._unlisted.discard(container_id)
        if not self._unlisted:
            self._listed.set()

    async def wait_listed(self) -> None:
        """Until Docker's running containers are all known (after a start, or at once without Docker)."""
        while not self._listed.is_set():
            with trio.move_on_after(10):
                await self._listed.wait()
            if not self._listed.is_set():
                log.warning("waiting for Docker to list containers before building interfaces")


class DockerListener:
    """What the agent does on Docker's container events; see the module docstring."""

    def __init__(self, *, host: str, containers: LocalContainers, committer: Committer, replica: Replica,
                 events: Events, trigger: Callable[[], None], dhcp: DhcpLeases, dataplane: Iterable[str] = (),
                 parent: str = "") -> None:
        self._host = host
        self._dataplane = tuple(dataplane)  #: link kinds this host's kernel creates (empty: not probed)
        self._parent = parent  #: this host's NIC for flat networks without a parent option
        self._containers = containers
        self._committer = committer
        self._replica = replica
        self._events = events
        self._trigger = trigger
        self._dhcp = dhcp

    def owns(self, info: ContainerInfo) -> bool:
        return self._containers.owns(info)

    async def on_resync(self, snapshot: RuntimeSnapshot) -> None:
        self._containers.listed(snapshot)
        self._trigger()

    async def on_container_started(self, spec: ContainerSpec) -> None:
        self._containers.started(spec.container_id, spec.pid)
        self._containers.names[spec.container_id] = spec.container_name
        self._containers.name_sandbox(spec.container_id, spec.pid, spec.container_name)
        for req in spec.requests:
            if self._replica.state.endpoint(spec.container_id, req.network) is None:
                await self._connect(spec, req)
        await publish_from_spec(spec, self._replica, self._committer)
        self._trigger()

    async def on_container_invalid(self, info: ContainerInfo, error: SpecError) -> None:
        self._containers.started(info.id, info.pid)  # its API-made endpoints still need the PID
        self._containers.names[info.id] = info.name
        self._events.note("error", str(error))  # the SpecError names the container
        self._containers.failed(info.id, LABELS, str(error))

    async def on_container_stopped(self, container_id: str) -> None:
        self._containers.stopped(container_id)
        self._trigger()

    async def on_container_removed(self, container_id: str) -> None:
        self._containers.removed(container_id)
        for ep in self._replica.state.endpoints(host=self._host):
            if ep.endpoint_id != container_id:
                continue
            try:  # a dhcp endpoint's lease is released before the Disconnect
                await self._dhcp.disconnect(st.Disconnect(endpoint_id=container_id, network=ep.network),
                                            self._committer.commit)
            except Unavailable as exc:
                log.warning("release of removed container failed container=%s network=%s error=%s; its "
                            "address stays allocated until `meshd endpoint disconnect %s %s`",
                            container_id[:12], ep.network, exc, container_id[:12], ep.network)

    async def _connect(self, spec: ContainerSpec, req: ConnectRequest) -> None:
        info = self._replica.state.network(req.network)
        refusal = seed_refusal(req, info.network if info is not None else None, self._parent)
        if refusal is None and info is not None:
            refusal = mode_refusal(req.network, info.network.mode, {self._host: self._dataplane})
        if refusal is not None:
            log.warning("container refused container=%s network=%s reason=%r", spec.container_name, req.network,
                        refusal)
            self._events.note("error", f"container {spec.container_name} ({spec.container_id[:12]}) refused: "
                                       f"{refusal}")
            self._containers.failed(spec.container_id, LABELS, refusal, req.network)
            return
        if req.seed_type == "vlan":
            self._events.note("endpoint", f"{spec.container_name}: TYPE=vlan joins {req.network} as a VXLAN "
                                          "segment (meshd carries seed-002 VLANs over VXLAN, not 802.1Q)")
        try:
            result = await self._dhcp.connect(req.to_connect(self._host), self._committer.commit)
        except Unavailable as exc:
            log.warning("connect from labels failed container=%s network=%s error=%s",
                        spec.container_name, req.network, exc)
            self._events.note("error", f"{spec.container_name}: cannot connect to {req.network}: {exc}")
            self._containers.failed(spec.container_id, ADDRESS, str(exc), req.network)
            return
        except LeaseRefused as exc:  # a dhcp network: no lease (see ._dhcp)
            result = st.CommandError(code=st.ErrorCode.INVALID_FIELD, message=str(exc))
        if isinstance(result, st.CommandError):
            log.warning("connect from labels refused container=%s network=%s error=%s",
                        spec.container_name, req.network, result.message)
            self._events.note("error", f"{spec.container_name}: {result.message}")
            self._containers.failed(spec.container_id, ADDRESS, result.message, req.network)
        else:
            self._containers.errors.pop(spec.container_id, None)


def seed_refusal(req: ConnectRequest, network: st.Network | None, parent: str = "") -> str | None:
    """Why a container's seed-002 environment cannot be honoured on ``network``, or None.

    ``TYPE`` must match the network's model (``flat``: a flat network; ``vlan``: a vlan
    network, or a vxlan one, which carries seed-002 VLANs over VXLAN; ``dhcp``: a dhcp network); ``HOSTIF`` must be
    the NIC a flat or dhcp network uses on this host (``parent``: this host's default); a ``GW`` or
    an ``IP=…/len`` that disagrees with the network would give the container a route or a
    mask that does not work. (A missing network is the state's refusal, with its own message.)
    """
    if network is None:
        return None
    if req.seed_type == "dhcp" and network.mode is not st.Mode.DHCP:
        return (f"TYPE=dhcp asks for a dhcp network (addresses from a DHCP server), but {network.name} is a "
                f"{network.mode.value} network: use TYPE={'vlan' if network.mode is st.Mode.VXLAN else 'flat'} "
                "to join it, or name a network created with --mode dhcp")
    if req.seed_type == "flat" and network.mode is not st.Mode.FLAT:
        return (f"TYPE=flat asks for a flat (macvlan) network, but {network.name} is a {network.mode.value} network: "
                f"use TYPE={'dhcp' if network.mode is st.Mode.DHCP else 'vlan'} to join it, or name a network "
                "created with --mode flat")
    if req.seed_type == "vlan" and network.mode not in (st.Mode.VXLAN, st.Mode.VLAN):
        return (f"TYPE=vlan joins a vlan (802.1Q) or vxlan network, but {network.name} is a {network.mode.value} "
                f"network: use TYPE={network.mode.value} to join it")
    if req.ip is not None and network.mode is st.Mode.DHCP:
        return (f"IP={req.ip} is set but addresses of dhcp network {network.name} come from its DHCP server: "
                "drop IP")
    if req.hostif is not None and network.mode in (st.Mode.FLAT, st.Mode.VLAN, st.Mode.DHCP):
        nic = network.options.get("parent", parent)
        if nic and req.hostif != nic:
            return (f"HOSTIF={req.hostif} is not the NIC flat network {network.name} uses on this host ({nic}): "
                    f"use HOSTIF={nic}, or drop HOSTIF")
    if req.gateway is not None and req.gateway != network.gateway:
        if not network.gateway:
            return f"GW={req.gateway} is set but network {network.name} has no gateway: drop GW"
        return f"GW={req.gateway} is not the gateway of network {network.name}: use GW={network.gateway} or drop GW"
    if req.prefix_len is not None and req.prefix_len != network.prefix_len:
        return (f"IP={req.ip}/{req.prefix_len} does not match network {network.name}'s subnet {network.subnet}: "
                f"use /{network.prefix_len} or a bare address")
    return None

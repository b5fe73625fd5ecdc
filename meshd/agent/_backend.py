"""The API backend of a running agent: writes through the committer, reads from the local replica.

* :meth:`AgentBackend.execute` commits a :mod:`meshd.state` command through
  the one :class:`~meshd.agent._commit.Committer` (any host: followers
  forward to the leader);
* queries read the local :class:`~meshd.state.NetworkState` replica;
* :meth:`AgentBackend.resolve_container` turns a name or short id of a
  container on *this* host into its full id through Docker, and records a PID
  given in the request for containers Docker does not know;
* :meth:`AgentBackend.wait_endpoint_up` answers a connect received by the
  owning host once the :class:`~meshd.agent._endpoints.EndpointTracker` saw
  its interface built.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Protocol

import trio

from meshd import state as st
from meshd.api import ApiError, EndpointConnect, EndpointMove, FrameError, MsgType
from meshd.runtime import ContainerNotFound, ContainerNotRunning, DockerError, DockerRuntime

from ._commit import Committer
from ._containers import LocalContainers
from ._dataplane import mode_refusal
from ._dhcp import DhcpLeases, LeaseRefused
from ._endpoints import EndpointTracker
from ._liveness import Liveness
from ._members import MemberBook
from ._mtu import default_mtu, mode_overhead, mtu_refusal
from ._overlap import underlay_refusal
from ._replica import Replica
from ._status import member_maps

#: the shortest id prefix a connect to another host resolves (Docker's short id)
SHORT_ID = 12


class AgentControl(Protocol):
    """What the control socket asks of the agent itself."""

    async def join(self, addresses: Sequence[str]) -> dict[str, Any]: ...

    async def leave(self) -> dict[str, Any]: ...

    def set_log_level(self, level: str) -> dict[str, Any]: ...

    def status(self) -> dict[str, Any]: ...


class AgentBackend:
    """:class:`meshd.api.ApiBackend` of a running agent; see the module docstring."""

    def __init__(self, *, local_host: str, replica: Replica, committer: Committer, members: MemberBook,
                 liveness: Liveness, containers: LocalContainers, tracker: EndpointTracker,
                 runtime: DockerRuntime | None, control: AgentControl, dhcp: DhcpLeases,
                 interface_timeout_s: float = 10.0) -> None:
        self.local_host = local_host
        self._replica = replica
        self._committer = committer
        self._members = members
        self._liveness = liveness
        self._containers = containers
        self._tracker = tracker
        self._runtime = runtime
        self._control = control
        self._dhcp = dhcp
        self._interface_timeout_s = interface_timeout_s

    async def execute(self, command: Any) -> Any:
        """Commit ``command``; a connect on a dhcp network leases its address first, a disconnect of
        this host's endpoint releases it first (:class:`~meshd.agent._dhcp.DhcpLeases`)."""
        if isinstance(command, st.Connect):
            try:
                result = await self._dhcp.connect(command, self._committer.commit)
            except LeaseRefused as exc:
                self._forget_unconnected(command.endpoint_id, command.network)
                raise FrameError(ApiError.DHCP_FAILED if exc.no_lease else ApiError.INVALID_VALUE, str(exc),
                                 MsgType.ENDPOINT_CONNECT) from None
            if isinstance(result, st.CommandError):
                self._forget_unconnected(command.endpoint_id, command.network)
            return result
        if isinstance(command, st.Disconnect):
            result = await self._dhcp.disconnect(command, self._committer.commit)
            self._forget_unconnected(command.endpoint_id, command.network)
            return result
        return await self._committer.commit(command)

    def _forget_unconnected(self, endpoint_id: str, network: str) -> None:
        """A netns attached by path is forgotten for a network the endpoint is not in (refused, or left)."""
        if self._replica.state.endpoint(endpoint_id, network) is None:
            self._containers.detached(endpoint_id, network)

    def state(self) -> st.NetworkState:
        return self._replica.state

    def members(self) -> list[dict[str, Any]]:
        return member_maps(self._members, self._liveness)

    def status(self) -> dict[str, Any]:
        return self._control.status()

    async def join(self, addresses: list[str]) -> dict[str, Any]:
        return await self._control.join(addresses)

    async def leave(self) -> dict[str, Any]:
        return await self._control.leave()

    async def set_log_level(self, level: str) -> dict[str, Any]:
        return self._control.set_log_level(level)

    async def wait_endpoint_up(self, endpoint_id: str, vni: int) -> str | None:
        timeout_s = self._interface_timeout_s
        try:
            problem = await self._tracker.wait_up((endpoint_id, vni), timeout_s)
        except trio.TooSlowError:
            if not self._containers.running(endpoint_id):
                return f"container {endpoint_id[:12]} is not running on {self.local_host} (no PID known)"
            return f"the interface was not built within {timeout_s:.0f}s; see the agent log"
        return None if problem is None else problem.error

    def is_running(self, endpoint_id: str) -> bool:
        return self._containers.running(endpoint_id)

    def live_hosts(self) -> frozenset[str]:
        """Hosts whose service entries count in DNS now (SERVICE_QUERY's ``live``)."""
        return frozenset(self._liveness.kept_vteps()) | {self.local_host}

    def check_host(self, host: str, req: EndpointConnect | EndpointMove) -> None:
        """A connect or move names a host that gossip or the state knows, or says it is expected."""
        if host == self.local_host or req.host_expected:
            return
        members = self._members.as_maps()
        if host in self._replica.state.hosts() or any(m["name"] == host and m["state"] != "left" for m in members):
            return
        live = sorted(m["name"] for m in members if m["state"] in ("alive", "suspect"))
        raise FrameError(ApiError.UNKNOWN_HOST,
                         f"host {host!r} is not a member of this cluster (members: {', '.join(live) or 'none'}): "
                         "check the name, or set host_expected (CLI --host-expected) for a host that joins later",
                         req.MSG_TYPE, req.request_id)

    def check_mtu(self, network: str, mode: str, mtu: int | None, req: Any) -> int:
        """The MTU for ``network`` (``mtu``, or the mode's default when None); one that some
        member's underlay cannot carry is refused (see :mod:`._mtu`)."""
        underlays = self._members.underlay_mtus()
        mtu = default_mtu(mode, underlays) if mtu is None else mtu
        why = mtu_refusal(network, mtu, underlays, mode_overhead(mode))
        if why is not None:
            raise FrameError(ApiError.MTU_TOO_LARGE, why, req.MSG_TYPE, req.request_id)
        return mtu

    def check_mode(self, network: str, mode: str, host: str | None, req: Any) -> None:
        """A network mode that a member's kernel cannot build is refused (see :mod:`._dataplane`):
        on every member for a create (``host`` None), on ``host`` for a connect or move."""
        kinds = self._members.dataplanes() if host is None else self._members.dataplane_of(host)
        why = mode_refusal(network, mode, kinds)
        if why is not None:
            raise FrameError(ApiError.MODE_UNSUPPORTED, why, req.MSG_TYPE, req.request_id)
        if mode == st.Mode.ROUTED.value:
            self._check_underlay(network, host, req)

    def _check_underlay(self, network: str, host: str | None, req: Any) -> None:
        """A routed network whose subnet contains a member's underlay address is refused (see :mod:`._overlap`):
        every member's for a create, ``host``'s for a connect or move."""
        if host is None:
            subnet = req.subnet
        else:
            info = self._replica.state.network(network)
            if info is None:
                return
            subnet = info.network.subnet
        vteps = {m["name"]: m["address"] for m in self._members.as_maps() if m["state"] != "left" and m["address"]}
        if host is not None:
            vteps = {host: vteps[host]} if host in vteps else {}
        why = underlay_refusal(network, subnet, vteps)
        if why is not None:
            raise FrameError(ApiError.UNDERLAY_OVERLAP, why, req.MSG_TYPE, req.request_id)

    async def resolve_container(self, req: EndpointConnect, host: str) -> tuple[str, str | None]:
        if req.netns is not None or req.ifname is not None:
            return self._attach_by_path(req, host), None
        if host != self.local_host:
            self.check_host(host, req)
            # another host's container: by a name, or a short id (12 hex digits or more), connected
            # before; else its agent knows this id (a new id is not scanned for as a prefix)
            known = self._replica.state.find_endpoints(req.container_id, min_prefix=SHORT_ID)
            return (known[0] if len(known) == 1 else req.container_id), None
        if self._runtime is not None:
            try:
                info = await self._runtime.resolve(req.container_id)
            except ContainerNotRunning as exc:
                raise FrameError(ApiError.UNKNOWN_CONTAINER, str(exc), MsgType.ENDPOINT_CONNECT,
                                 req.request_id) from None
            except (ContainerNotFound, DockerError):
                pass  # not a Docker container (or dockerd is down): a PID may still name it
            else:
                if not self._containers.owns(info):
                    raise FrameError(ApiError.UNKNOWN_CONTAINER,
                                     f"container {info} does not belong to host {host} (it lacks the labels "
                                     f"{', '.join(self._containers.labels)}): connect it through its own host",
                                     MsgType.ENDPOINT_CONNECT, req.request_id)
                self._containers.started(info.id, info.pid)
                self._containers.names[info.id] = info.name
                return info.id, info.name or None
        if req.pid:
            self._containers.started(req.container_id, req.pid)
            return req.container_id, None
        raise FrameError(
            ApiError.UNKNOWN_CONTAINER,
            f"container {req.container_id!r} is not known to Docker on {host}: give its full id or name, "
            "or its PID (field 'pid') if it is not a Docker container", MsgType.ENDPOINT_CONNECT, req.request_id)

    def _attach_by_path(self, req: EndpointConnect, host: str) -> str:
        """A connect that names the container's netns by path (the CNI plugin, the Docker driver):
        the netns must be one on this host; the id is the caller's (nothing to resolve)."""
        if req.netns is None:
            raise FrameError(ApiError.MISSING_FIELD, "field 'ifname' needs field 'netns' (the container's netns "
                             "by path, where that interface is made)", MsgType.ENDPOINT_CONNECT, req.request_id)
        if host != self.local_host:
            raise FrameError(ApiError.INVALID_VALUE,
                             f"field 'netns' names a path on the container's own host, but this connect is for "
                             f"host {host!r}: send it to {host!r}'s agent (or drop 'host')",
                             MsgType.ENDPOINT_CONNECT, req.request_id)
        why = netns_problem(req.netns)
        if why is not None:
            raise FrameError(ApiError.INVALID_VALUE, f"field 'netns': {why}", MsgType.ENDPOINT_CONNECT,
                             req.request_id)
        self._containers.attached(req.container_id, req.netns, req.network, req.ifname)
        return req.container_id


def netns_problem(path: str) -> str | None:
    """Why ``path`` is not a network namespace of this host, or None."""
    if "/../" in f"{path}/" or not os.path.isabs(path):
        return f"{path} is not an absolute path without '..'"
    try:
        st_path, st_ns = os.stat(path), os.stat("/proc/self/ns/net")
    except FileNotFoundError:
        return f"{path} does not exist on this host (the container's netns is gone, or it is another host's)"
    except OSError as exc:
        return f"{path} cannot be read: {exc.strerror}"
    if st_path.st_dev != st_ns.st_dev:  # every namespace file lives on nsfs
        return f"{path} is not a network namespace (a file of nsfs, as /proc/<pid>/ns/net or /run/netns/NAME are)"
    return None

"""The API backend of a running agent: writes through Raft, reads from the local replica.

* :meth:`AgentBackend.execute` encodes a :mod:`meshd.state` command, proposes
  it to the Raft log (any host: followers forward to the leader; the Raft
  session makes a retried proposal apply once) and decodes the result;
* queries read the local :class:`~meshd.state.NetworkState` replica;
* :meth:`AgentBackend.resolve_container` turns a name or short id of a
  container on *this* host into its full id through Docker, and remembers a
  PID given in the request for containers Docker does not know.
"""

from __future__ import annotations

from typing import Any

import consensus
from meshd import state as st
from meshd import wire
from meshd.api import ApiError, FrameError, MsgType, Unavailable
from meshd.api._requests import EndpointConnect
from meshd.runtime import ContainerNotFound, ContainerNotRunning, DockerError, DockerRuntime


def has_labels(labels: Any, wanted: tuple[str, ...]) -> bool:
    """True when ``labels`` carries every ``key=value`` of ``wanted``."""
    return all(labels.get(k) == v for k, _, v in (w.partition("=") for w in wanted))


class AgentBackend:
    """:class:`meshd.api.ApiBackend` over a :class:`consensus.RaftNode`."""

    def __init__(self, *, agent: Any, local_host: str, runtime: DockerRuntime | None,
                 propose_timeout_s: float, interface_timeout_s: float = 10.0,
                 container_labels: tuple[str, ...] = ()) -> None:
        self._agent = agent  # its raft and state may be replaced (meshd join), so read them each time
        self.local_host = local_host
        self._runtime = runtime
        self._timeout_s = propose_timeout_s
        self._interface_timeout_s = interface_timeout_s
        self._labels = container_labels

    async def execute(self, command: Any) -> Any:
        try:
            result = await self._agent.raft.propose(wire.encode(command), timeout_s=self._timeout_s)
        except (consensus.Unavailable, consensus.SessionExpired) as exc:
            raise Unavailable(str(exc)) from None
        return wire.decode(result)

    def state(self) -> st.NetworkState:
        return self._agent.state

    def members(self) -> list[dict[str, Any]]:
        return self._agent.members.as_maps()

    def status(self) -> dict[str, Any]:
        return self._agent.status()

    async def wait_endpoint_up(self, endpoint_id: str, vni: int) -> str | None:
        return await self._agent.wait_endpoint_up(endpoint_id, vni, self._interface_timeout_s)

    async def join(self, addresses: list[str]) -> dict[str, Any]:
        return await self._agent.join(addresses)

    async def leave(self) -> dict[str, Any]:
        return await self._agent.leave()

    async def set_log_level(self, level: str) -> dict[str, Any]:
        return self._agent.set_log_level(level)

    async def resolve_container(self, req: EndpointConnect, host: str) -> str:
        if host != self.local_host:
            return req.container_id  # another host's container: its agent knows it by this id
        if self._runtime is not None:
            try:
                info = await self._runtime.resolve(req.container_id)
            except ContainerNotRunning as exc:
                raise FrameError(ApiError.UNKNOWN_CONTAINER, str(exc), MsgType.ENDPOINT_CONNECT,
                                 req.request_id) from None
            except (ContainerNotFound, DockerError):
                pass  # not a Docker container (or dockerd is down): a PID may still name it
            else:
                if not has_labels(info.labels, self._labels):
                    raise FrameError(ApiError.UNKNOWN_CONTAINER,
                                     f"container {info} does not belong to host {host} (it lacks the labels "
                                     f"{', '.join(self._labels)}): connect it through its own host",
                                     MsgType.ENDPOINT_CONNECT, req.request_id)
                self._agent.pids[info.id] = info.pid
                return info.id
        if req.pid:
            self._agent.pids[req.container_id] = req.pid
            return req.container_id
        raise FrameError(
            ApiError.UNKNOWN_CONTAINER,
            f"container {req.container_id!r} is not known to Docker on {host}: give its full id or name, "
            "or its PID (field 'pid') if it is not a Docker container", MsgType.ENDPOINT_CONNECT, req.request_id)

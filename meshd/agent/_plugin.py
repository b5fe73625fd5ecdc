"""The agent's side of the Docker plugin: the driver's ports onto the agent's own API and state.

Every write of :class:`meshd.plugin.DockerDriver` goes through the agent's
:class:`~meshd.api.SchedulerService` (a request as a scheduler's, with the same
checks and the same interface wait) or :meth:`AgentBackend.execute` (the one
committer); the driver's mapping of Docker's ids is kept in
``<data_dir>/docker-plugin.json``.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import msgspec
import trio

from meshd import state as st
from meshd.api import RESPONSE_FLAG, FrameError, SchedulerService, Unavailable, pack, unpack
from meshd.plugin import DockerDriver, DriverBook, DriverError, PluginServer, refusal

from ._backend import AgentBackend
from ._containers import LocalContainers

log = logging.getLogger("meshd.agent")

#: how long a joined Docker sandbox's netns is waited for, and how often it is looked for
SANDBOX_WAIT_S, SANDBOX_POLL_S = 120.0, 0.01


class DriverPortsOfAgent:
    """:class:`meshd.plugin.DriverPorts` of a running agent."""

    def __init__(self, *, service: SchedulerService, backend: AgentBackend, containers: LocalContainers,
                 trigger: Any, nursery: trio.Nursery) -> None:
        self.local_host = backend.local_host
        self._nursery = nursery
        self._service = service
        self._backend = backend
        self._containers = containers
        self._trigger = trigger

    def state(self) -> st.NetworkState:
        return self._backend.state()

    async def request(self, req: Any) -> dict[str, Any]:
        frame = pack(req.MSG_TYPE, msgspec.to_builtins(req))
        reply = await self._service.handle_reply(frame, require_request_id=False)
        msg_type, body = unpack(reply.frame, max_bytes=1 << 24)
        assert msg_type & RESPONSE_FLAG
        if not body.get("ok"):
            raise DriverError(str(body.get("error", {}).get("message", "refused")))
        result: dict[str, Any] = body.get("result") or {}
        return result

    async def execute(self, command: Any) -> Any:
        try:
            return await self._backend.execute(command)
        except Unavailable as exc:
            raise DriverError(f"the meshd cluster cannot commit now ({exc}): retry when `meshd status` shows a "
                              "Raft leader") from None
        except FrameError as exc:  # a refused lease
            raise DriverError(str(exc)) from None

    def free_ifname(self, netns: str) -> str:
        return self._containers.free_ifname(netns)

    def attach_when_started(self, endpoint_id: str, network: str, netns: str, ifname: str) -> None:
        self._containers.attached(endpoint_id, netns, network, ifname)
        self._nursery.start_soon(self._kick_when_exists, netns)

    async def _kick_when_exists(self, netns: str) -> None:
        """A pass as soon as the sandbox's netns exists (the reconciler builds only existing ones)."""
        with trio.move_on_after(SANDBOX_WAIT_S):
            while not await trio.to_thread.run_sync(os.path.exists, netns):  # noqa: ASYNC110 (no event to wait on)
                await trio.sleep(SANDBOX_POLL_S)
            self._trigger()
            return
        log.warning("Docker sandbox %s did not appear within %.0fs; its container got no meshd interface "
                    "(it did not start?)", netns, SANDBOX_WAIT_S)

    def detach(self, endpoint_id: str, network: str) -> None:
        self._containers.detached(endpoint_id, network)
        self._trigger()


def docker_plugin(name: str, plugin_dir: str, data_dir: str, ports: DriverPortsOfAgent) -> PluginServer:
    """The plugin server for ``docker network create -d NAME --ipam-driver NAME``; its mapping of Docker's
    ids is kept in ``data_dir`` (Docker's networks outlive a reboot, which empties the run dir)."""
    book_file = os.path.join(data_dir, "docker-plugin.json")
    book = _load_book(book_file)

    def save(b: DriverBook) -> None:
        tmp = f"{book_file}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(b.as_json(), f)
        os.replace(tmp, book_file)

    driver = DockerDriver(ports, book, save)
    return PluginServer(os.path.join(plugin_dir, f"{name}.sock"), driver.call, refusal=refusal)


def _load_book(path: str) -> DriverBook:
    """The mapping saved by the last run; an empty one at the first start or when it cannot be read."""
    try:
        with open(path, encoding="utf-8") as f:
            return DriverBook.from_json(json.load(f))
    except FileNotFoundError:
        return DriverBook()  # the first start: nothing mapped yet
    except (OSError, ValueError, TypeError) as exc:
        log.warning("ignoring %s (%s): Docker networks created before must be created again", path, exc)
        return DriverBook()

import itertools
import threading
from typing import Any

import pytest
import trio

from meshd import state as st
from meshd.agent._dataplane import mode_refusal
from meshd.agent._mtu import default_mtu, mode_overhead, mtu_refusal
from meshd.api import FrameError, SchedulerService
from meshd.api._control import ControlServer
from meshd.api._frame import ApiError, MsgType
from meshd.transport import ZmqHost


class LocalBackend:
    """A one-replica backend: commands execute on a real NetworkState at increasing
    log indexes, as on a single-voter cluster (the agent's backend commits through
    Raft first).  Containers resolve to themselves unless listed in ``unknown``."""

    def __init__(self, host: str = "h1") -> None:
        self.local_host = host
        self._state = st.NetworkState()
        self._index = itertools.count(1)
        self.executed: list[Any] = []
        self.unknown: set[str] = set()
        self.underlays: dict[str, int] = {host: 1500}  #: member underlay MTUs, as gossip would say
        self.dataplanes: dict[str, tuple[str, ...]] = {}  #: member link kinds, as gossip would say

    async def execute(self, command: Any) -> Any:
        self.executed.append(command)
        return self._state.execute(command, next(self._index))

    def state(self) -> st.NetworkState:
        return self._state

    def members(self) -> list[dict[str, Any]]:
        return [{"name": self.local_host, "state": "alive"}]

    def status(self) -> dict[str, Any]:
        return {"host": self.local_host, "last_index": self._state.last_index}

    async def resolve_container(self, req, host: str) -> tuple[str, str | None]:
        if host != self.local_host:
            self.check_host(host, req)
        if req.container_id in self.unknown:
            raise FrameError(ApiError.UNKNOWN_CONTAINER, f"container {req.container_id!r} does not exist on {host}",
                             MsgType.ENDPOINT_CONNECT, req.request_id)
        return req.container_id, None

    def is_running(self, endpoint_id: str) -> bool:
        return True

    def check_mtu(self, network: str, mode: str, mtu: int | None, req) -> int:
        mtu = default_mtu(mode, self.underlays) if mtu is None else mtu
        why = mtu_refusal(network, mtu, self.underlays, mode_overhead(mode))
        if why is not None:
            raise FrameError(ApiError.MTU_TOO_LARGE, why, req.MSG_TYPE, req.request_id)
        return mtu

    def check_mode(self, network: str, mode: str, host: str | None, req) -> None:
        kinds = self.dataplanes if host is None else {h: k for h, k in self.dataplanes.items() if h == host}
        why = mode_refusal(network, mode, kinds)
        if why is not None:
            raise FrameError(ApiError.MODE_UNSUPPORTED, why, req.MSG_TYPE, req.request_id)

    def check_host(self, host: str, req) -> None:
        if host not in (self.local_host, "h2", "h3") and not req.host_expected:
            raise FrameError(ApiError.UNKNOWN_HOST, f"host {host!r} is not a member", req.MSG_TYPE, req.request_id)


@pytest.fixture
def backend():
    return LocalBackend()


@pytest.fixture
def service(backend):
    return SchedulerService(backend, max_frame_bytes=4096)


@pytest.fixture
def agent(tmp_path, backend):
    """A control socket served from a thread (the CLI is blocking): ``(run dir, backend)``."""
    run_dir = tmp_path / "run"
    started, box = threading.Event(), {}

    async def serve() -> None:
        host = ZmqHost(None)
        async with trio.open_nursery() as nursery:
            box["stop"], box["token"] = nursery.cancel_scope.cancel, trio.lowlevel.current_trio_token()
            await nursery.start(host.run)
            await nursery.start(ControlServer(host, SchedulerService(backend, control=True), str(run_dir)).run)
            started.set()

    thread = threading.Thread(target=trio.run, args=(serve,), daemon=True)
    thread.start()
    assert started.wait(30), "the control server did not start"
    yield str(run_dir), backend
    trio.from_thread.run_sync(box["stop"], trio_token=box["token"])
    thread.join(30)

"""The scheduler service: frames in, replies and events out, over an :class:`ApiBackend`.

Theory of operation
-------------------
:meth:`SchedulerService.handle` takes one raw frame and always returns one
reply frame — it never raises, whatever the bytes.  Steps:

1. :func:`~meshd.api._frame.unpack` (framing errors become error replies);
2. :func:`~meshd.api._requests.parse_request` (field errors likewise);
3. de-duplication: a ``request_id`` seen before returns the first reply
   (a request still in flight is waited for, not executed twice);
4. commands are translated to :mod:`meshd.state` commands and executed by the
   backend (which commits them through Raft in the agent); queries read the
   backend's local replica.

Replies are ``{ok: true, request_id, result}`` or ``{ok: false, request_id,
error: {code, message}}`` under the request's type with ``RESPONSE_FLAG``.
Counters of every outcome are in :meth:`statistics`.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
from collections import Counter, OrderedDict
from typing import Any, Awaitable, Callable, Protocol

import trio

from meshd import state as st

from . import _requests as rq
from ._frame import RESPONSE_FLAG, STATE_ERROR_OFFSET, ApiError, FrameError, MsgType, pack, unpack

log = logging.getLogger("meshd.api")


class Unavailable(Exception):
    """The cluster cannot commit right now (no leader, no quorum, timeout)."""


class ApiBackend(Protocol):
    """What the service needs from the agent."""

    #: this host's member name (the default ``host`` of a connect)
    local_host: str

    async def execute(self, command: Any) -> Any:
        """Commit ``command`` (a :mod:`meshd.state` command); return its result or
        :class:`meshd.state.CommandError`.  Raises :class:`Unavailable`."""

    def state(self) -> st.NetworkState:
        """The local replica, for queries (read only)."""

    def members(self) -> list[dict[str, Any]]:
        """Gossip members as plain maps."""

    def status(self) -> dict[str, Any]:
        """This host's status as a plain map."""

    async def resolve_container(self, req: rq.EndpointConnect, host: str) -> str:
        """The endpoint id (full container id) for a connect on ``host``.
        Raises :class:`FrameError` (UNKNOWN_CONTAINER) when it cannot."""

    async def join(self, addresses: list[str]) -> dict[str, Any]:
        """Join gossip through any of ``addresses`` (local control only)."""

    async def leave(self) -> dict[str, Any]:
        """Leave the cluster gracefully (local control only)."""

    async def set_log_level(self, level: str) -> dict[str, Any]:
        """Change the running agent's log level (local control only)."""

    async def wait_endpoint_up(self, endpoint_id: str, vni: int) -> str | None:
        """Optional: wait until this host built the endpoint's interface; None, or why not."""


class SchedulerService:
    """Turns scheduler frames into replies; see the module docstring."""

    def __init__(self, backend: ApiBackend, *, max_frame_bytes: int = 64 << 10,
                 dedupe_entries: int = 10_000, control: bool = False) -> None:
        self.backend = backend
        self.control = control
        self.max_frame_bytes = max_frame_bytes
        self._dedupe_entries = dedupe_entries
        self._done: OrderedDict[str, bytes] = OrderedDict()
        self._inflight: dict[str, trio.Event] = {}
        self.counters: Counter[str] = Counter()
        self._commands: dict[type, Callable[[Any], Awaitable[Any]]] = {
            rq.NetworkCreate: self._network_create, rq.NetworkDelete: self._network_delete,
            rq.NetworkUpdate: self._network_update, rq.EndpointConnect: self._connect,
            rq.EndpointDisconnect: self._disconnect, rq.EndpointMove: self._move,
            rq.QosSet: self._qos_set, rq.PolicyAdd: self._policy_add, rq.PolicyDelete: self._policy_delete,
            rq.ControlJoin: lambda r: self.backend.join(r.addresses), rq.ControlLeave: lambda r: self.backend.leave(),
            rq.ControlLogLevel: lambda r: self.backend.set_log_level(r.level),
        }
        self._queries: dict[type, Callable[[Any], Any]] = {
            rq.NetworkList: self._networks, rq.QueryNetworks: self._networks,
            rq.PolicyList: self._policies, rq.QueryEndpoints: self._endpoints,
            rq.QueryMembers: lambda r: {"members": self.backend.members()},
            rq.QueryStatus: lambda r: self.backend.status(),
        }

    def statistics(self) -> dict[str, int]:
        return dict(self.counters)

    async def handle(self, frame: bytes, *, require_request_id: bool = True) -> bytes:
        """One reply frame for one request frame.  Never raises (but Cancelled)."""
        msg_type, request_id = 0, ""
        try:
            msg_type, body = unpack(frame, max_bytes=self.max_frame_bytes)
            req = rq.parse_request(msg_type, body)
            request_id = req.request_id
            if isinstance(req, rq.CONTROL_ONLY) and not self.control:
                raise FrameError(ApiError.NOT_ALLOWED, f"{type(req).__name__} is served on the local control "
                                 "socket only (run `meshd join` / `meshd leave` on the host)", msg_type, request_id)
            if require_request_id and not request_id:
                raise FrameError(ApiError.MISSING_FIELD, "field 'request_id' is required on the request socket "
                                 "(a unique string per request; a retry reuses it)", msg_type)
            return await self._deduplicated(req, msg_type)
        except FrameError as exc:
            self.counters[f"error_{exc.code.name.lower()}"] += 1
            return self._error(exc.msg_type or msg_type, exc.request_id or request_id, exc.code, str(exc))
        except Exception as exc:  # the daemon never dies of a message
            self.counters["error_internal"] += 1
            log.exception("request failed type=%s request_id=%s", msg_type, request_id)
            return self._error(msg_type, request_id, ApiError.INTERNAL, f"internal error: {exc!r}; see the agent log")

    async def _deduplicated(self, req: Any, msg_type: int) -> bytes:
        rid = req.request_id
        if rid and rid in self._done:
            self.counters["deduplicated"] += 1
            return self._done[rid]
        if rid and rid in self._inflight:
            self.counters["deduplicated"] += 1
            await self._inflight[rid].wait()
            return self._done.get(rid) or await self._deduplicated(req, msg_type)
        if rid:
            self._inflight[rid] = trio.Event()
        try:
            reply, final = await self._run(req, msg_type)
            if rid and final:
                self._done[rid] = reply
                if len(self._done) > self._dedupe_entries:
                    self._done.popitem(last=False)
            return reply
        finally:
            if rid:
                self._inflight.pop(rid).set()

    async def _run(self, req: Any, msg_type: int) -> tuple[bytes, bool]:
        """(reply, final): a final reply is what every retry of this request_id gets;
        queries and "unavailable" are not final (a retry runs again)."""
        query = self._queries.get(type(req))
        if query is not None:
            self.counters["queries"] += 1
            return self._ok(msg_type, req.request_id, query(req)), False
        try:
            result = await self._commands[type(req)](req)
        except Unavailable as exc:
            self.counters["error_unavailable"] += 1
            return self._error(msg_type, req.request_id, ApiError.UNAVAILABLE,
                               f"the cluster cannot commit now: {exc}; retry with the same request_id"), False
        if isinstance(result, st.CommandError):
            self.counters["rejected"] += 1
            return self._error(msg_type, req.request_id, STATE_ERROR_OFFSET + int(result.code), result.message), True
        self.counters["committed"] += 1
        problem = await self._interface_problem(result)
        if problem is not None:
            self.counters["error_interface"] += 1
            return self._error(msg_type, req.request_id, ApiError.INTERFACE_FAILED,
                               f"{result.endpoint_id[:12]} got {result.ip} in {result.network}, but its interface "
                               f"is not up: {problem}; the address stays allocated, retry with the same "
                               "request_id or disconnect"), False
        return self._ok(msg_type, req.request_id, plain(result)), True

    async def _interface_problem(self, result: Any) -> str | None:
        """A connect received by the owning host is answered once the interface is up."""
        wait = getattr(self.backend, "wait_endpoint_up", None)
        if not isinstance(result, st.Connected) or result.host != self.backend.local_host or wait is None:
            return None
        return await wait(result.endpoint_id, result.vni)

    # --- commands -------------------------------------------------------------

    async def _network_create(self, r: rq.NetworkCreate) -> Any:
        try:
            mode = st.Mode(r.mode)
        except ValueError:
            raise FrameError(ApiError.INVALID_VALUE, f"mode {r.mode!r} is unknown; use one of "
                             f"{', '.join(m.value for m in st.Mode)}", MsgType.NETWORK_CREATE, r.request_id) from None
        return await self.backend.execute(st.CreateNetwork(
            r.name, r.tenant, r.subnet, r.gateway, r.vni, mode, r.mtu, r.egress_kbit, r.external, dict(r.labels)))

    async def _network_delete(self, r: rq.NetworkDelete) -> Any:
        return await self.backend.execute(st.DeleteNetwork(r.name, r.force))

    async def _network_update(self, r: rq.NetworkUpdate) -> Any:
        return await self.backend.execute(st.UpdateNetwork(r.name, r.mtu, r.egress_kbit, r.external, r.labels))

    async def _connect(self, r: rq.EndpointConnect) -> Any:
        _refuse_delay(r)
        host = r.host or self.backend.local_host
        endpoint_id = await self.backend.resolve_container(r, host)
        qos = st.Qos(r.bandwidth_kbit, r.burst_bytes, r.latency_ms)
        return await self.backend.execute(st.Connect(endpoint_id, r.network, host, r.ip, r.mac, qos))

    async def _disconnect(self, r: rq.EndpointDisconnect) -> Any:
        return await self.backend.execute(st.Disconnect(r.container_id, r.network))

    async def _move(self, r: rq.EndpointMove) -> Any:
        return await self.backend.execute(st.MoveEndpoint(r.container_id, r.host))

    async def _qos_set(self, r: rq.QosSet) -> Any:
        _refuse_delay(r)
        return await self.backend.execute(
            st.SetQos(r.container_id, r.network, st.Qos(r.bandwidth_kbit, r.burst_bytes, r.latency_ms)))

    async def _policy_add(self, r: rq.PolicyAdd) -> Any:
        try:
            kind = st.PolicyKind(r.kind)
        except ValueError:
            raise FrameError(ApiError.INVALID_VALUE, f"policy kind {r.kind!r} is unknown; use one of "
                             f"{', '.join(k.value for k in st.PolicyKind)}", MsgType.POLICY_ADD, r.request_id) from None
        return await self.backend.execute(st.AddPolicy(kind, r.network, r.peer, r.policy_id))

    async def _policy_delete(self, r: rq.PolicyDelete) -> Any:
        return await self.backend.execute(st.RemovePolicy(r.policy_id))

    # --- queries --------------------------------------------------------------

    def _networks(self, r: Any) -> dict[str, Any]:
        return {"networks": [
            {**plain(i.network), "used": i.used, "free": i.free, "hosts": list(i.hosts)}
            for i in self.backend.state().networks(tenant=r.tenant)]}

    def _policies(self, r: rq.PolicyList) -> dict[str, Any]:
        return {"policies": [plain(p) for p in self.backend.state().policies(network=r.network)]}

    def _endpoints(self, r: rq.QueryEndpoints) -> dict[str, Any]:
        return {"endpoints": [plain(e) for e in self.backend.state().endpoints(host=r.host, network=r.network)]}

    # --- replies ----------------------------------------------------------------

    def _ok(self, msg_type: int, request_id: str, result: Any) -> bytes:
        return pack(msg_type | RESPONSE_FLAG, {"ok": True, "request_id": request_id, "result": result})

    def _error(self, msg_type: int, request_id: str, code: int, message: str) -> bytes:
        return pack((msg_type & ~RESPONSE_FLAG & 0xFFFF_FFFF) | RESPONSE_FLAG, {
            "ok": False, "request_id": request_id, "error": {"code": int(code), "message": message}})


def _refuse_delay(r: rq.EndpointConnect | rq.QosSet) -> None:
    if r.delay_ms:
        raise FrameError(ApiError.INVALID_VALUE, f"delay_ms={r.delay_ms} needs the netem qdisc, which meshd does not "
                         "configure (and this kernel lacks); send delay_ms=0 and use latency_ms for TBF's queueing "
                         "latency", r.MSG_TYPE, r.request_id)


def plain(obj: Any) -> Any:
    """A dataclass tree as msgpack-ready maps, lists and scalars."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    return obj

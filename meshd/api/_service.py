"""The scheduler service: frames in, replies and events out, over an :class:`ApiBackend`.

Theory of operation
-------------------
:meth:`SchedulerService.handle` takes one raw frame and always returns one
reply frame — it never raises, whatever the bytes.  Steps:

1. :func:`~meshd.api._frame.split` checks the header (framing errors become
   error replies);
2. :func:`~meshd.api._requests.parse_request` decodes the body straight into
   the typed, bounded request (field errors likewise);
3. de-duplication: a ``request_id`` seen before returns the first reply
   (a request still in flight is waited for, not executed twice).  Final
   replies are kept in a :class:`ReplayCache` bounded by entries and by
   bytes, oldest evicted first;
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
import sys
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import msgspec
import trio

from meshd import state as st
from meshd import wire

from . import _requests as rq
from . import _services
from ._frame import RESPONSE_FLAG, STATE_ERROR_OFFSET, ApiError, FrameError, pack, split

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

    def check_mtu(self, network: str, mode: str, mtu: int | None, req: Any) -> int:
        """The MTU for ``network`` of ``mode`` (``mtu``, or the mode's default when None); refuse
        (FrameError MTU_TOO_LARGE) one that some member's underlay cannot carry."""

    def check_mode(self, network: str, mode: str, host: str | None, req: Any) -> None:
        """Refuse (FrameError MODE_UNSUPPORTED) a network mode the kernel of a member (``host``
        None: any member) cannot build."""

    async def resolve_container(self, req: rq.EndpointConnect, host: str) -> tuple[str, str | None]:
        """The endpoint id (full container id) and the container's name, if known, for a connect
        on ``host``.  Raises :class:`FrameError` (UNKNOWN_CONTAINER or UNKNOWN_HOST) when it cannot."""

    async def join(self, addresses: list[str]) -> dict[str, Any]:
        """Join gossip through any of ``addresses`` (local control only)."""

    async def leave(self) -> dict[str, Any]:
        """Leave the cluster gracefully (local control only)."""

    async def set_log_level(self, level: str) -> dict[str, Any]:
        """Change the running agent's log level (local control only)."""

    def is_running(self, endpoint_id: str) -> bool:
        """Whether a container of this host runs (its PID is known)."""

    def check_host(self, host: str, req: Any) -> None:
        """Refuse (FrameError UNKNOWN_HOST) a host that is not a member, unless ``req.host_expected``."""

    async def wait_endpoint_up(self, endpoint_id: str, vni: int) -> str | None:
        """Optional: wait until this host built the endpoint's interface; None, or why not."""


class ReplayCache:
    """Final replies by ``request_id``, oldest evicted first, bounded by entries and bytes.

    ``bytes`` counts each entry as the sizes of its id and reply objects plus
    :attr:`ENTRY_OVERHEAD_BYTES` for its slot in the ordered dict, so the
    bound holds for what the process really holds, whatever the ids and
    replies a client makes the host keep.
    """

    #: the ordered dict's slot and link node for one entry (CPython 3.11, 64-bit; measured in tests)
    ENTRY_OVERHEAD_BYTES = 104

    def __init__(self, *, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self._replies: OrderedDict[str, bytes] = OrderedDict()

    def __len__(self) -> int:
        return len(self._replies)

    def __contains__(self, request_id: str) -> bool:
        return request_id in self._replies

    def get(self, request_id: str) -> bytes | None:
        return self._replies.get(request_id)

    def put(self, request_id: str, reply: bytes) -> None:
        """Keep ``reply`` for ``request_id``, evicting the oldest entries beyond either bound."""
        if request_id in self._replies:
            self.bytes -= self._cost(request_id, self._replies.pop(request_id))
        self._replies[request_id] = reply
        self.bytes += self._cost(request_id, reply)
        while self._replies and (len(self._replies) > self.max_entries or self.bytes > self.max_bytes):
            self.bytes -= self._cost(*self._replies.popitem(last=False))

    def _cost(self, request_id: str, reply: bytes) -> int:
        return sys.getsizeof(request_id) + sys.getsizeof(reply) + self.ENTRY_OVERHEAD_BYTES


@dataclasses.dataclass(frozen=True, slots=True)
class Refused:
    """Why a request was refused, as its error reply says."""

    msg_type: int  #: the request's type
    request_id: str
    code: int
    message: str


@dataclasses.dataclass(frozen=True, slots=True)
class Reply:
    """One reply frame and, for an error reply made now, its :class:`Refused` (a replayed
    reply carries none: its first answer told it)."""

    frame: bytes
    refused: Refused | None = None


class SchedulerService:
    """Turns scheduler frames into replies; see the module docstring.

    Args:
      backend: commits commands and answers queries.
      max_frame_bytes: larger request frames are refused (OVERSIZED).
      replay_entries, replay_bytes: bounds of the :class:`ReplayCache` of final
        replies (retries with the same ``request_id`` within them get the first
        reply again).
      control: serve CONTROL_* requests (the root-only local socket).
    """

    def __init__(self, backend: ApiBackend, *, max_frame_bytes: int = 64 << 10, replay_entries: int = 10_000,
                 replay_bytes: int = 8 << 20, control: bool = False) -> None:
        self.backend = backend
        self.control = control
        self.max_frame_bytes = max_frame_bytes
        self.replays = ReplayCache(max_entries=replay_entries, max_bytes=replay_bytes)
        self._inflight: dict[str, trio.Event] = {}
        self.counters: Counter[str] = Counter()
        self._commands: dict[type, Callable[[Any], Awaitable[Any]]] = {
            rq.NetworkCreate: self._network_create, rq.NetworkDelete: self._network_delete,
            rq.NetworkUpdate: self._network_update, rq.EndpointConnect: self._connect,
            rq.EndpointDisconnect: self._disconnect, rq.EndpointMove: self._move,
            rq.QosSet: self._qos_set, rq.PolicyAdd: self._policy_add, rq.PolicyDelete: self._policy_delete,
            rq.ControlJoin: lambda r: self.backend.join(r.addresses), rq.ControlLeave: lambda r: self.backend.leave(),
            rq.ControlLogLevel: lambda r: self.backend.set_log_level(r.level),
            rq.ServicePublish: lambda r: _services.publish(self, r),
            rq.ServiceUnpublish: lambda r: _services.unpublish(self, r),
        }
        self._queries: dict[type, Callable[[Any], Any]] = {
            rq.NetworkList: self._networks, rq.QueryNetworks: self._networks,
            rq.PolicyList: self._policies, rq.QueryEndpoints: self._endpoints,
            rq.QueryMembers: lambda r: {"members": self.backend.members()},
            rq.QueryStatus: lambda r: self.backend.status(),
            rq.ServiceQuery: lambda r: _services.query(self, r),
        }

    def statistics(self) -> dict[str, int]:
        return {**self.counters, "replay_entries": len(self.replays), "replay_bytes": self.replays.bytes}

    async def handle(self, frame: bytes, *, require_request_id: bool = True) -> bytes:
        """One reply frame for one request frame.  Never raises (but Cancelled)."""
        return (await self.handle_reply(frame, require_request_id=require_request_id)).frame

    async def handle_reply(self, frame: bytes, *, require_request_id: bool = True) -> Reply:
        """:meth:`handle`, with the refusal (if any) beside the reply frame."""
        msg_type, request_id = 0, ""
        try:
            msg_type, body = split(frame, max_bytes=self.max_frame_bytes)
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

    async def _deduplicated(self, req: Any, msg_type: int) -> Reply:
        rid = req.request_id
        done = self.replays.get(rid) if rid else None
        if done is not None:
            self.counters["deduplicated"] += 1
            return Reply(done)  # the first reply told its refusal
        if rid and rid in self._inflight:
            self.counters["deduplicated"] += 1
            await self._inflight[rid].wait()
            done = self.replays.get(rid)
            return Reply(done) if done is not None else await self._deduplicated(req, msg_type)
        if rid:
            self._inflight[rid] = trio.Event()
        try:
            reply, final = await self._run(req, msg_type)
            if rid and final:
                self.replays.put(rid, reply.frame)
            return reply
        finally:
            if rid:
                self._inflight.pop(rid).set()

    async def _run(self, req: Any, msg_type: int) -> tuple[Reply, bool]:
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
        mtu = self.backend.check_mtu(r.name, r.mode, r.mtu, r)
        self.backend.check_mode(r.name, r.mode, None, r)
        return await self.backend.execute(st.CreateNetwork(
            name=r.name, tenant=r.tenant, subnet=r.subnet, gateway=r.gateway, vni=r.vni, mode=r.mode, mtu=mtu,
            egress_kbit=r.egress_kbit, external=r.external, labels=dict(r.labels), options=dict(r.options)))

    async def _network_delete(self, r: rq.NetworkDelete) -> Any:
        return await self.backend.execute(st.DeleteNetwork(name=r.name, force=r.force))

    async def _network_update(self, r: rq.NetworkUpdate) -> Any:
        if r.mtu is not None:
            self.backend.check_mtu(r.name, self.backend.state().mode_of(r.name) or st.Mode.VXLAN, r.mtu, r)
        return await self.backend.execute(st.UpdateNetwork(
            name=r.name, mtu=r.mtu, egress_kbit=r.egress_kbit, external=r.external, labels=r.labels))

    async def _connect(self, r: rq.EndpointConnect) -> Any:
        _refuse_delay(r)
        host = r.host or self.backend.local_host
        self._check_mode_on(r.network, host, r)
        endpoint_id, name = await self.backend.resolve_container(r, host)
        qos = st.qos_with_defaults(r.bandwidth_kbit, r.burst_bytes, r.latency_ms)
        return await self.backend.execute(st.Connect(endpoint_id=endpoint_id, network=r.network, host=host, ip=r.ip,
                                                     mac=r.mac, qos=qos, name=name or r.container_name or None))

    async def _disconnect(self, r: rq.EndpointDisconnect) -> Any:
        endpoint_id = self._endpoint_id(r.container_id, r)
        return await self.backend.execute(st.Disconnect(endpoint_id=endpoint_id, network=r.network))

    async def _move(self, r: rq.EndpointMove) -> Any:
        endpoint_id = self._endpoint_id(r.container_id, r)
        self.backend.check_host(r.host, r)
        for network in self.backend.state().networks_of(endpoint_id):
            self._check_mode_on(network, r.host, r)
        return await self.backend.execute(st.MoveEndpoint(endpoint_id=endpoint_id, host=r.host))

    async def _qos_set(self, r: rq.QosSet) -> Any:
        _refuse_delay(r)
        qos = st.qos_with_defaults(r.bandwidth_kbit, r.burst_bytes, r.latency_ms)
        endpoint_id = self._endpoint_id(r.container_id, r)
        return await self.backend.execute(st.SetQos(endpoint_id=endpoint_id, network=r.network, qos=qos))

    def _check_mode_on(self, network: str, host: str, r: Any) -> None:
        """A connect or move to ``host`` of a network whose mode that host cannot build is refused;
        a network that does not exist is left to the state to name."""
        mode = self.backend.state().mode_of(network)
        if mode is not None:
            self.backend.check_mode(network, mode, host, r)

    def _endpoint_id(self, ref: str, r: Any) -> str:
        """The endpoint a request names by container id, name or unique id prefix (any host's).

        A ``ref`` that names nothing is passed on: the state answers which network it is not in.
        """
        ids = self.backend.state().find_endpoints(ref)
        if len(ids) > 1:
            raise FrameError(ApiError.INVALID_VALUE, f"{ref!r} names {len(ids)} containers "
                             f"({', '.join(i[:12] for i in ids[:5])}{', ...' if len(ids) > 5 else ''}): "
                             "give more of the id, or the full id", r.MSG_TYPE, r.request_id)
        return ids[0] if ids else ref

    async def _policy_add(self, r: rq.PolicyAdd) -> Any:
        return await self.backend.execute(
            st.AddPolicy(kind=r.kind, network=r.network, peer=r.peer, policy_id=r.policy_id))

    async def _policy_delete(self, r: rq.PolicyDelete) -> Any:
        return await self.backend.execute(st.RemovePolicy(policy_id=r.policy_id))

    # --- queries --------------------------------------------------------------

    def _networks(self, r: Any) -> dict[str, Any]:
        return {"networks": [
            {**plain(i.network), "used": i.used, "free": i.free, "hosts": list(i.hosts)}
            for i in self.backend.state().networks(tenant=r.tenant)]}

    def _policies(self, r: rq.PolicyList) -> dict[str, Any]:
        return {"policies": [plain(p) for p in self.backend.state().policies(network=r.network)]}

    def _endpoints(self, r: rq.QueryEndpoints) -> dict[str, Any]:
        """The endpoints, each with ``running``: whether its container runs, as this host knows it
        (true/false for this host's containers, null for other hosts')."""
        here = self.backend.local_host
        return {"endpoints": [
            {**plain(e), "running": self.backend.is_running(e.endpoint_id) if e.host == here else None}
            for e in self.backend.state().endpoints(host=r.host, network=r.network)]}

    # --- replies ----------------------------------------------------------------

    def _ok(self, msg_type: int, request_id: str, result: Any) -> Reply:
        return Reply(pack(msg_type | RESPONSE_FLAG, {"ok": True, "request_id": request_id, "result": result}))

    def _error(self, msg_type: int, request_id: str, code: int, message: str) -> Reply:
        refused = Refused(msg_type & ~RESPONSE_FLAG & 0xFFFF_FFFF, request_id, int(code), message)
        return Reply(pack(refused.msg_type | RESPONSE_FLAG, {
            "ok": False, "request_id": request_id, "error": {"code": refused.code, "message": message}}), refused)


def _refuse_delay(r: rq.EndpointConnect | rq.QosSet) -> None:
    if r.delay_ms:
        raise FrameError(ApiError.INVALID_VALUE, f"delay_ms={r.delay_ms} needs the netem qdisc, which meshd does not "
                         "configure (and this kernel lacks); send delay_ms=0 and use latency_ms for TBF's queueing "
                         "latency", r.MSG_TYPE, r.request_id)


_SCALARS = frozenset({str, int, float, bool, bytes})


def plain(obj: Any) -> Any:
    """A tree of dataclasses and msgspec Structs as msgpack-ready maps, lists and scalars.

    A wire message's ``version`` (a codec detail) is left out.
    """
    if obj is None or type(obj) in _SCALARS:  # most leaves: answered before the six checks below
        return obj
    if isinstance(obj, msgspec.Struct):
        skip = "version" if isinstance(obj, wire.Message) else None
        return {name: plain(getattr(obj, name)) for name in obj.__struct_fields__ if name != skip}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    return obj

"""Typed scheduler requests: one frozen dataclass per message type, parsed strictly.

A request body is a msgpack map.  :func:`parse_request` checks it against the
dataclass of its type: every required field present, every value of the
declared type, no unknown field (a misspelt ``netwrok`` is an error, not a
silently ignored key).  ``request_id`` is common to all requests.

The seed's ``SZmqConnection`` maps onto :class:`EndpointConnect`:
``ID`` → ``container_id``, ``Name`` → ``container_name``, ``PID`` → ``pid``,
``RequestIP`` → ``ip``, ``Network`` → ``network``, ``Bandwidth`` →
``bandwidth_kbit``, ``Delay`` → ``delay_ms`` (refused: it needs netem).
``latency_ms`` is TBF's latency (seed 002 ``LATENCY``).  ``OvsPortID`` has no meaning
without Open vSwitch; the rx/tx totals and rates are *outputs*, published in
``EVENT_ENDPOINT_STATS``.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from dataclasses import dataclass, field
from typing import Any

from ._frame import ApiError, FrameError, MsgType

_REQUESTS: dict[int, type] = {}


def request(msg_type: MsgType):  # noqa: ANN201 - class decorator
    def register(cls: type) -> type:
        cls = dataclass(frozen=True, slots=True, kw_only=True)(cls)
        cls.MSG_TYPE = msg_type  # type: ignore[attr-defined]
        _REQUESTS[msg_type] = cls
        return cls

    return register


@request(MsgType.NETWORK_CREATE)
class NetworkCreate:
    request_id: str = ""
    name: str
    subnet: str
    tenant: str = "default"
    gateway: str | None = None
    vni: int | None = None
    mode: str = "vxlan"
    mtu: int = 1450
    egress_kbit: int = 0
    external: bool = False
    labels: dict[str, str] = field(default_factory=dict)


@request(MsgType.NETWORK_DELETE)
class NetworkDelete:
    request_id: str = ""
    name: str
    force: bool = False


@request(MsgType.NETWORK_UPDATE)
class NetworkUpdate:
    request_id: str = ""
    name: str
    mtu: int | None = None
    egress_kbit: int | None = None
    external: bool | None = None
    labels: dict[str, str] | None = None


@request(MsgType.NETWORK_LIST)
class NetworkList:
    request_id: str = ""
    tenant: str | None = None


@request(MsgType.QUERY_NETWORKS)
class QueryNetworks:
    request_id: str = ""
    tenant: str | None = None


@request(MsgType.ENDPOINT_CONNECT)
class EndpointConnect:
    request_id: str = ""
    container_id: str
    network: str
    container_name: str | None = None
    pid: int | None = None
    host: str | None = None
    ip: str | None = None
    mac: str | None = None
    bandwidth_kbit: int = 0
    burst_bytes: int = 0
    latency_ms: int = 0
    delay_ms: int = 0


@request(MsgType.ENDPOINT_DISCONNECT)
class EndpointDisconnect:
    request_id: str = ""
    container_id: str
    network: str


@request(MsgType.ENDPOINT_MOVE)
class EndpointMove:
    request_id: str = ""
    container_id: str
    host: str


@request(MsgType.QOS_SET)
class QosSet:
    request_id: str = ""
    container_id: str
    network: str
    bandwidth_kbit: int = 0
    burst_bytes: int = 0
    latency_ms: int = 0
    delay_ms: int = 0


@request(MsgType.POLICY_ADD)
class PolicyAdd:
    request_id: str = ""
    kind: str
    network: str
    peer: str | None = None
    policy_id: str | None = None


@request(MsgType.POLICY_DELETE)
class PolicyDelete:
    request_id: str = ""
    policy_id: str


@request(MsgType.POLICY_LIST)
class PolicyList:
    request_id: str = ""
    network: str | None = None


@request(MsgType.QUERY_MEMBERS)
class QueryMembers:
    request_id: str = ""


@request(MsgType.QUERY_STATUS)
class QueryStatus:
    request_id: str = ""


@request(MsgType.QUERY_ENDPOINTS)
class QueryEndpoints:
    request_id: str = ""
    host: str | None = None
    network: str | None = None


@request(MsgType.CONTROL_JOIN)
class ControlJoin:
    request_id: str = ""
    addresses: list = field(default_factory=list)


@request(MsgType.CONTROL_LEAVE)
class ControlLeave:
    request_id: str = ""


@request(MsgType.CONTROL_LOG_LEVEL)
class ControlLogLevel:
    request_id: str = ""
    level: str


#: request types only the local control socket serves
CONTROL_ONLY = (ControlJoin, ControlLeave, ControlLogLevel)


def request_types() -> dict[int, type]:
    """``{message type: request class}`` (for docs and tests)."""
    return dict(_REQUESTS)


def parse_request(msg_type: int, body: dict[str, Any]) -> Any:
    """Build the typed request of ``msg_type`` from a decoded body map.

    Raises:
      FrameError: unknown type, missing/unknown field or wrong value type; the
        message names the field and what it must be.
    """
    request_id = body.get("request_id", "")
    request_id = request_id if isinstance(request_id, str) else ""
    cls = _REQUESTS.get(msg_type)
    if cls is None:
        raise FrameError(ApiError.UNKNOWN_TYPE, f"unknown request type {msg_type}; see docs/api.md for the types",
                         msg_type, request_id)
    hints, names = _schema(cls)
    unknown = sorted(set(body) - set(names))
    if unknown:
        raise FrameError(ApiError.UNKNOWN_FIELD,
                         f"{cls.__name__}: unknown field(s) {', '.join(map(repr, unknown))}; "
                         f"allowed: {', '.join(names)}", msg_type, request_id)
    kwargs = {}
    for name, f in names.items():
        if name not in body:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise FrameError(ApiError.MISSING_FIELD, f"{cls.__name__}: field {name!r} is required",
                                 msg_type, request_id)
            continue
        problem = _type_problem(hints[name], body[name])
        if problem:
            raise FrameError(ApiError.WRONG_TYPE, f"{cls.__name__}: field {name!r} {problem}", msg_type, request_id)
        kwargs[name] = body[name]
    return cls(**kwargs)


@functools.cache
def _schema(cls: type) -> tuple[dict[str, Any], dict[str, dataclasses.Field]]:
    """(type hints, fields by name) of a request class: resolved once, not per request."""
    return typing.get_type_hints(cls), {f.name: f for f in dataclasses.fields(cls)}


def _type_problem(hint: Any, value: Any) -> str:
    """'' when ``value`` fits ``hint``, else what it must be."""
    args = typing.get_args(hint)
    if type(None) in args:
        if value is None:
            return ""
        hint = next(a for a in args if a is not type(None))
    if hint is list:
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return ""
        return "must be a non-empty array of strings"
    if typing.get_origin(hint) is dict:
        if isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            return ""
        return "must be a map of strings to strings"
    if hint is int and type(value) is int:
        return "" if value >= 0 else "must not be negative"
    if type(value) is hint:
        return ""
    return f"must be {'an integer' if hint is int else 'a ' + hint.__name__}, got {type(value).__name__}"

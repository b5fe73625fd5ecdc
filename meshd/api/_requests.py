"""Typed scheduler requests: one msgspec Struct per message type, decoded strictly, every input bounded.

A request body is a msgpack map.  :func:`parse_request` decodes it straight
into the Struct of its type: every required field present, every value of
the declared type and within its bounds (``msgspec.Meta``), no unknown field
(a misspelt ``netwrok`` is an error, not a silently ignored key).  Every
string, integer, list and map has a limit, so what one request can make a
host hold is bounded whatever a client sends; docs/api.md lists them
("Limits").  ``request_id`` is common to all requests.

A refused request becomes one :class:`FrameError` line naming the message
type and the field as the API names them, and the fix::

    ENDPOINT_CONNECT: field 'bandwidth_kbit' is out of range: use an integer in 0..100000000

The seed's ``SZmqConnection`` maps onto :class:`EndpointConnect`:
``ID`` → ``container_id``, ``Name`` → ``container_name``, ``PID`` → ``pid``,
``RequestIP`` → ``ip``, ``Network`` → ``network``, ``Bandwidth`` →
``bandwidth_kbit``, ``Delay`` → ``delay_ms`` (refused: it needs netem).
``latency_ms`` is TBF's latency (seed 002 ``LATENCY``).  ``OvsPortID`` has no meaning
without Open vSwitch; the rx/tx totals and rates are *outputs*, published in
``EVENT_ENDPOINT_STATS``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, ClassVar, TypeVar

import msgspec
from msgspec import Meta

from meshd import state as st

from ._frame import ApiError, FrameError, MsgType

# --- limits (docs/api.md "Limits" lists each; tests/unit/api/test_limits.py keeps them in step)

#: ``request_id``: the replay cache keeps one per request, so it is short (a UUID is 32).
MAX_REQUEST_ID = 128
#: network and tenant names (the state's rule: 1-64 letters, digits, ``_ . -``)
MAX_NAME = 64
#: container ids, hosts, policy ids (the state's rule: 1-128 printable ASCII)
MAX_ID = 128
#: container names (Docker's are shorter)
MAX_CONTAINER_NAME = 255
#: textual addresses: IPs, CIDRs, gateways (IPv6 text included, so the state can say it is unsupported)
MAX_ADDRESS = 64
#: a MAC as ``aa:bb:cc:dd:ee:ff``
MAX_MAC = 17
#: labels of a network (as the state keeps them)
MAX_LABELS, MAX_LABEL_KEY, MAX_LABEL_VALUE = 64, 63, 255
#: CONTROL_JOIN addresses: how many, and each ``host`` or ``host:port``
MAX_JOIN_ADDRESSES, MAX_JOIN_ADDRESS = 64, 255
#: Linux's largest PID (``PID_MAX_LIMIT``); 0 means "not given"
PID_MAX = 4_194_304

RequestId = Annotated[str, Meta(max_length=MAX_REQUEST_ID)]
Name = Annotated[str, Meta(min_length=1, max_length=MAX_NAME)]
Ident = Annotated[str, Meta(min_length=1, max_length=MAX_ID)]
Address = Annotated[str, Meta(min_length=1, max_length=MAX_ADDRESS)]
Mac = Annotated[str, Meta(min_length=1, max_length=MAX_MAC)]
LabelKey = Annotated[str, Meta(min_length=1, max_length=MAX_LABEL_KEY)]
Labels = Annotated[dict[LabelKey, Annotated[str, Meta(max_length=MAX_LABEL_VALUE)]], Meta(max_length=MAX_LABELS)]
#: a network's mode options (``parent``, ``macvlan_mode``, ``ip_range``, ``vlan``); the state checks them
Options = Annotated[dict[Annotated[str, Meta(min_length=1, max_length=32)], Annotated[str, Meta(max_length=64)]],
                    Meta(max_length=8)]
Vni = Annotated[int, Meta(ge=st.VNI_MIN, le=st.VNI_MAX)]
Mtu = Annotated[int, Meta(ge=st.MTU_MIN, le=st.MTU_MAX)]
Kbit = Annotated[int, Meta(ge=0, le=st.RATE_MAX_KBIT)]
BurstBytes = Annotated[int, Meta(ge=0, le=st.BURST_MAX_BYTES)]
Millis = Annotated[int, Meta(ge=0, le=st.LATENCY_MAX_MS)]
Pid = Annotated[int, Meta(ge=0, le=PID_MAX)]
#: a network namespace by path (``/run/netns/x``, ``/proc/<pid>/ns/net``, Docker's sandbox key)
MAX_NETNS_PATH = 255
NetnsPath = Annotated[str, Meta(min_length=2, max_length=MAX_NETNS_PATH, pattern=r"^/[^\x00]*$")]
#: a Linux interface name (``IFNAMSIZ`` - 1 characters, no ``/``, ``:`` or white space)
IfName = Annotated[str, Meta(min_length=1, max_length=15, pattern=r"^[^/:\s]+$")]
JoinAddresses = Annotated[
    list[Annotated[str, Meta(min_length=1, max_length=MAX_JOIN_ADDRESS)]],
    Meta(min_length=1, max_length=MAX_JOIN_ADDRESSES),
]


class Request(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every request; ``MSG_TYPE`` is set by :func:`request`."""

    MSG_TYPE: ClassVar[MsgType]
    request_id: RequestId = ""


_REQUESTS: dict[int, type[Request]] = {}
_DECODERS: dict[int, msgspec.msgpack.Decoder[Any]] = {}
R = TypeVar("R", bound=type[Request])


def request(msg_type: MsgType) -> Callable[[R], R]:
    def register(cls: R) -> R:
        cls.MSG_TYPE = msg_type
        _REQUESTS[msg_type] = cls
        _DECODERS[msg_type] = msgspec.msgpack.Decoder(cls)
        return cls

    return register


@request(MsgType.NETWORK_CREATE)
class NetworkCreate(Request, frozen=True):
    name: Name
    subnet: Address
    tenant: Name = "default"
    gateway: Address | None = None
    vni: Vni | None = None
    mode: st.Mode = st.Mode.VXLAN
    #: None: 1450 for vxlan and routed, 1500 (or the smallest member underlay) for the macvlan modes
    mtu: Mtu | None = None
    egress_kbit: Kbit = 0
    external: bool = False
    labels: Labels = {}
    options: Options = {}


@request(MsgType.NETWORK_DELETE)
class NetworkDelete(Request, frozen=True):
    name: Name
    force: bool = False


@request(MsgType.NETWORK_UPDATE)
class NetworkUpdate(Request, frozen=True):
    name: Name
    mtu: Mtu | None = None
    egress_kbit: Kbit | None = None
    external: bool | None = None
    labels: Labels | None = None


@request(MsgType.NETWORK_LIST)
class NetworkList(Request, frozen=True):
    tenant: Name | None = None


@request(MsgType.QUERY_NETWORKS)
class QueryNetworks(Request, frozen=True):
    tenant: Name | None = None


@request(MsgType.ENDPOINT_CONNECT)
class EndpointConnect(Request, frozen=True):
    container_id: Ident
    network: Name
    container_name: Annotated[str, Meta(max_length=MAX_CONTAINER_NAME)] | None = None
    pid: Pid | None = None
    #: the container's netns by path, for containers Docker does not run (CNI, the Docker network driver)
    netns: NetnsPath | None = None
    #: its interface's name in that netns (None: ``eth<n>`` by the order of its networks)
    ifname: IfName | None = None
    host: Ident | None = None
    ip: Address | None = None
    mac: Mac | None = None
    bandwidth_kbit: Kbit = 0
    burst_bytes: BurstBytes = 0
    latency_ms: Millis = 0
    delay_ms: Millis = 0
    #: ``host`` is not a member yet (it joins later): allocate for it anyway
    host_expected: bool = False


@request(MsgType.ENDPOINT_DISCONNECT)
class EndpointDisconnect(Request, frozen=True):
    container_id: Ident
    network: Name


@request(MsgType.ENDPOINT_MOVE)
class EndpointMove(Request, frozen=True):
    container_id: Ident
    host: Ident
    #: ``host`` is not a member yet (it joins later): move there anyway
    host_expected: bool = False


@request(MsgType.QOS_SET)
class QosSet(Request, frozen=True):
    container_id: Ident
    network: Name
    bandwidth_kbit: Kbit = 0
    burst_bytes: BurstBytes = 0
    latency_ms: Millis = 0
    delay_ms: Millis = 0


@request(MsgType.POLICY_ADD)
class PolicyAdd(Request, frozen=True):
    kind: st.PolicyKind
    network: Name
    peer: Name | None = None
    policy_id: Ident | None = None


@request(MsgType.POLICY_DELETE)
class PolicyDelete(Request, frozen=True):
    policy_id: Ident


@request(MsgType.POLICY_LIST)
class PolicyList(Request, frozen=True):
    network: Name | None = None


@request(MsgType.QUERY_MEMBERS)
class QueryMembers(Request, frozen=True):
    pass


@request(MsgType.QUERY_STATUS)
class QueryStatus(Request, frozen=True):
    pass


@request(MsgType.QUERY_ENDPOINTS)
class QueryEndpoints(Request, frozen=True):
    host: Ident | None = None
    network: Name | None = None


@request(MsgType.CONTROL_JOIN)
class ControlJoin(Request, frozen=True):
    addresses: JoinAddresses


@request(MsgType.CONTROL_LEAVE)
class ControlLeave(Request, frozen=True):
    pass


@request(MsgType.CONTROL_LOG_LEVEL)
class ControlLogLevel(Request, frozen=True):
    #: debug, info, warning or error (the agent names the choices when it is another)
    level: Annotated[str, Meta(min_length=1, max_length=16)]


#: a service name: one DNS label (the state checks the characters)
ServiceName = Annotated[str, Meta(min_length=1, max_length=63)]


@request(MsgType.SERVICE_PUBLISH)
class ServicePublish(Request, frozen=True):
    """Publish container ``container_id`` (id, name or id prefix) as an entry of service ``name``;
    ``network`` may be left out when the container is in exactly one network."""

    name: ServiceName
    container_id: Ident
    port: Annotated[int, Meta(ge=1, le=65_535)]
    network: Name | None = None
    weight: Annotated[int, Meta(ge=0, le=65_535)] = 1
    ttl_s: Annotated[int, Meta(ge=1, le=86_400)] = 30
    check: Annotated[str, Meta(min_length=1, max_length=16)] = "running"
    interval_s: Annotated[int, Meta(ge=1, le=3_600)] = 5


@request(MsgType.SERVICE_UNPUBLISH)
class ServiceUnpublish(Request, frozen=True):
    """Remove one entry (``container_id``) or every entry of service ``name`` in ``network``
    (left out: the one network that has a service of that name)."""

    name: ServiceName
    network: Name | None = None
    container_id: Ident | None = None


@request(MsgType.SERVICE_QUERY)
class ServiceQuery(Request, frozen=True):
    tenant: Name | None = None
    network: Name | None = None
    name: ServiceName | None = None


#: request types only the local control socket serves
CONTROL_ONLY = (ControlJoin, ControlLeave, ControlLogLevel)


def request_types() -> dict[int, type[Request]]:
    """``{message type: request class}`` (for docs and tests)."""
    return dict(_REQUESTS)


def parse_request(msg_type: int, body: bytes | memoryview | Mapping[str, Any]) -> Request:
    """The typed request of ``msg_type`` from its msgpack body (or an already decoded map).

    Raises:
      FrameError: unknown type, body not a msgpack map, a field missing, unknown,
        of the wrong type or out of its bounds; the message names the field
        and the fix.
    """
    cls = _REQUESTS.get(msg_type)
    if cls is None:
        raise FrameError(ApiError.UNKNOWN_TYPE, f"unknown request type {msg_type}; see docs/api.md for the types",
                         msg_type, _request_id_of(body))
    try:
        if isinstance(body, Mapping):
            return msgspec.convert(body, cls, strict=True)
        return _DECODERS[msg_type].decode(body)
    except msgspec.ValidationError as exc:
        code, message = explain(cls, str(exc))
        raise FrameError(code, message, msg_type, _request_id_of(body)) from None
    except msgspec.DecodeError as exc:
        raise FrameError(ApiError.NOT_MSGPACK, f"{MsgType(msg_type).name}: body is not valid msgpack ({exc})",
                         msg_type) from None


class _RequestIdOnly(msgspec.Struct):
    request_id: RequestId = ""


def _request_id_of(body: bytes | memoryview | Mapping[str, Any]) -> str:
    """The body's ``request_id`` for an error reply, or "" when it is itself unusable."""
    try:
        if isinstance(body, Mapping):
            return msgspec.convert(body, _RequestIdOnly, strict=True).request_id
        return msgspec.msgpack.decode(body, type=_RequestIdOnly).request_id
    except (msgspec.DecodeError, msgspec.ValidationError):
        return ""


# --- msgspec's ValidationError text -> (ApiError, one line naming the field and the fix)

_MISSING = re.compile(r"Object missing required field `(?P<field>[^`]+)`")
_UNKNOWN = re.compile(r"Object contains unknown field `(?P<field>[^`]*)`")
_WRONG_TYPE = re.compile(r"Expected `[^`]+`, got `(?P<got>[^`]+)`")
_FIELD = re.compile(r"`\$\.(?P<field>\w+)")


def explain(cls: type[Request], error: str) -> tuple[ApiError, str]:
    """Translate one msgspec validation error about a ``cls`` body into (code, message)."""
    where = MsgType(cls.MSG_TYPE).name
    if m := _MISSING.search(error):
        name = m["field"]
        return ApiError.MISSING_FIELD, f"{where}: field '{name}' is required: give {_rule(cls, name)}"
    if m := _UNKNOWN.search(error):
        allowed = ", ".join(cls.__struct_fields__)
        return ApiError.UNKNOWN_FIELD, f"{where}: field '{m['field'][:64]}' is unknown: use only {allowed}"
    field = _FIELD.search(error)
    if field is None and "`key` in `$`" in error:
        return ApiError.NOT_MSGPACK, f"{where}: the body's map keys must be strings (field names)"
    if field is None:
        kind = _WRONG_TYPE.search(error)
        what = _KIND_NAMES.get(kind["got"], kind["got"]) if kind else "something else"
        return ApiError.NOT_A_MAP, f"{where}: the body must be a msgpack map of fields, got {what}"
    name = field["field"]
    if m := _WRONG_TYPE.search(error):
        got = _KIND_NAMES.get(m["got"], m["got"])
        return ApiError.WRONG_TYPE, f"{where}: field '{name}' must be {_rule(cls, name)}, got {got}"
    return ApiError.INVALID_VALUE, f"{where}: field '{name}' {_problem(error, name)}: use {_rule(cls, name)}"


_KIND_NAMES = {"int": "an integer", "str": "a string", "bool": "a boolean", "float": "a float", "null": "nil",
               "array": "an array", "object": "a map", "bytes": "binary data"}  # fmt: skip


def _problem(error: str, name: str) -> str:
    """What is wrong, from a msgspec bound error about field ``name``."""
    if error.startswith("Invalid enum value"):
        return "has an unknown value"
    if "of length" not in error:
        return "is out of range"
    size = "long" if "<=" in error else "short"
    if "`key` in" in error:
        return f"has a key that is too {size}"
    if f"`$.{name}[" in error:
        return f"has an entry that is too {size}"
    if error.startswith(("Expected `object`", "Expected `array`")):
        return "has too many entries" if size == "long" else "is empty"
    return f"is too {size}"


def _rule(cls: type[Request], name: str) -> str:
    """What field ``name`` of ``cls`` accepts, in words (from its type and bounds)."""
    # a request class is a Struct, whose type_info is a StructType (type_info is typed as any msgspec type)
    for f in msgspec.inspect.type_info(cls).fields:  # type: ignore[attr-defined]
        if f.name == name:
            return _describe(f.type)
    return "a known field"


def _describe(t: Any) -> str:
    i = msgspec.inspect
    if isinstance(t, i.UnionType):
        parts = [_describe(x) for x in t.types if not isinstance(x, i.NoneType)]
        return " or ".join(parts) + (" (or nil)" if any(isinstance(x, i.NoneType) for x in t.types) else "")
    if isinstance(t, i.IntType):
        return f"an integer in {t.ge}..{t.le}"
    if isinstance(t, i.StrType):
        return f"a string of {_length(t)} characters"
    if isinstance(t, i.BoolType):
        return "true or false"
    if isinstance(t, i.EnumType):
        return "one of " + ", ".join(repr(m.value) for m in t.cls)
    if isinstance(t, i.DictType):
        return (f"a map of at most {t.max_length} entries, keys of {_length(t.key_type)} characters, "
                f"values of {_length(t.value_type)} characters")
    if isinstance(t, i.ListType):
        return f"an array of {_length(t)} strings of {_length(t.item_type)} characters"
    return "a value of the documented type"


def _length(t: Any) -> str:
    low = t.min_length or 0
    return f"at most {t.max_length}" if not low else f"{low}..{t.max_length}"

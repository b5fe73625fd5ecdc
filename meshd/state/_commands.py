"""Commands the Raft log carries, their results, and the typed error.

Every command is a frozen dataclass registered in :mod:`meshd.wire` under a tag
in 128..191 (the range this module owns), so the Raft log stores it as
``[tag, version, fields...]`` msgpack.  Results use tags 160..190 and
:class:`CommandError` tag 191.  Tags are part of the log format: append only.

Constructors check nothing beyond types (the wire decoder checks those); every
rule about the *state* (unknown network, address taken, ...) is checked when
the command is executed, so an invalid command becomes a :class:`CommandError`
that every replica computes identically, and changes nothing.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, Callable

from meshd import wire

from ._types import NO_QOS, Mode, PolicyKind, Qos


def _frozen(cls):  # noqa: ANN001, ANN202 - a class decorator
    return dataclasses.dataclass(frozen=True, slots=True, kw_only=False)(cls)


# --- commands ----------------------------------------------------------------


@wire.message(128)
@_frozen
class CreateNetwork:
    """Create a tenant network.  ``gateway`` defaults to the first host address,
    ``vni`` to the next free one; ``egress_kbit`` 0 means unlimited."""

    name: str
    tenant: str
    subnet: str
    gateway: str | None = None
    vni: int | None = None
    mode: Mode = Mode.VXLAN
    mtu: int = 1450
    egress_kbit: int = 0
    external: bool = False
    labels: dict[str, str] = dataclasses.field(default_factory=dict)


@wire.message(129)
@_frozen
class DeleteNetwork:
    """Delete a network; refused while it has endpoints unless ``force``."""

    name: str
    force: bool = False


@wire.message(130)
@_frozen
class UpdateNetwork:
    """Change a network's mutable fields; None leaves a field as it is."""

    name: str
    mtu: int | None = None
    egress_kbit: int | None = None
    external: bool | None = None
    labels: dict[str, str] | None = None


@wire.message(131)
@_frozen
class Connect:
    """Attach container ``endpoint_id`` on ``host`` to ``network``.

    ``ip`` requests a specific address (else the next free one); ``mac`` a
    specific MAC (else one derived from the IP).  Connecting again with the same
    host and compatible ip/mac returns the existing attachment (idempotent).
    """

    endpoint_id: str
    network: str
    host: str
    ip: str | None = None
    mac: str | None = None
    qos: Qos = NO_QOS


@wire.message(132)
@_frozen
class Disconnect:
    endpoint_id: str
    network: str


@wire.message(133)
@_frozen
class MoveEndpoint:
    """Move container ``endpoint_id`` (all its networks) to ``host``, keeping IPs and MACs."""

    endpoint_id: str
    host: str


@wire.message(134)
@_frozen
class SetQos:
    endpoint_id: str
    network: str
    qos: Qos


@wire.message(135)
@_frozen
class AddPolicy:
    """Add an isolation policy; ``peer`` is required for the deny-between kinds
    and refused otherwise.  ``policy_id`` defaults to ``policy-<log index>``."""

    kind: PolicyKind
    network: str
    peer: str | None = None
    policy_id: str | None = None


@wire.message(136)
@_frozen
class RemovePolicy:
    policy_id: str


@wire.message(137)
@_frozen
class MarkHostStale:
    """Mark (or with ``stale=False`` clear) a host as stale: its endpoints stay, no new ones go there."""

    host: str
    stale: bool = True


@wire.message(138)
@_frozen
class RemoveHost:
    """Disconnect every endpoint of ``host`` and release their addresses."""

    host: str


Command = (
    CreateNetwork
    | DeleteNetwork
    | UpdateNetwork
    | Connect
    | Disconnect
    | MoveEndpoint
    | SetQos
    | AddPolicy
    | RemovePolicy
    | MarkHostStale
    | RemoveHost
)

COMMAND_TYPES: tuple[type, ...] = Command.__args__  # type: ignore[attr-defined]


# --- results -----------------------------------------------------------------


@wire.message(160)
@_frozen
class NetworkCreated:
    name: str
    subnet: str
    gateway: str
    vni: int


@wire.message(161)
@_frozen
class NetworkDeleted:
    name: str
    endpoints_removed: int
    policies_removed: int


@wire.message(162)
@_frozen
class NetworkUpdated:
    name: str


@wire.message(163)
@_frozen
class Connected:
    """Everything a host needs to build the container's interface."""

    endpoint_id: str
    network: str
    host: str
    ip: str
    prefix_len: int
    mac: str
    gateway: str
    vni: int
    mtu: int


@wire.message(164)
@_frozen
class Disconnected:
    endpoint_id: str
    network: str
    ip: str


@wire.message(165)
@_frozen
class Moved:
    endpoint_id: str
    host: str
    old_host: str
    networks: tuple[str, ...]


@wire.message(166)
@_frozen
class QosSet:
    endpoint_id: str
    network: str


@wire.message(167)
@_frozen
class PolicyAdded:
    policy_id: str


@wire.message(168)
@_frozen
class PolicyRemoved:
    policy_id: str


@wire.message(169)
@_frozen
class HostMarked:
    host: str
    stale: bool
    endpoints: int


@wire.message(170)
@_frozen
class HostRemoved:
    host: str
    endpoints_removed: int


Result = (
    NetworkCreated
    | NetworkDeleted
    | NetworkUpdated
    | Connected
    | Disconnected
    | Moved
    | QosSet
    | PolicyAdded
    | PolicyRemoved
    | HostMarked
    | HostRemoved
)


def fast_constructor(cls: type) -> Callable[..., Any]:
    """A positional constructor for a frozen, slotted dataclass without ``__post_init__``.

    The generated ``__init__`` of a frozen dataclass looks each slot up by name
    through ``object.__setattr__``; this one calls the slot descriptors
    directly, about twice as fast (the connect hot path builds one result per
    command).  The object is the same as ``cls(*values)`` builds.
    """
    names = [f.name for f in dataclasses.fields(cls)]
    env: dict[str, Any] = {"new": object.__new__, "cls": cls}
    env.update({f"set_{n}": getattr(cls, n).__set__ for n in names})
    body = "".join(f"    set_{n}(obj, {n})\n" for n in names)
    exec(f"def make({', '.join(names)}):\n    obj = new(cls)\n{body}    return obj\n", env)  # noqa: S102
    return env["make"]


# --- errors ------------------------------------------------------------------


class ErrorCode(enum.IntEnum):
    """Why a command was rejected.  Append only: the numbers go into the log."""

    BAD_COMMAND = 1
    INVALID_FIELD = 2
    INVALID_CIDR = 3
    IPV6_UNSUPPORTED = 4
    GATEWAY_OUTSIDE_SUBNET = 5
    GATEWAY_RESERVED = 6
    SUBNET_OVERLAP = 7
    VNI_OUT_OF_RANGE = 8
    VNI_TAKEN = 9
    VNI_EXHAUSTED = 10
    DUPLICATE_NETWORK = 11
    UNKNOWN_NETWORK = 12
    NETWORK_IN_USE = 13
    INVALID_IP = 14
    IP_OUTSIDE_SUBNET = 15
    IP_RESERVED = 16
    IP_TAKEN = 17
    POOL_EXHAUSTED = 18
    INVALID_MAC = 19
    MAC_TAKEN = 20
    UNKNOWN_ENDPOINT = 21
    ALREADY_CONNECTED = 22
    HOST_MISMATCH = 23
    HOST_STALE = 24
    UNKNOWN_POLICY = 25
    DUPLICATE_POLICY = 26
    INVALID_POLICY = 27
    STALE_INDEX = 28


@wire.message(191)
@_frozen
class CommandError:
    """A rejected command: it changed nothing.  ``message`` names the object and the fix."""

    code: ErrorCode
    message: str


class Reject(Exception):
    """Raised inside the state machine while validating; becomes a :class:`CommandError`."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def error(self) -> CommandError:
        return CommandError(self.code, self.message)

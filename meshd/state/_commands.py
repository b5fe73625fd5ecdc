"""Commands the Raft log carries, their results, and the typed error.

Every command is a :class:`meshd.wire.Message` under a tag in 128..159, so
the Raft log stores it as ``[tag, version, fields...]`` msgpack; results use
tags 160..190 and :class:`CommandError` tag 191.  Tags are part of the log
format: append only.  They are built with keywords
(``Connect(endpoint_id=..., network=..., host=...)``).

Decoding checks types only, never bounds: a log entry that some version of
meshd once accepted must decode the same way on every later version, or
replicas of different versions would apply different things.  Every rule
about values and the *state* (name syntax, ranges, unknown network, address
taken, ...) is checked when the command is executed, so an invalid command
becomes a :class:`CommandError` that every replica computes identically, and
changes nothing.  (Bounds for clients are enforced earlier, by the API.)
"""

from __future__ import annotations

import enum

from meshd import wire

from ._types import NO_QOS, Mode, PolicyKind, Qos

# --- commands ----------------------------------------------------------------


@wire.message
class CreateNetwork(wire.Message, tag=128, kw_only=True, frozen=True):
    """Create a tenant network.  ``gateway`` defaults to the first host address,
    ``vni`` to the next free one; ``egress_kbit`` 0 means unlimited.  ``options``
    (version 2) are the mode's options."""

    version: wire.Version = 2
    name: str
    tenant: str
    subnet: str
    gateway: str | None = None
    vni: int | None = None
    mode: Mode = Mode.VXLAN
    mtu: int = 1450
    egress_kbit: int = 0
    external: bool = False
    labels: dict[str, str] = {}
    #: per-mode options (``parent``, ``macvlan_mode``, ``ip_range``, ``vlan``), checked by ``_options``
    options: dict[str, str] = {}


@wire.message
class DeleteNetwork(wire.Message, tag=129, kw_only=True, frozen=True):
    """Delete a network; refused while it has endpoints unless ``force``."""

    name: str
    force: bool = False


@wire.message
class UpdateNetwork(wire.Message, tag=130, kw_only=True, frozen=True):
    """Change a network's mutable fields; None leaves a field as it is."""

    name: str
    mtu: int | None = None
    egress_kbit: int | None = None
    external: bool | None = None
    labels: dict[str, str] | None = None


@wire.message
class Connect(wire.Message, tag=131, kw_only=True, frozen=True):
    """Attach container ``endpoint_id`` on ``host`` to ``network``.

    ``ip`` requests a specific address (else the next free one); ``mac`` a
    specific MAC (else one derived from the IP).  Connecting again with the same
    host and compatible ip/mac returns the existing attachment (idempotent).
    ``name`` is the container's name (version 2), kept with the endpoint so any
    host can find it by name.
    """

    version: wire.Version = 2
    endpoint_id: str
    network: str
    host: str
    ip: str | None = None
    mac: str | None = None
    qos: Qos = NO_QOS
    name: str | None = None


@wire.message
class Disconnect(wire.Message, tag=132, kw_only=True, frozen=True):
    endpoint_id: str
    network: str


@wire.message
class MoveEndpoint(wire.Message, tag=133, kw_only=True, frozen=True):
    """Move container ``endpoint_id`` (all its networks) to ``host``, keeping IPs and MACs."""

    endpoint_id: str
    host: str


@wire.message
class SetQos(wire.Message, tag=134, kw_only=True, frozen=True):
    endpoint_id: str
    network: str
    qos: Qos


@wire.message
class AddPolicy(wire.Message, tag=135, kw_only=True, frozen=True):
    """Add an isolation policy; ``peer`` is required for the deny-between kinds
    and refused otherwise.  ``policy_id`` defaults to ``policy-<log index>``."""

    kind: PolicyKind
    network: str
    peer: str | None = None
    policy_id: str | None = None


@wire.message
class RemovePolicy(wire.Message, tag=136, kw_only=True, frozen=True):
    policy_id: str


@wire.message
class MarkHostStale(wire.Message, tag=137, kw_only=True, frozen=True):
    """Mark (or with ``stale=False`` clear) a host as stale: its endpoints stay, no new ones go there."""

    host: str
    stale: bool = True


@wire.message
class RemoveHost(wire.Message, tag=138, kw_only=True, frozen=True):
    """Disconnect every endpoint of ``host`` and release their addresses."""

    host: str


@wire.message
class PublishService(wire.Message, tag=139, kw_only=True, frozen=True):
    """Publish endpoint ``endpoint_id`` of ``network`` as one entry of service ``name``.

    The address is the endpoint's; ``port`` is where it listens.  ``ttl_s`` is
    how long the entry outlives a failed host (and the DNS TTL); ``check`` is
    ``running`` (the container runs) or ``tcp`` (plus a TCP connect to the port
    every ``interval_s``).  Publishing again replaces the entry (idempotent).
    A new entry starts healthy.
    """

    name: str
    network: str
    endpoint_id: str
    port: int
    weight: int = 1
    ttl_s: int = 30
    check: str = "running"
    interval_s: int = 5


@wire.message
class UnpublishService(wire.Message, tag=140, kw_only=True, frozen=True):
    """Remove the entry of ``endpoint_id`` from service ``name`` (None: every entry)."""

    name: str
    network: str
    endpoint_id: str | None = None


@wire.message
class SetServiceHealth(wire.Message, tag=141, kw_only=True, frozen=True):
    """Record the outcome of a health check of one service entry (only changes are sent)."""

    name: str
    network: str
    endpoint_id: str
    healthy: bool


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
    | PublishService
    | UnpublishService
    | SetServiceHealth
)

COMMAND_TYPES: tuple[type, ...] = Command.__args__


# --- results -----------------------------------------------------------------


@wire.message
class NetworkCreated(wire.Message, tag=160, kw_only=True, frozen=True):
    name: str
    subnet: str
    gateway: str
    vni: int


@wire.message
class NetworkDeleted(wire.Message, tag=161, kw_only=True, frozen=True):
    name: str
    endpoints_removed: int
    policies_removed: int


@wire.message
class NetworkUpdated(wire.Message, tag=162, kw_only=True, frozen=True):
    name: str


@wire.message
class Connected(wire.Message, tag=163, kw_only=True, frozen=True):
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


@wire.message
class Disconnected(wire.Message, tag=164, kw_only=True, frozen=True):
    endpoint_id: str
    network: str
    ip: str


@wire.message
class Moved(wire.Message, tag=165, kw_only=True, frozen=True):
    endpoint_id: str
    host: str
    old_host: str
    networks: tuple[str, ...]


@wire.message
class QosUpdated(wire.Message, tag=166, kw_only=True, frozen=True):
    endpoint_id: str
    network: str


@wire.message
class PolicyAdded(wire.Message, tag=167, kw_only=True, frozen=True):
    policy_id: str


@wire.message
class PolicyRemoved(wire.Message, tag=168, kw_only=True, frozen=True):
    policy_id: str


@wire.message
class HostMarked(wire.Message, tag=169, kw_only=True, frozen=True):
    host: str
    stale: bool
    endpoints: int


@wire.message
class HostRemoved(wire.Message, tag=170, kw_only=True, frozen=True):
    host: str
    endpoints_removed: int


@wire.message
class ServicePublished(wire.Message, tag=171, kw_only=True, frozen=True):
    name: str
    network: str
    endpoint_id: str
    ip: str
    port: int


@wire.message
class ServiceUnpublished(wire.Message, tag=172, kw_only=True, frozen=True):
    name: str
    network: str
    removed: int


@wire.message
class ServiceHealthSet(wire.Message, tag=173, kw_only=True, frozen=True):
    name: str
    network: str
    endpoint_id: str
    healthy: bool
    #: False when the entry already had that health (nothing changed)
    changed: bool


Result = (
    NetworkCreated
    | NetworkDeleted
    | NetworkUpdated
    | Connected
    | Disconnected
    | Moved
    | QosUpdated
    | PolicyAdded
    | PolicyRemoved
    | HostMarked
    | HostRemoved
    | ServicePublished
    | ServiceUnpublished
    | ServiceHealthSet
)


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
    UNKNOWN_SERVICE = 29


@wire.message
class CommandError(wire.Message, tag=191, kw_only=True, frozen=True):
    """A rejected command: it changed nothing.  ``message`` names the object and the fix."""

    code: ErrorCode
    message: str


#: every record ``apply`` may return (the results and the error)
RESULT_TYPES: tuple[type, ...] = (*Result.__args__, CommandError)


class Reject(Exception):
    """Raised inside the state machine while validating; becomes a :class:`CommandError`."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def error(self) -> CommandError:
        return CommandError(code=self.code, message=self.message)

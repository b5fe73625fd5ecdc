"""Records of the replicated network state, as queries return them.

These are read-only views: the state machine keeps compact internal records
and builds these on demand, so holding one never pins or changes the state.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from meshd import wire

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

#: VNIs a network may use (24-bit VXLAN space; 0 is never allocated).
VNI_MIN = 1
VNI_MAX = 16_777_215

_T = TypeVar("_T", bound="DataclassInstance")

#: First octets of a MAC derived from an IPv4 address: 02:6d:<a>:<b>:<c>:<d>.
#: 0x02 = locally administered, unicast; 0x6d = "m" for meshd.
MAC_PREFIX = 0x026D
#: the first two bytes of the MACs meshd derives for endpoints of dhcp networks (see dhcp_mac)
DHCP_MAC_PREFIX = 0x026E


class Mode(enum.StrEnum):
    """How a network reaches other hosts: ``vxlan`` (the overlay), ``routed`` (direct routing
    on the underlay segment, VXLAN beyond it), ``flat`` (macvlan on the hosts' LAN), ``dhcp``
    (flat, addresses leased from the LAN's DHCP server) and ``vlan`` (macvlan on an 802.1Q
    sub-interface)."""

    VXLAN = "vxlan"
    ROUTED = "routed"
    FLAT = "flat"
    DHCP = "dhcp"
    VLAN = "vlan"


class PolicyKind(enum.StrEnum):
    """The isolation policies of seed 000, Table 4."""

    #: no traffic between endpoints of one network (Docker's ICC off)
    ISOLATE_WITHIN = "isolate-within"
    #: drop everything from ``network`` to ``peer`` (one way)
    DENY_ONE_WAY = "deny-one-way"
    #: drop everything between ``network`` and ``peer`` (both ways)
    DENY_BOTH = "deny-both"
    #: drop all traffic to and from ``network``'s endpoints, inside it too
    DENY_ALL = "deny-all"


class ChangeKind(enum.StrEnum):
    """What a :class:`Change` reports."""

    NETWORK_CREATED = "network-created"
    NETWORK_UPDATED = "network-updated"
    #: the network and every endpoint in it are gone (its policies get POLICY_REMOVED)
    NETWORK_DELETED = "network-deleted"
    ENDPOINT_ADDED = "endpoint-added"
    ENDPOINT_REMOVED = "endpoint-removed"
    ENDPOINT_MOVED = "endpoint-moved"
    ENDPOINT_QOS = "endpoint-qos"
    POLICY_ADDED = "policy-added"
    POLICY_REMOVED = "policy-removed"
    HOST_STALE = "host-stale"
    HOST_CLEARED = "host-cleared"
    #: a service entry was published (or republished); ``service`` names it
    SERVICE_REGISTERED = "service-registered"
    #: a service entry's recorded health changed
    SERVICE_HEALTH = "service-health"
    #: a service entry was removed (unpublished, or its endpoint went)
    SERVICE_REMOVED = "service-removed"


class Qos(wire.Record, frozen=True):
    """Traffic shaping of one endpoint (tc TBF).  All zeros = unlimited.

    On the wire (inside Connect and SetQos) the array ``[rate_kbit,
    burst_bytes, latency_ms]``; an older two-field array gets latency 0.
    """

    rate_kbit: int = 0
    burst_bytes: int = 0
    latency_ms: int = 0


#: QoS defaults, the same for every door (API, CLI, Docker labels, seed-002 environment): a rate given
#: alone gets a burst of 10 ms of traffic at that rate, at least 32 KiB, and TBF latency 50 ms
DEFAULT_LATENCY_MS = 50
MIN_DEFAULT_BURST_BYTES = 32 * 1024


def default_burst_bytes(rate_kbit: int) -> int:
    """The burst for a rate given alone: 10 ms of traffic at that rate, at least 32 KiB."""
    return max(MIN_DEFAULT_BURST_BYTES, rate_kbit * 125 // 100)


def qos_with_defaults(rate_kbit: int, burst_bytes: int = 0, latency_ms: int = 0) -> Qos:
    """A :class:`Qos` with the defaults filled in when only a rate is given (no rate: unlimited,
    and the other two as given, for the state to refuse)."""
    if not rate_kbit:
        return Qos(rate_kbit, burst_bytes, latency_ms)
    return Qos(rate_kbit, burst_bytes or default_burst_bytes(rate_kbit), latency_ms or DEFAULT_LATENCY_MS)


#: the shared "unlimited" value, so endpoints without QoS cost no extra object
NO_QOS = Qos()


@dataclasses.dataclass(frozen=True, slots=True)
class Network:
    """A tenant network (seed 001's TenantNetwork, extended)."""

    name: str
    tenant: str
    subnet: str
    gateway: str
    vni: int
    mode: Mode
    mtu: int
    egress_kbit: int
    external: bool
    labels: dict[str, str]
    created_index: int
    #: the mode's options (``parent``, ``macvlan_mode``, ``ip_range``, ``vlan``: see ``_options``)
    options: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def prefix_len(self) -> int:
        return int(self.subnet.rsplit("/", 1)[1])


@dataclasses.dataclass(frozen=True, slots=True)
class NetworkInfo:
    """A network with its address usage: ``used`` endpoints, ``free`` addresses left."""

    network: Network
    used: int
    free: int
    hosts: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Endpoint:
    """One container attached to one network."""

    endpoint_id: str
    network: str
    host: str
    ip: str
    mac: str
    qos: Qos
    #: the host is marked stale by an operator (its endpoints are kept)
    stale: bool
    #: the container's name, when the connect gave one
    name: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class ServiceEntry:
    """One endpoint of a published service (``ip`` is the endpoint's address in ``network``)."""

    name: str
    network: str
    tenant: str
    endpoint_id: str
    host: str
    ip: str
    port: int
    weight: int
    ttl_s: int
    #: ``running`` or ``tcp``
    check: str
    interval_s: int
    healthy: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Policy:
    """An isolation policy record; ``peer`` is set for the two deny-between kinds."""

    policy_id: str
    kind: PolicyKind
    network: str
    peer: str | None
    created_index: int


@dataclasses.dataclass(frozen=True, slots=True)
class Change:
    """One thing that changed at log ``index``."""

    index: int
    kind: ChangeKind
    network: str | None = None
    endpoint_id: str | None = None
    host: str | None = None
    old_host: str | None = None
    policy_id: str | None = None
    #: the service of a SERVICE_* change
    service: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class ChangeSet:
    """Changes after some index, up to :attr:`last_index`.

    When ``complete`` is False the bounded change log no longer reaches back
    that far (or the state was restored from a snapshot since): the caller
    must rescan the whole state instead.
    """

    changes: tuple[Change, ...]
    last_index: int
    complete: bool


@dataclasses.dataclass(frozen=True, slots=True)
class StateStatus:
    """Counters for the TUI and metrics."""

    last_index: int
    networks: int
    endpoints: int
    hosts: int
    stale_hosts: int
    policies: int
    vnis_used: int
    commands_applied: int
    commands_rejected: int
    undecodable_commands: int


def fast_constructor(cls: type[_T]) -> Callable[..., _T]:
    """A positional constructor for a frozen, slotted dataclass without ``__post_init__``.

    The generated ``__init__`` of a frozen dataclass looks each slot up by name
    through ``object.__setattr__``; this one calls the slot descriptors
    directly, about twice as fast (queries build one :class:`Endpoint` per
    row).  The object is the same as ``cls(*values)`` builds.
    """
    names = [f.name for f in dataclasses.fields(cls)]
    env: dict[str, Any] = {"new": object.__new__, "cls": cls}
    env.update({f"set_{n}": getattr(cls, n).__set__ for n in names})
    body = "".join(f"    set_{n}(obj, {n})\n" for n in names)
    exec(f"def make({', '.join(names)}):\n    obj = new(cls)\n{body}    return obj\n", env)
    make: Callable[..., _T] = env["make"]
    return make


_DEC = [str(i) for i in range(256)]


def format_ipv4(value: int) -> str:
    """32-bit integer to dotted quad."""
    d = _DEC
    return f"{d[value >> 24]}.{d[value >> 16 & 255]}.{d[value >> 8 & 255]}.{d[value & 255]}"


def format_mac(value: int) -> str:
    """48-bit integer to ``aa:bb:cc:dd:ee:ff``."""
    return value.to_bytes(6, "big").hex(":")


def dhcp_mac(endpoint_id: str, network: str) -> str:
    """The stable MAC of an endpoint of a dhcp network (the DHCP server binds its lease to it):
    02:6e + 4 bytes of a BLAKE2b hash of (endpoint id, network). The prefix differs from
    :data:`MAC_PREFIX`, so it never collides with a MAC derived from an IP."""
    digest = hashlib.blake2b(f"{endpoint_id}\0{network}".encode(), digest_size=4).digest()
    return format_mac((DHCP_MAC_PREFIX << 32) | int.from_bytes(digest, "big"))


def derived_mac(ip: int) -> int:
    """The stable MAC of an endpoint whose MAC was not given: 02:6d + the IPv4 bytes."""
    return (MAC_PREFIX << 32) | ip

"""The operations netops applies: frozen dataclasses, planned elsewhere, applied by netops.apply.

Every operation is idempotent: applying one twice leaves the same kernel
state (adds treat EEXIST as done, deletes treat ENODEV/ENOENT as done), so a
plan computed from a stale dump is still safe to apply.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

BRIDGE_PREFIX = "mb-"
VXLAN_PREFIX = "mx-"
VETH_PREFIX = "mv"
LEG_PREFIX = "mg-"
UPLINK_PREFIX = "mu"
VLAN_PREFIX = "mq"
ROUTED_VXLAN_PREFIX = "mr-"
ROUTER_NETNS_PREFIX = "meshd-r-"
NFT_TABLE = "meshd"
VXLAN_OVERHEAD = 50
#: where netops keeps its records of flat (macvlan) endpoints by default (the agent uses <run_dir>/endpoints)
RECORDS_DIR = "/run/meshd/endpoints"


def bridge_name(vni: int) -> str:
    return f"{BRIDGE_PREFIX}{vni}"


def vxlan_name(vni: int) -> str:
    return f"{VXLAN_PREFIX}{vni}"


def routed_vxlan_name(vni: int) -> str:
    """A routed network's VXLAN device (for hosts on other L2 segments); no bridge."""
    return f"{ROUTED_VXLAN_PREFIX}{vni}"


def leg_name(vni: int) -> str:
    """Host side of the veth between a network's bridge and its tenant router."""
    return f"{LEG_PREFIX}{vni}"


def vlan_name(parent: str, vid: int) -> str:
    """The 802.1Q sub-interface of ``parent`` for VLAN ``vid``: ``mq<vid>.<6 hex of the parent's name>``
    (at most 13 characters, under IFNAMSIZ, whatever the parent is called)."""
    return f"{VLAN_PREFIX}{vid}.{hashlib.sha1(parent.encode()).hexdigest()[:6]}"


def is_owned_link(name: str) -> bool:
    return name.startswith((BRIDGE_PREFIX, VXLAN_PREFIX, VETH_PREFIX, LEG_PREFIX, UPLINK_PREFIX, VLAN_PREFIX,
                            ROUTED_VXLAN_PREFIX))


@dataclass(frozen=True, slots=True)
class Qos:
    """TBF shaping of a container's egress (seed 002 §4.4).

    ``delay_ms`` exists because schedulers ask for it (seed 001); this kernel
    has no netem, so any non-zero delay is refused with UnsupportedSetting.
    """

    rate_kbit: int
    burst_bytes: int = 32 * 1024
    latency_ms: float = 50.0
    delay_ms: float = 0.0

    def stamp(self) -> str:
        return f"{self.rate_kbit}/{self.burst_bytes}/{self.latency_ms:g}"


@dataclass(frozen=True, slots=True)
class EnsureBridge:
    name: str
    mtu: int


@dataclass(frozen=True, slots=True)
class EnsureVxlan:
    """VXLAN device (learning off, proxy ARP on, UDP 4789) enslaved to ``bridge``.

    ``tx_csum_offload``: None leaves the kernel default; False computes inner
    checksums in software (the fix for broken offload, see netops._ethtool).
    ``bridge`` None: a routed network's device, on no bridge, with the fixed
    MAC ``mac`` (other hosts address their routed packets to it).
    """

    name: str
    vni: int
    local_ip: str
    underlay_dev: str
    bridge: str | None
    mtu: int
    tx_csum_offload: bool | None = None
    mac: str | None = None


@dataclass(frozen=True, slots=True)
class EnsureVlan:
    """The 802.1Q sub-interface ``name`` of ``parent`` for VLAN ``vid`` (the parent of a vlan
    network's macvlans), up, its alias ``stamp`` written last (a sub-interface whose alias is
    not its stamp is half-built or of another configuration: deleted and made again)."""

    name: str
    parent: str
    vid: int
    mtu: int
    stamp: str


@dataclass(frozen=True, slots=True)
class DeleteLink:
    name: str


@dataclass(frozen=True, slots=True)
class FdbEntry:
    """``add``/remove an FDB entry on a VXLAN device.

    ``dst`` set: the VXLAN's own entry MAC → VTEP (all-zeros MAC = flood list).
    ``dst`` None: the bridge's static entry MAC → the VXLAN port.
    """

    add: bool
    dev: str
    mac: str
    dst: str | None


@dataclass(frozen=True, slots=True)
class NeighEntry:
    """``add``/remove a permanent IP → MAC entry on a VXLAN device (proxy ARP answers it)."""

    add: bool
    dev: str
    ip: str
    mac: str


@dataclass(frozen=True, slots=True)
class SetTbf:
    """Root TBF on a host-namespace device (a tenant's egress rate on its VXLAN)."""

    dev: str
    rate_kbit: int
    burst_bytes: int = 64 * 1024
    latency_ms: float = 50.0


@dataclass(frozen=True, slots=True)
class ClearQdisc:
    dev: str


@dataclass(frozen=True, slots=True)
class AttachEndpoint:
    """A veth pair: ``host_if`` on ``bridge``, the peer ``ifname`` inside ``netns``.

    ``bridge`` None: a routed endpoint (no bridge). ``host_if`` then holds
    ``host_address``/32 (the gateway: it answers the container's ARP), the
    container's default route is ``onlink`` (its /32 does not cover the
    gateway), and IPv4 forwarding is turned on in the host namespace. The
    route to the container is a separate :class:`Route`.

    Args:
        netns: the container's netns, a path (``/proc/<pid>/ns/net`` or
            ``/run/netns/<name>``).
        address, prefixlen, mac, mtu: the container side's configuration.
        gateway: default route via this address (None: no default route).
        qos: TBF on the container side (its egress), or None.
        stamp: written to ``host_if``'s alias as the last step; a host veth
            whose alias is not its desired stamp is half-built or stale.
    """

    host_if: str
    bridge: str | None
    netns: str
    ifname: str
    address: str
    prefixlen: int
    mac: str
    mtu: int
    gateway: str | None
    qos: Qos | None
    stamp: str
    host_address: str | None = None


@dataclass(frozen=True, slots=True)
class SetEndpointQos:
    host_if: str
    netns: str
    ifname: str
    qos: Qos | None
    stamp: str


@dataclass(frozen=True, slots=True)
class AttachMacvlan:
    """A flat endpoint: a macvlan on ``parent`` (a host NIC) created as ``ifname`` inside ``netns``.

    ``name`` keys its record in ``records_dir`` (see netops._macvlan: a macvlan
    has no host-side device, so the record is how netops finds it again).
    ``macvlan_mode``: "bridge" (endpoints on one parent reach each other) or
    "private" (they do not). The other fields configure the container side as
    for :class:`AttachEndpoint`; ``stamp`` goes to the interface's alias and
    the record last.
    """

    name: str
    records_dir: str
    parent: str
    macvlan_mode: str
    netns: str
    ifname: str
    address: str
    prefixlen: int
    mac: str
    mtu: int
    gateway: str | None
    qos: Qos | None
    stamp: str


@dataclass(frozen=True, slots=True)
class DetachMacvlan:
    """Remove a flat endpoint: its interface (only while its alias is still ``stamp``) and its record."""

    name: str
    records_dir: str
    netns: str
    ifname: str
    stamp: str


@dataclass(frozen=True, slots=True)
class SetMacvlanQos:
    name: str
    records_dir: str
    netns: str
    ifname: str
    qos: Qos | None
    stamp: str


@dataclass(frozen=True, slots=True)
class EnsureRouter:
    """A tenant's router namespace (``/run/netns/<name>``), forwarding on."""

    name: str


@dataclass(frozen=True, slots=True)
class DeleteRouter:
    name: str


@dataclass(frozen=True, slots=True)
class AttachLeg:
    """veth ``leg_name(vni)`` on the network's bridge ↔ ``gw-<vni>`` in the router.

    The router side holds the network's gateway address; ``stamp`` is written
    to the host side's alias last (as for endpoints).
    """

    router: str
    vni: int
    bridge: str
    gateway: str
    prefixlen: int
    mtu: int
    stamp: str


@dataclass(frozen=True, slots=True)
class AttachUplink:
    """External access for a tenant router: veth ``host_if`` (host) ↔ ``up0`` (router).

    Host side ``host_ip``/31, router side ``router_ip``/31 with a default route
    via ``host_ip``; the router masquerades everything leaving by ``up0``
    (its own nft table), the host masquerades 100.64.0.0/10 on its way out
    (table ``ip meshd``, planned separately). Turns on IPv4 forwarding in the
    host namespace. ``stamp`` goes to the host side's alias last.
    """

    router: str
    host_if: str
    host_ip: str
    router_ip: str
    stamp: str


@dataclass(frozen=True, slots=True)
class Route:
    """``add`` (replace) or delete a meshd route (protocol ``RTPROT_MESHD``, main table).

    ``dst`` out of ``dev``, on-link when ``gateway`` is None, else via it
    (``onlink``: the gateway is not inside any subnet of ``dev``).
    """

    add: bool
    dst: str
    dev: str
    gateway: str | None = None
    onlink: bool = False


@dataclass(frozen=True, slots=True)
class NftScript:
    """Run an nft script in a namespace (None: the caller's own).

    The reconciler uses it to replace meshd's table atomically (``table``
    flush + definitions in one transaction) or to add/delete set elements.
    """

    script: str
    netns: str | None = None


Op = (
    EnsureBridge
    | EnsureVxlan
    | EnsureVlan
    | DeleteLink
    | FdbEntry
    | NeighEntry
    | SetTbf
    | ClearQdisc
    | AttachEndpoint
    | SetEndpointQos
    | AttachMacvlan
    | DetachMacvlan
    | SetMacvlanQos
    | EnsureRouter
    | DeleteRouter
    | AttachLeg
    | AttachUplink
    | NftScript
    | Route
)

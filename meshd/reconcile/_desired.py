"""The desired-state description the reconciler plans from.

A small, self-contained picture of what one host's data plane should be,
built by the agent from (replicated network state, live members, local
containers). It does not import meshd.state, so either side can change its
internals without the other; the agent translates.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from netops import MACVLAN_MODES, RECORDS_DIR, ROUTER_NETNS_PREFIX, Qos

PolicyKind = Literal["isolate", "deny", "deny_both", "deny_all"]
#: how a network is built: ``vxlan`` (bridge + VXLAN overlay, tenant router legs), ``flat``
#: (a macvlan per container on a host NIC; vlan networks are flat ones on an 802.1Q sub-interface)
#: or ``routed`` (veths routed by the host, direct on the L2 segment, VXLAN beyond it)
NetworkMode = Literal["vxlan", "flat", "routed"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Network:
    """A tenant network (one VNI).

    Attributes:
        vni: VXLAN network identifier, 1..16777215 (a flat network has one too:
            it keys the network here, and nothing in the kernel).
        tenant: owner; networks of one tenant share a router namespace per host.
        subnet: CIDR, e.g. "10.1.0.0/24" (tenants may overlap each other).
        gateway: the gateway address containers route through (None: L2 only);
            a vxlan network's tenant router holds it, a flat network's is a
            router on the LAN.
        mtu: container MTU; None means underlay MTU − 50.
        egress_kbit: TBF on the network's VXLAN device (tenant egress), or None.
        external: containers reach outside the cluster through the tenant
            router's uplink, masqueraded (needs a gateway; vxlan mode only).
        mode: "vxlan" (bridge + VXLAN + veths), "flat" (a macvlan per
            container on ``parent``, no device of the network in the host), or
            "routed" (needs a gateway; built by :mod:`meshd.reconcile._routed`:
            no bridge, no tenant router leg).
        parent: flat: this host's NIC the macvlans hang off.
        macvlan_mode: flat: "bridge" or "private" (no traffic between the
            network's containers on this host).
        vlan: flat: the 802.1Q VLAN id (1..4094) whose sub-interface of
            ``parent`` the macvlans hang off (seed 002's VLAN networks), or None.
    """

    vni: int
    tenant: str
    subnet: str
    gateway: str | None = None
    mtu: int | None = None
    egress_kbit: int | None = None
    external: bool = False
    mode: NetworkMode = "vxlan"
    parent: str | None = None
    macvlan_mode: str = "bridge"
    vlan: int | None = None

    def __post_init__(self) -> None:
        if not 0 < self.vni < 1 << 24:
            raise ValueError(f"network vni {self.vni} out of range: use 1..16777215")
        if self.mode == "flat" and (self.parent is None or self.macvlan_mode not in MACVLAN_MODES
                                    or self.external or self.egress_kbit):
            raise ValueError(f"flat network vni {self.vni} needs a parent and a macvlan mode, "
                             "and takes no external access or egress limit")
        if self.vlan is not None and (self.mode != "flat" or not 1 <= self.vlan <= 4094):
            raise ValueError(f"network vni {self.vni}: a VLAN id (1..4094) is for flat networks only")
        if self.mode == "routed" and self.gateway is None:
            raise ValueError(f"routed network vni {self.vni} has no gateway: a routed network needs one")
        net = ipaddress.ip_network(self.subnet)
        if self.external and self.gateway is None:
            raise ValueError(f"network vni {self.vni} wants external access but has no gateway: set one")
        if self.gateway is not None and ipaddress.ip_address(self.gateway) not in net:
            raise ValueError(f"gateway {self.gateway} of vni {self.vni} is outside its subnet {self.subnet}")

    @property
    def prefixlen(self) -> int:
        return _prefixlen(self.subnet)


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalEndpoint:
    """A container interface on this host.

    Attributes:
        key: stable id (container id); with ``vni`` it names the host veth.
        netns: the container's netns path ("/proc/<pid>/ns/net").
        ifname: name inside the container (eth0, eth1 for a second network).
    """

    key: str
    vni: int
    netns: str
    ip: str
    mac: str
    ifname: str = "eth0"
    qos: Qos | None = None

    @property
    def host_if(self) -> str:
        return host_if_name(self.key, self.vni)


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteEndpoint:
    """A container of a network on another host (its VTEP)."""

    vni: int
    ip: str
    mac: str
    vtep: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """Seed 000 Table 4: isolate (ICC off in a), deny a→b, deny_both a↔b, deny_all (a)."""

    kind: PolicyKind
    a: int
    b: int | None = None

    def __post_init__(self) -> None:
        needs_b = self.kind in ("deny", "deny_both")
        if needs_b != (self.b is not None):
            raise ValueError(f"policy {self.kind} {'needs' if needs_b else 'takes no'} second network")


@dataclass(frozen=True, slots=True, kw_only=True)
class HostDesired:
    """Everything one host's data plane should be.

    Attributes:
        underlay_ip: this host's VTEP address; underlay_dev, underlay_mtu: its device.
        vteps: per VNI, the live remote hosts that have the network (flood list).
            Remote endpoints whose VTEP is not live for their VNI are ignored.
        router_prefix: names (and marks as owned) this host's tenant router
            namespaces; only tests running several hosts on one machine change it.
        vxlan_tx_csum_offload: False turns tx checksum offload off on new
            VXLAN devices (broken offload: TCP near zero while ping works);
            None keeps the kernel default.
        records_dir: where netops keeps this host's flat endpoints' records.
        underlay_subnet: the L2 segment of the underlay device (CIDR): routed
            networks reach the containers of hosts whose VTEP lies inside it
            directly over the underlay, the others through VXLAN. None: every
            remote host counts as another segment.
    """

    underlay_ip: str
    underlay_dev: str
    underlay_mtu: int
    networks: tuple[Network, ...] = ()
    local: tuple[LocalEndpoint, ...] = ()
    remote: tuple[RemoteEndpoint, ...] = ()
    vteps: Mapping[int, frozenset[str]] = field(default_factory=dict)
    policies: tuple[Policy, ...] = ()
    router_prefix: str = ROUTER_NETNS_PREFIX
    vxlan_tx_csum_offload: bool | None = None
    records_dir: str = RECORDS_DIR
    underlay_subnet: str | None = None

    def router_name(self, tenant: str) -> str:
        return router_name(tenant, self.router_prefix)


def active_networks(d: HostDesired) -> list[int]:
    """The VXLAN-mode networks built on this host: those with a local endpoint,
    plus every routed network (one with a gateway) of a tenant that has a routed
    local endpoint here — each host routes its own containers' traffic
    (distributed routing), so its tenant router needs a leg in each of the
    tenant's networks. Networks of mode ``routed`` are never among them (no
    bridge, no VXLAN on a bridge, no router leg): see :func:`routed_networks`.
    """
    routed = _routed_vnis(d.networks)
    return [v for v in active_vnis(d.networks, {ep.vni for ep in d.local}) if v not in routed]


def routed_networks(d: HostDesired) -> list[int]:
    """The ``routed``-mode networks built on this host: those with a local
    endpoint, plus every routed-mode network of a tenant that has one here
    (this host routes its containers' traffic to all of them)."""
    routed = _routed_vnis(d.networks)
    return [v for v in active_vnis(d.networks, {ep.vni for ep in d.local}) if v in routed]


def active_vnis(networks: Iterable[Network], local_vnis: Iterable[int]) -> list[int]:
    """The networks this host builds, of every mode (:func:`active_networks`,
    :func:`routed_networks`), from the networks and the VNIs of the local endpoints.

    A tenant's VXLAN-mode networks and its routed-mode ones do not route to
    each other (tenant routers route the former, the host the latter).
    """
    nets = {n.vni: n for n in networks}
    local = {v for v in local_vnis if v in nets}
    tenants = {(nets[v].tenant, nets[v].mode) for v in local if nets[v].gateway and nets[v].mode != "flat"}
    return sorted(local | {n.vni for n in nets.values() if n.gateway and (n.tenant, n.mode) in tenants})


def _routed_vnis(networks: tuple[Network, ...]) -> frozenset[int]:
    return frozenset(n.vni for n in networks if n.mode == "routed")


@functools.lru_cache(maxsize=4096)
def _prefixlen(subnet: str) -> int:
    return ipaddress.ip_network(subnet).prefixlen


@functools.lru_cache(maxsize=65536)
def host_if_name(key: str, vni: int) -> str:
    """``mv`` + 12 hex digits of a hash of (key, vni): 14 chars, under IFNAMSIZ."""
    return "mv" + hashlib.sha1(f"{key}/{vni}".encode()).hexdigest()[:12]


def router_name(tenant: str, prefix: str = ROUTER_NETNS_PREFIX) -> str:
    """The tenant's router netns: readable slug plus a hash (tenants may differ only in case)."""
    slug = re.sub(r"[^a-z0-9]+", "-", tenant.lower()).strip("-")[:20]
    return f"{prefix}{slug}-{hashlib.sha1(tenant.encode()).hexdigest()[:6]}"

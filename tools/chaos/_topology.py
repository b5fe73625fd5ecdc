"""The chaos scenario's tenants, networks, policies and containers, and what may reach what.

Pure: no I/O. Two tenants use the same subnets (10.1.0.0/24 and 10.2.0.0/24
exist in both), and each of the four policy kinds guards one network or pair::

    tenant a   a-blue 10.1.0.0/24 ──deny-one-way──▶ a-green 10.2.0.0/24
               a-iso  10.3.0.0/24  isolate-within   a-dark  10.4.0.0/24  deny-all
    tenant b   b-red  10.1.0.0/24 ◀──deny-both───▶ b-amber 10.2.0.0/24

Every network has `replicas` containers on as many different hosts. Half of
tenant b's containers ask for addresses that tenant a holds too (the same IP
in another tenant: a reply from the wrong container is a leak), the other
half for addresses nobody in tenant a has (any reply at all is a leak).

:func:`expect` is the oracle of the isolation matrix; it restates
docs/netops.md ("Isolation") from the outside, including the documented gap
that deny A→B also drops the UDP replies of flows B opened towards A.
"""

from __future__ import annotations

import ipaddress
import itertools
import random
from dataclasses import dataclass

ICMP, UDP = "icmp", "udp"


@dataclass(frozen=True, slots=True)
class NetSpec:
    name: str
    tenant: str
    subnet: str

    @property
    def gateway(self) -> str:
        """The default gateway meshd gives a network: its first host address."""
        return str(ipaddress.ip_network(self.subnet).network_address + 1)


@dataclass(frozen=True, slots=True)
class PolicySpec:
    kind: str  # the API's names: isolate-within, deny-one-way, deny-both, deny-all
    network: str
    peer: str | None = None


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    """A probed container: its lab host, its one network, and the address it asks for (None: any)."""

    name: str
    host: str
    network: str
    ip: str | None = None


@dataclass(frozen=True, slots=True)
class Placed:
    """A connected container: its spec and the address the API gave it."""

    name: str
    host: str
    network: str
    tenant: str
    ip: str


@dataclass(frozen=True, slots=True)
class Expect:
    passes: bool
    responder: str | None = None  # the container that must answer (None: nobody, or the gateway)


NETWORKS = (
    NetSpec("a-blue", "a", "10.1.0.0/24"),
    NetSpec("a-green", "a", "10.2.0.0/24"),
    NetSpec("a-iso", "a", "10.3.0.0/24"),
    NetSpec("a-dark", "a", "10.4.0.0/24"),
    NetSpec("b-red", "b", "10.1.0.0/24"),
    NetSpec("b-amber", "b", "10.2.0.0/24"),
)
POLICIES = (
    PolicySpec("isolate-within", "a-iso"),
    PolicySpec("deny-one-way", "a-blue", "a-green"),
    PolicySpec("deny-both", "b-red", "b-amber"),
    PolicySpec("deny-all", "a-dark"),
)
CHURN = "churn"  # the container per host that the connect/disconnect stream and the lifecycles use
B_OWN_IP_BASE = 200  # tenant b's addresses that tenant a never allocates: .200, .201, ...


@dataclass(frozen=True, slots=True)
class Topology:
    hosts: tuple[str, ...]
    networks: tuple[NetSpec, ...]
    policies: tuple[PolicySpec, ...]
    containers: tuple[ContainerSpec, ...]

    def network(self, name: str) -> NetSpec:
        return next(n for n in self.networks if n.name == name)

    def churn(self) -> tuple[tuple[str, str], ...]:
        """``(host, container name)`` of the churn container of every host."""
        return tuple((h, CHURN) for h in self.hosts)


def topology(hosts: int, replicas: int) -> Topology:
    """The scenario on ``hosts`` lab hosts with ``replicas`` containers per network.

    Network m's containers go to hosts m, m+1, ... (mod hosts), so every
    network spans ``min(replicas, hosts)`` hosts and neighbouring networks
    overlap on some.
    """
    if hosts < 2:
        raise ValueError(f"the chaos scenario needs at least 2 hosts (got {hosts}): use --hosts 3 or more")
    if not 2 <= replicas <= hosts:
        raise ValueError(f"replicas {replicas} out of range: use 2..{hosts} (one container per host and network)")
    names = tuple(f"h{i}" for i in range(1, hosts + 1))
    containers = []
    for m, net in enumerate(NETWORKS):
        for r in range(replicas):
            ip = None
            if net.tenant == "b" and r % 2 == 0:
                ip = str(ipaddress.ip_network(net.subnet).network_address + B_OWN_IP_BASE + r)
            containers.append(ContainerSpec(f"{net.name}-{r}", names[(m + r) % hosts], net.name, ip))
    return Topology(names, NETWORKS, POLICIES, tuple(containers))


def _policy_blocks(topo: Topology, src: str, dst: str, proto: str) -> bool:
    """True when a policy drops ``proto`` traffic from network ``src`` to network ``dst`` (routed, same tenant)."""
    for p in topo.policies:
        if p.kind == "deny-both" and {src, dst} == {p.network, p.peer}:
            return True
        if p.kind == "deny-one-way" and (src, dst) == (p.network, p.peer):
            return True
        # deny A->B drops A's UDP *replies* to B as well (stateless; docs/netops.md "Known gap")
        if p.kind == "deny-one-way" and (src, dst) == (p.peer, p.network) and proto == UDP:
            return True
    return False


def _dark(topo: Topology, network: str) -> bool:
    return any(p.kind == "deny-all" and p.network == network for p in topo.policies)


def _isolated(topo: Topology, network: str) -> bool:
    return any(p.kind == "isolate-within" and p.network == network for p in topo.policies)


def expect(topo: Topology, placed: tuple[Placed, ...], src: Placed, dst_ip: str, proto: str) -> Expect:
    """Whether a probe from ``src`` to ``dst_ip`` must be answered, and by which container.

    The address is looked up in ``src``'s tenant only: tenants may reuse each
    other's addresses, and an address only another tenant holds must never answer.
    """
    if _dark(topo, src.network):
        return Expect(False)
    if dst_ip == topo.network(src.network).gateway:
        return Expect(proto == ICMP)  # the tenant router answers pings; nothing listens on UDP there
    owner = next((p for p in placed if p.tenant == src.tenant and p.ip == dst_ip), None)
    if owner is not None and owner.name == src.name:
        return Expect(True, src.name)  # its own address (another tenant's container holds it too): local
    if owner is None or _dark(topo, owner.network):
        return Expect(False)
    if owner.network == src.network:
        return Expect(not _isolated(topo, src.network), owner.name)
    return Expect(not _policy_blocks(topo, src.network, owner.network, proto), owner.name)


@dataclass(frozen=True, slots=True)
class Probe:
    """One cell of the isolation matrix."""

    src: str
    dst_ip: str
    proto: str
    target: str  # the container (or "gateway of <net>") whose address is probed
    expect: Expect


def matrix(topo: Topology, placed: tuple[Placed, ...], taken: frozenset[tuple[str, str]] = frozenset()) -> list[Probe]:
    """Every ordered pair of probed containers, ICMP and UDP, plus each container's gateway (ICMP).

    ``taken`` is every ``(tenant, ip)`` the state holds: a probe towards an
    address that, in the source's tenant, belongs to an endpoint that is not
    probed (a churn container) has no oracle and is left out.
    """
    probes = []
    held = {(p.tenant, p.ip) for p in placed}
    for src, dst in itertools.permutations(placed, 2):
        if (src.tenant, dst.ip) in taken - held or dst.ip == src.ip:
            continue  # no oracle (a churn container holds it), or the source's own address
        for proto in (ICMP, UDP):
            probes.append(Probe(src.name, dst.ip, proto, dst.name, expect(topo, placed, src, dst.ip, proto)))
    for src in placed:
        gw = topo.network(src.network).gateway
        probes.append(Probe(src.name, gw, ICMP, f"gateway of {src.network}", expect(topo, placed, src, gw, ICMP)))
    return probes


def ping_pairs(topo: Topology, placed: tuple[Placed, ...], rng: random.Random) -> list[tuple[Placed, Placed]]:
    """One pair of containers per pair of hosts whose pings must pass both ways (the background pings).

    Each must reach the other itself: a container of another tenant whose address the sender's
    tenant also holds would be answered by that holder, on some other host.
    """
    def reaches(a: Placed, b: Placed) -> bool:
        e = expect(topo, placed, a, b.ip, ICMP)
        return e.passes and e.responder == b.name

    pairs = []
    for ha, hb in itertools.combinations(topo.hosts, 2):
        candidates = [(a, b) for a in placed for b in placed
                      if a.host == ha and b.host == hb and reaches(a, b) and reaches(b, a)]
        if candidates:
            pairs.append(rng.choice(sorted(candidates, key=lambda ab: (ab[0].name, ab[1].name))))
    return pairs

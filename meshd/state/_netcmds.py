"""Handlers for network, policy and host commands (a mixin of NetworkState)."""

from __future__ import annotations

import dataclasses
from typing import TypedDict

from . import _options
from . import _validate as v
from ._commands import (
    AddPolicy,
    CreateNetwork,
    DeleteNetwork,
    ErrorCode,
    HostMarked,
    HostRemoved,
    MarkHostStale,
    NetworkCreated,
    NetworkDeleted,
    NetworkUpdated,
    PolicyAdded,
    PolicyRemoved,
    Reject,
    RemoveHost,
    RemovePolicy,
    UpdateNetwork,
)
from ._tables import HOST, Net, Tables
from ._types import VNI_MAX, VNI_MIN, ChangeKind, Mode, Network, Policy, PolicyKind, format_ipv4


class _NetworkChanges(TypedDict, total=False):
    """The fields of a Network that UpdateNetwork may change."""

    mtu: int
    egress_kbit: int
    external: bool
    labels: dict[str, str]


def _policy_on(net: Network) -> None:
    """Policies are rules on a bridge meshd owns: a macvlan network (flat, vlan) has none."""
    if net.mode in (Mode.FLAT, Mode.VLAN, Mode.DHCP):
        raise Reject(
            ErrorCode.INVALID_POLICY,
            f"network {net.name!r} is a {net.mode.value} (macvlan) network, whose traffic passes no bridge meshd "
            "owns, so meshd cannot enforce policies on it: use macvlan_mode=private to stop traffic between its "
            "containers on one host, or a vxlan network for policies",
        )


def _no_egress(name: str, mode: Mode) -> None:
    raise Reject(
        ErrorCode.INVALID_FIELD,
        f"egress_kbit of network {name!r} shapes the VXLAN device of a vxlan network; a {mode.value} network "
        "has none: drop it and give its endpoints a rate (QoS) instead",
    )


class NetworkCommands(Tables):
    # --- networks ------------------------------------------------------------

    def _on_create_network(self, c: CreateNetwork, index: int) -> NetworkCreated:
        name, tenant, base, prefix, gw_off, mode, labels, options = self._check_create_network(c)
        vni = self._take_vni(name, c.vni)
        subnet = f"{format_ipv4(base)}/{prefix}"
        net = Network(
            name, tenant, subnet, format_ipv4(base + gw_off), vni, mode, c.mtu, c.egress_kbit,
            c.external, labels, index, options,
        )  # fmt: skip
        self._add_net(Net(net, base, prefix, gw_off, Net.new_vector(1 << (32 - prefix), gw_off)))
        self._note(index, ChangeKind.NETWORK_CREATED, name)
        return NetworkCreated(name=name, subnet=subnet, gateway=net.gateway, vni=vni)

    def _check_create_network(
        self, c: CreateNetwork
    ) -> tuple[str, str, int, int, int, Mode, dict[str, str], dict[str, str]]:
        """Everything a CreateNetwork is refused for, but running out of VNIs; changes nothing."""
        name = v.check_name("network name", c.name)
        if name in self._nets:
            old = self._nets[name].net
            raise Reject(
                ErrorCode.DUPLICATE_NETWORK,
                f"network {name!r} already exists (tenant {old.tenant!r}, subnet {old.subnet}): "
                "pick another name or delete the old network first",
            )
        tenant = v.check_name(f"tenant of network {name!r}", c.tenant)
        base, prefix = v.parse_cidr(name, c.subnet)
        size = 1 << (32 - prefix)
        other = self._ranges.overlapping(tenant, base, base + size)
        if other is not None:
            raise Reject(
                ErrorCode.SUBNET_OVERLAP,
                f"subnet {c.subnet} of network {name!r} overlaps network {other!r} "
                f"({self._nets[other].net.subnet}) of the same tenant {tenant!r}: pick a disjoint subnet "
                "(only different tenants may reuse addresses)",
            )
        gw_off = self._gateway_offset(name, c.gateway, base, size)
        mode = self._check_mode(name, c.mode)
        options = _options.check_options(name, mode, c.options, base, prefix)
        if mode in _options.LAN_MODES:
            self._check_lan_overlap(name, mode, tenant, base, size)
        if mode is Mode.VLAN:
            self._check_vlan_owner(name, tenant, options)
        if mode is not Mode.VXLAN and c.external:
            raise Reject(
                ErrorCode.INVALID_FIELD,
                f"external access of network {name!r} is built by the tenant router of vxlan networks: a "
                f"{mode.value} network reaches outside through its gateway on the LAN; drop external",
            )
        v.check_range(f"MTU of network {name!r}", c.mtu, v.MTU_MIN, v.MTU_MAX)
        v.check_range(f"egress_kbit of network {name!r}", c.egress_kbit, 0, v.RATE_MAX_KBIT)
        if c.egress_kbit and mode is not Mode.VXLAN:
            _no_egress(name, mode)
        labels = v.check_labels(f"network {name!r}", c.labels)
        if type(c.external) is not bool:
            raise Reject(ErrorCode.INVALID_FIELD, f"external of network {name!r} must be true or false")
        if c.vni is not None:
            self._check_vni(name, c.vni)
        return name, tenant, base, prefix, gw_off, mode, labels, options

    def _check_vlan_owner(self, name: str, tenant: str, options: dict[str, str]) -> None:
        """A VLAN (id on a parent) is one L2 segment: it belongs to one tenant (whose networks on it
        may not overlap each other, as any of one tenant's networks may not)."""
        for other in self._nets.values():
            n = other.net
            if n.mode is Mode.VLAN and n.tenant != tenant and n.options.get("vlan") == options["vlan"] \
                    and n.options.get("parent") == options.get("parent"):
                raise Reject(
                    ErrorCode.INVALID_FIELD,
                    f"VLAN {options['vlan']} of network {name!r} already carries network {n.name!r} of tenant "
                    f"{n.tenant!r}: a VLAN is one segment of one tenant, pick another VLAN id",
                )

    def _check_lan_overlap(self, name: str, mode: Mode, tenant: str, base: int, size: int) -> None:
        """A network whose container addresses appear on the hosts' underlay (flat, dhcp, routed) must
        not overlap any other such network, of any tenant: the underlay cannot tell two owners of one
        address apart."""
        for other in self._nets.values():
            n = other.net
            if n.mode in _options.LAN_MODES and other.base < base + size and base < other.base + other.size:
                raise Reject(
                    ErrorCode.SUBNET_OVERLAP,
                    f"subnet {format_ipv4(base)}/{32 - (size.bit_length() - 1)} of {mode.value} network "
                    f"{name!r} overlaps {n.mode.value} network {n.name!r} ({n.subnet}) of tenant {n.tenant!r}: "
                    f"both put container addresses on the hosts' underlay, so pick a disjoint subnet "
                    f"(overlapping subnets of different tenants need mode vxlan)",
                )

    def _add_net(self, net: Net) -> None:
        self._nets[net.net.name] = net
        self._ranges.add(net.net.tenant, net.base, net.base + net.size, net.net.name)

    def _check_mode(self, name: str, mode: str) -> Mode:
        try:
            mode = Mode(mode)
        except ValueError:
            raise Reject(
                ErrorCode.INVALID_FIELD,
                f"mode {mode!r} of network {name!r} is unknown: use one of {', '.join(m.value for m in Mode)}",
            ) from None
        return mode

    def _gateway_offset(self, name: str, gateway: str | None, base: int, size: int) -> int:
        if gateway is None:
            return 1
        gw = v.parse_ipv4(f"gateway of network {name!r}", gateway)
        subnet = f"{format_ipv4(base)}/{32 - (size.bit_length() - 1)}"
        if not base <= gw < base + size:
            raise Reject(
                ErrorCode.GATEWAY_OUTSIDE_SUBNET,
                f"gateway {gateway} of network {name!r} is outside its subnet {subnet}: "
                f"pick an address inside it, or omit it to use {format_ipv4(base + 1)}",
            )
        if gw in (base, base + size - 1):
            what = "network" if gw == base else "broadcast"
            raise Reject(
                ErrorCode.GATEWAY_RESERVED,
                f"gateway {gateway} of network {name!r} is the {what} address of {subnet}: "
                f"pick a host address, e.g. {format_ipv4(base + 1)}",
            )
        return gw - base

    def _take_vni(self, name: str, vni: int | None) -> int:
        """The VNI asked for (already checked by :meth:`_check_create_network`), or the next free one."""
        if vni is None:
            got = self._vnis.allocate_next()
            if got is None:
                raise Reject(
                    ErrorCode.VNI_EXHAUSTED,
                    f"no free VNI is left for network {name!r}: delete unused networks first",
                )
            return got
        self._vnis.set(vni)
        return vni

    def _check_vni(self, name: str, vni: object) -> None:
        if type(vni) is not int or not VNI_MIN <= vni <= VNI_MAX:
            raise Reject(
                ErrorCode.VNI_OUT_OF_RANGE,
                f"VNI {vni!r} of network {name!r} is out of range: use {VNI_MIN}..{VNI_MAX}, "
                "or omit it to get a free one",
            )
        if self._vnis.test(vni):
            owner = next(n.net.name for n in self._nets.values() if n.net.vni == vni)
            raise Reject(
                ErrorCode.VNI_TAKEN,
                f"VNI {vni} asked for by network {name!r} is already used by network {owner!r}: "
                "pick another VNI or omit it to get a free one",
            )

    def _check_delete_network(self, c: DeleteNetwork) -> Net:
        net = self._net(c.name)
        count = net.count
        if count and not c.force:
            sample = next(iter(net.eps))
            raise Reject(
                ErrorCode.NETWORK_IN_USE,
                f"network {c.name!r} still has {count} endpoint(s) (e.g. {sample!r} on host "
                f"{net.eps[sample][HOST]!r}): disconnect them first, or delete with force",
            )
        return net

    def _on_delete_network(self, c: DeleteNetwork, index: int) -> NetworkDeleted:
        net = self._check_delete_network(c)
        count = len(net.eps)
        for cid in list(net.eps):
            self._drop_ep(net, cid)
        doomed = [p.policy_id for p in self._policies.values() if c.name in (p.network, p.peer)]
        for pid in doomed:
            policy = self._policies.pop(pid)
            self._note(index, ChangeKind.POLICY_REMOVED, policy.network, policy_id=pid)
        self._vnis.clear(net.net.vni)
        del self._nets[c.name]
        self._ranges.remove(net.net.tenant, net.base, net.base + net.size, c.name)
        self._note(index, ChangeKind.NETWORK_DELETED, c.name)
        return NetworkDeleted(name=c.name, endpoints_removed=count, policies_removed=len(doomed))

    def _on_update_network(self, c: UpdateNetwork, index: int) -> NetworkUpdated:
        net = self._net(c.name)
        changes: _NetworkChanges = {}
        if c.mtu is not None:
            changes["mtu"] = v.check_range(f"MTU of network {c.name!r}", c.mtu, v.MTU_MIN, v.MTU_MAX)
        if c.egress_kbit is not None:
            changes["egress_kbit"] = v.check_range(
                f"egress_kbit of network {c.name!r}", c.egress_kbit, 0, v.RATE_MAX_KBIT
            )
            if c.egress_kbit and net.net.mode is not Mode.VXLAN:
                _no_egress(c.name, net.net.mode)
        if c.external is not None:
            if type(c.external) is not bool:
                raise Reject(ErrorCode.INVALID_FIELD, f"external of network {c.name!r} must be true or false")
            if c.external and net.net.mode is not Mode.VXLAN:
                raise Reject(ErrorCode.INVALID_FIELD,
                             f"external access of network {c.name!r} is built by the tenant router of vxlan "
                             f"networks; a {net.net.mode.value} network reaches outside through its LAN gateway")
            changes["external"] = c.external
        if c.labels is not None:
            changes["labels"] = v.check_labels(f"network {c.name!r}", c.labels)
        new = dataclasses.replace(net.net, **changes)
        if new != net.net:
            net.net = new
            self._note(index, ChangeKind.NETWORK_UPDATED, c.name)
        return NetworkUpdated(name=c.name)

    # --- policies ------------------------------------------------------------

    def _on_add_policy(self, c: AddPolicy, index: int) -> PolicyAdded:
        kind = self._check_add_policy(c)
        pid = self._policy_id(c.policy_id, index)
        self._policies[pid] = Policy(pid, kind, c.network, c.peer, index)
        self._note(index, ChangeKind.POLICY_ADDED, c.network, policy_id=pid)
        return PolicyAdded(policy_id=pid)

    def _check_add_policy(self, c: AddPolicy) -> PolicyKind:
        """Everything an AddPolicy is refused for but its policy id; changes nothing."""
        try:
            kind = PolicyKind(c.kind)
        except ValueError:
            raise Reject(
                ErrorCode.INVALID_POLICY,
                f"policy kind {c.kind!r} is unknown: use one of {', '.join(k.value for k in PolicyKind)}",
            ) from None
        _policy_on(self._net(c.network).net)
        pair = kind in (PolicyKind.DENY_ONE_WAY, PolicyKind.DENY_BOTH)
        if pair and c.peer is None:
            raise Reject(ErrorCode.INVALID_POLICY,
                         f"a {kind.value} policy on network {c.network!r} needs a peer network")
        if not pair and c.peer is not None:
            raise Reject(
                ErrorCode.INVALID_POLICY,
                f"a {kind.value} policy applies to one network; drop peer {c.peer!r} or use deny-one-way/deny-both",
            )
        if c.peer is not None:  # a pair (checked above)
            _policy_on(self._net(c.peer).net)
            if c.peer == c.network:
                raise Reject(
                    ErrorCode.INVALID_POLICY,
                    f"{kind.value} from network {c.network!r} to itself: use isolate-within instead",
                )
        for p in self._policies.values():
            if p.kind == kind and (
                (p.network, p.peer) == (c.network, c.peer)
                or (kind == PolicyKind.DENY_BOTH and (p.network, p.peer) == (c.peer, c.network))
            ):
                raise Reject(
                    ErrorCode.DUPLICATE_POLICY,
                    f"the same {kind.value} policy already exists as {p.policy_id!r}: nothing to add",
                )
        return kind

    def _policy_id(self, given: str | None, index: int) -> str:
        if given is not None:
            pid = v.check_id("policy id", given)
            if pid in self._policies:
                raise Reject(
                    ErrorCode.DUPLICATE_POLICY,
                    f"policy id {pid!r} is already used by another policy: pick another id or omit it",
                )
            return pid
        pid, n = f"policy-{index}", 1
        while pid in self._policies:
            pid, n = f"policy-{index}-{n}", n + 1
        return pid

    def _check_remove_policy(self, c: RemovePolicy) -> Policy:
        policy = self._policies.get(c.policy_id)
        if policy is None:
            known = ", ".join(sorted(self._policies)[:10]) or "none"
            raise Reject(
                ErrorCode.UNKNOWN_POLICY,
                f"policy {c.policy_id!r} does not exist (known: {known}): list policies to find its id",
            )
        return policy

    def _on_remove_policy(self, c: RemovePolicy, index: int) -> PolicyRemoved:
        policy = self._check_remove_policy(c)
        del self._policies[c.policy_id]
        self._note(index, ChangeKind.POLICY_REMOVED, policy.network, policy_id=c.policy_id)
        return PolicyRemoved(policy_id=c.policy_id)

    # --- hosts ---------------------------------------------------------------

    def _on_mark_host_stale(self, c: MarkHostStale, index: int) -> HostMarked:
        host = v.check_id("host", c.host)
        if type(c.stale) is not bool:
            raise Reject(ErrorCode.INVALID_FIELD, f"stale for host {host!r} must be true or false")
        count = sum(self._hosts.get(host, {}).values())
        if c.stale and host not in self._stale:
            self._stale.add(host)
            self._note(index, ChangeKind.HOST_STALE, host=host)
        elif not c.stale and host in self._stale:
            self._stale.discard(host)
            self._note(index, ChangeKind.HOST_CLEARED, host=host)
        return HostMarked(host=host, stale=c.stale, endpoints=count)

    def _on_remove_host(self, c: RemoveHost, index: int) -> HostRemoved:
        host = v.check_id("host", c.host)
        removed = 0
        for name in sorted(self._hosts.get(host, ())):
            net = self._nets[name]
            for cid in [cid for cid, ep in net.eps.items() if ep[HOST] == host]:
                self._drop_ep(net, cid)
                self._note(index, ChangeKind.ENDPOINT_REMOVED, name, cid, host)
                removed += 1
        if host in self._stale:
            self._stale.discard(host)
            self._note(index, ChangeKind.HOST_CLEARED, host=host)
        return HostRemoved(host=host, endpoints_removed=removed)

"""Which members can build which network models (pure; no I/O).

Each agent probes its kernel at start (:func:`netops.probe_link_kinds`) and
says which link kinds it can create in its gossip metadata
(``Meta.dataplane``; empty from an agent too old to say, taken as able).  A
network model needs the kinds in :data:`NEEDS`; a network create is refused
when a member cannot build its mode, a connect or move when the target host
cannot, with the host and the missing kernel feature named
(:func:`mode_refusal`).  A member that joins later with a kernel that cannot
build networks already there is reported instead (:func:`unbuildable`): it
cannot be refused, but its containers cannot join those networks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from meshd.state import Mode
from netops import describe_link_kind

#: the kernel link kinds each network model builds with
NEEDS: dict[Mode, tuple[str, ...]] = {
    Mode.VXLAN: ("vxlan", "bridge", "veth"),
    Mode.ROUTED: ("vxlan", "bridge", "veth"),  # routes inside one L2 segment, VXLAN across segments
    Mode.FLAT: ("macvlan",),
    Mode.DHCP: ("macvlan",),
    Mode.VLAN: ("vlan", "macvlan"),  # an 802.1Q sub-interface of the host NIC, macvlan on top
}


def missing(mode: Mode, kinds: Iterable[str]) -> list[str]:
    """The link kinds ``mode`` needs that ``kinds`` lacks."""
    have = set(kinds)
    return [k for k in NEEDS[mode] if k not in have]


def mode_refusal(network: str, mode: str, kinds_by_host: Mapping[str, Iterable[str]]) -> str | None:
    """Why network ``network`` of ``mode`` cannot be built on one of the hosts, or None.

    ``kinds_by_host`` maps each host to the link kinds it said it can create;
    an empty collection (an agent too old to say) counts as able. An unknown
    mode is left to the state, which names the valid ones.
    """
    try:
        m = Mode(mode)
    except ValueError:
        return None
    for host in sorted(kinds_by_host):
        kinds = list(kinds_by_host[host])
        lacks = missing(m, kinds) if kinds else []
        if lacks:
            features = " and ".join(describe_link_kind(k) for k in lacks)
            return (f"network {network!r} (mode {m.value}) cannot be built on host {host}: its kernel has no "
                    f"{features}; load the module on {host} (or boot a kernel that has it) and restart its agent, "
                    f"or pick another mode ({host}'s kernel creates {', '.join(sorted(kinds))} links)")
    return None


def unbuildable(networks: Iterable[tuple[str, str]],
                kinds_by_host: Mapping[str, Iterable[str]]) -> list[tuple[str, str, str]]:
    """``(host, network, text)`` for each ``(name, mode)`` network a member's kernel cannot build
    (an empty collection of kinds, from an agent too old to say, counts as able)."""
    out = []
    for host in sorted(kinds_by_host):
        kinds = list(kinds_by_host[host])
        for name, mode in sorted(networks):
            try:
                lacks = missing(Mode(mode), kinds) if kinds else []
            except ValueError:
                continue
            if lacks:
                features = " and ".join(describe_link_kind(k) for k in lacks)
                out.append((host, name, f"host {host}'s kernel has no {features}: its containers cannot join "
                                        f"network {name!r} (mode {mode}); load the module on {host} and restart "
                                        "its agent"))
    return out

"""A routed network's subnet against the members' underlay addresses (pure; no I/O).

A routed network's packets carry container addresses on the underlay, and each
host routes them by destination: a subnet that contains a member's underlay
address (its VTEP, said in gossip) would make the hosts route that member's
own address to a container. The state cannot know the underlay, so the API
refuses such a network (and a connect or move onto such a member) before any
commit, naming the host and its address (:func:`underlay_refusal`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping


def underlay_refusal(network: str, subnet: str, vteps_by_host: Mapping[str, str]) -> str | None:
    """Why routed network ``network`` with ``subnet`` overlaps the underlay, or None.

    ``vteps_by_host`` maps each member to its underlay address; a subnet that
    does not parse is left to the state, which names the problem.
    """
    try:
        net = ipaddress.ip_network(subnet, strict=False)
    except ValueError:
        return None
    for host in sorted(vteps_by_host):
        vtep = vteps_by_host[host]
        try:
            inside = ipaddress.ip_address(vtep) in net
        except ValueError:
            continue
        if inside:
            return (f"subnet {subnet} of routed network {network!r} contains the underlay address {vtep} of host "
                    f"{host}: routed packets carry container addresses on the underlay, so pick a subnet outside "
                    "every host's underlay address (or use mode 'vxlan')")
    return None

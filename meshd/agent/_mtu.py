"""What a network MTU the members' underlays can carry (pure; no I/O).

Every member advertises its underlay device's MTU in its gossip metadata
(``Meta.underlay_mtu``; 0 from an agent too old to say).  A VXLAN frame is the
container's packet plus :data:`netops.VXLAN_OVERHEAD` bytes, so a
network's MTU works only while it is at most the smallest member underlay MTU
minus that overhead.  Two uses:

* :func:`mtu_refusal` — a network create or update whose MTU is larger is
  refused at the API, naming the host with the smallest underlay and the
  largest MTU that works;
* :func:`underlay_problems` — networks that a member's underlay cannot carry
  (a host joined with a smaller underlay, or a network was created while such
  a host was away): reported as events and in ``meshd status``.

The path-MTU self-check of the reconciler (``meshd.reconcile``) catches what
the advertised MTUs cannot show: a smaller hop between two hosts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from netops import VXLAN_OVERHEAD


@dataclass(frozen=True, slots=True)
class UnderlayProblem:
    """Networks whose MTU the underlay of ``host`` cannot carry."""

    host: str
    underlay_mtu: int
    networks: tuple[str, ...]

    @property
    def largest_mtu(self) -> int:
        return self.underlay_mtu - VXLAN_OVERHEAD

    @property
    def text(self) -> str:
        return (f"host {self.host}'s underlay MTU is {self.underlay_mtu}: networks {', '.join(self.networks)} "
                f"lose every packet larger than {self.largest_mtu} bytes to and from it; lower their MTU "
                f"(`meshd network update NAME --mtu {self.largest_mtu}`) or raise {self.host}'s underlay MTU")

    def as_map(self) -> dict[str, object]:
        return {"host": self.host, "underlay_mtu": self.underlay_mtu, "networks": list(self.networks),
                "largest_mtu": self.largest_mtu, "text": self.text}


def smallest_underlay(underlays: Mapping[str, int]) -> tuple[str, int] | None:
    """The member with the smallest known underlay MTU (ties: the first name), or None."""
    known = sorted((mtu, host) for host, mtu in underlays.items() if mtu > 0)
    return (known[0][1], known[0][0]) if known else None


def mtu_refusal(network: str, mtu: int, underlays: Mapping[str, int]) -> str | None:
    """Why ``mtu`` for ``network`` does not work on every member's underlay, or None when it does."""
    smallest = smallest_underlay(underlays)
    if smallest is None:
        return None
    host, underlay = smallest
    largest = underlay - VXLAN_OVERHEAD
    if mtu <= largest:
        return None
    return (f"MTU {mtu} of network {network!r} is more than every member's underlay carries: host {host}'s "
            f"underlay MTU is {underlay} and VXLAN adds {VXLAN_OVERHEAD} bytes, so the largest MTU that works "
            f"is {largest}; use --mtu {largest} or less, or raise {host}'s underlay MTU first")


def underlay_problems(networks: Iterable[tuple[str, int]], underlays: Mapping[str, int]) -> list[UnderlayProblem]:
    """For each member with a known underlay MTU, the ``(name, mtu)`` networks too large for it."""
    nets = sorted(networks)
    out = []
    for host, underlay in sorted(underlays.items()):
        if underlay <= 0:
            continue
        too_large = tuple(name for name, mtu in nets if mtu > underlay - VXLAN_OVERHEAD)
        if too_large:
            out.append(UnderlayProblem(host, underlay, too_large))
    return out

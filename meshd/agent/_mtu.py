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

from meshd.state import Mode
from netops import VXLAN_OVERHEAD

#: modes whose frames cross the underlay without encapsulation (a macvlan on the parent NIC)
_UNENCAPSULATED = (Mode.FLAT, Mode.DHCP, Mode.VLAN)


def mode_overhead(mode: str) -> int:
    """Bytes the underlay carries beyond a network's MTU: VXLAN's 50, or 0 for the macvlan modes."""
    return 0 if mode in _UNENCAPSULATED else VXLAN_OVERHEAD


@dataclass(frozen=True, slots=True)
class UnderlayProblem:
    """Networks whose MTU the underlay of ``host`` cannot carry."""

    host: str
    underlay_mtu: int
    networks: tuple[str, ...]
    #: what the networks' frames add on the underlay (:func:`mode_overhead`)
    overhead: int = VXLAN_OVERHEAD

    @property
    def largest_mtu(self) -> int:
        return self.underlay_mtu - self.overhead

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


def mtu_refusal(network: str, mtu: int, underlays: Mapping[str, int], overhead: int = VXLAN_OVERHEAD) -> str | None:
    """Why ``mtu`` for ``network`` (whose frames carry ``overhead`` more bytes on the underlay: see
    :func:`mode_overhead`) does not work on every member's underlay, or None when it does."""
    smallest = smallest_underlay(underlays)
    if smallest is None:
        return None
    host, underlay = smallest
    largest = underlay - overhead
    if mtu <= largest:
        return None
    adds = f"VXLAN adds {overhead} bytes" if overhead else "a macvlan interface can be no larger than its parent"
    return (f"MTU {mtu} of network {network!r} is more than every member's underlay carries: host {host}'s "
            f"underlay MTU is {underlay} and {adds}, so the largest MTU that works "
            f"is {largest}; use --mtu {largest} or less, or raise {host}'s underlay MTU first")


#: a network's MTU when the create gives none: VXLAN's fits a 1500-byte underlay
DEFAULT_OVERLAY_MTU = 1450
#: ... and a macvlan network's is the LAN's usual 1500, or the smallest member underlay's when smaller
DEFAULT_LAN_MTU = 1500


def default_mtu(mode: str, underlays: Mapping[str, int]) -> int:
    """The MTU of a new network of ``mode`` that gives none."""
    if not mode_overhead(mode):
        smallest = smallest_underlay(underlays)
        return DEFAULT_LAN_MTU if smallest is None else min(DEFAULT_LAN_MTU, smallest[1])
    return DEFAULT_OVERLAY_MTU


def underlay_problems(networks: Iterable[tuple[str, int] | tuple[str, int, int]],
                      underlays: Mapping[str, int]) -> list[UnderlayProblem]:
    """For each member with a known underlay MTU, the ``(name, mtu[, overhead])`` networks too large
    for it (overhead: VXLAN's when not given)."""
    nets = sorted((n[0], n[1], n[2] if len(n) > 2 else VXLAN_OVERHEAD) for n in networks)
    out: list[UnderlayProblem] = []
    overheads = sorted({n[2] for n in nets}, reverse=True)
    for host, underlay in sorted(underlays.items()):
        if underlay <= 0:
            continue
        for overhead in overheads:
            too_large = tuple(name for name, mtu, over in nets if over == overhead and mtu > underlay - overhead)
            if too_large:
                out.append(UnderlayProblem(host, underlay, too_large, overhead))
    return out

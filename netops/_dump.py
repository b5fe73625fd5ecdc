"""Read back what netops owns: links by name prefix, their FDB/neighbour entries, qdiscs, routers,
and the flat endpoints' records.

One link dump, one AF_BRIDGE neighbour dump (the FDB) per VXLAN device, one
AF_INET neighbour dump, one qdisc dump and one route dump (meshd's routes only:
protocol ``RTPROT_MESHD``) per call, whatever the number of endpoints; plus one
link lookup inside each flat endpoint's container netns.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from netops import _routes as _r
from netops._links import Link, get_link, ifinfo, parse_link
from netops._macvlan import MacvlanRecord, read_records
from netops._nl import AF_BRIDGE, AF_INET, RTM_GETLINK, RTM_GETNEIGH, RTM_GETQDISC, NlSocket, socket_in_netns
from netops._ops import RECORDS_DIR, ROUTED_VXLAN_PREFIX, ROUTER_NETNS_PREFIX, VXLAN_PREFIX, is_owned_link
from netops._routes import RouteKey
from netops._tc import parse_qdisc, tcmsg
from netops._vxlan import NTF_SELF, NUD_NOARP, NUD_PERMANENT, ndmsg, parse_neigh


@dataclass(frozen=True, slots=True)
class Actual:
    """The kernel objects netops owns in one namespace.

    Attributes:
        links: owned links by name (bridges, VXLANs, host veths, router legs).
        fdb: VXLAN FDB entries (dev, mac, dst) — dst "" marks the bridge's
            static entry towards the VXLAN port.
        neigh: permanent neighbour entries (dev, ip, mac) on VXLAN devices.
        tbf_bps: root TBF rate (bytes/s) by owned device name.
        routers: the tenant router namespaces (by name) present.
        macvlans: the flat endpoints' records (netops._macvlan), by record name.
        routes: meshd's routes (protocol ``RTPROT_MESHD``) in the main table,
            by destination, device name and gateway.
    """

    links: dict[str, Link]
    fdb: frozenset[tuple[str, str, str]]
    neigh: frozenset[tuple[str, str, str]]
    tbf_bps: dict[str, int]
    routers: frozenset[str]
    macvlans: dict[str, MacvlanRecord] = field(default_factory=dict)
    routes: frozenset[RouteKey] = frozenset()


def _links(nl: NlSocket) -> dict[int, Link]:
    out = {}
    for _kind, body in nl.dump(RTM_GETLINK, ifinfo()):
        link = parse_link(body)
        out[link.index] = link
    return out


def _fdb(nl: NlSocket, vx: dict[int, str]) -> frozenset[tuple[str, str, str]]:
    """FDB entries of the VXLAN ports only: one filtered dump per VXLAN device
    (a bridge with 1,000 container ports holds thousands of entries we do not own)."""
    out = set()
    bodies = []
    for index in vx:
        bodies += nl.dump(RTM_GETNEIGH, ndmsg(AF_BRIDGE, index))
    for _kind, body in bodies:
        n = parse_neigh(body)
        dev = vx.get(n.index)
        if dev is None:
            continue
        if n.flags & NTF_SELF:  # the VXLAN's own table
            if n.dst:
                out.add((dev, n.mac, n.dst))
        elif n.state & NUD_NOARP and not n.state & NUD_PERMANENT:  # bridge static entry
            out.add((dev, n.mac, ""))
    return frozenset(out)


def _neigh(nl: NlSocket, vx: dict[int, str]) -> frozenset[tuple[str, str, str]]:
    out = set()
    for _kind, body in nl.dump(RTM_GETNEIGH, ndmsg(AF_INET)):
        n = parse_neigh(body)
        if n.index in vx and n.state & NUD_PERMANENT:
            out.add((vx[n.index], n.dst, n.mac))
    return frozenset(out)


def _tbf(nl: NlSocket, owned: dict[int, str]) -> dict[str, int]:
    out = {}
    for _kind, body in nl.dump(RTM_GETQDISC, tcmsg()):
        q = parse_qdisc(body)
        if q.kind == "tbf" and q.index in owned:
            out[owned[q.index]] = q.rate_bps
    return out


def _routes(nl: NlSocket, names: dict[int, str]) -> frozenset[RouteKey]:
    out = set()
    for _kind, body in nl.dump(_r.RTM_GETROUTE, _r.dump_request()):
        raw = _r.parse_route(body)
        if raw is not None:
            out.add(RouteKey(raw.dst, names.get(raw.oif, f"#{raw.oif}"), raw.gateway))
    return frozenset(out)


def routers(prefix: str = ROUTER_NETNS_PREFIX) -> frozenset[str]:
    """Router namespaces that exist: a name in /run/netns that is still a mount
    (a bare leftover file, whose namespace died, counts as missing and is rebuilt)."""
    try:
        names = os.listdir("/run/netns")
    except FileNotFoundError:
        return frozenset()
    return frozenset(n for n in names if n.startswith(prefix) and os.path.ismount(f"/run/netns/{n}"))


def dump_owned(router_prefix: str = ROUTER_NETNS_PREFIX, records_dir: str = RECORDS_DIR) -> Actual:
    """Dump the owned objects of the calling thread's network namespace.

    Router namespaces are recognised by ``router_prefix`` (namespace names are
    global to the machine, so several lab hosts on one machine need distinct ones);
    flat endpoints by their records in ``records_dir`` (one per host, too).
    """
    with NlSocket() as nl:
        all_links = _links(nl)
        owned = {i: link for i, link in all_links.items() if is_owned_link(link.name)}
        vx = {i: link.name for i, link in owned.items() if link.name.startswith((VXLAN_PREFIX, ROUTED_VXLAN_PREFIX))}
        return Actual(
            links={link.name: link for link in owned.values()},
            fdb=_fdb(nl, vx),
            neigh=_neigh(nl, vx),
            tbf_bps=_tbf(nl, {i: link.name for i, link in owned.items()}),
            routers=routers(router_prefix),
            macvlans=read_records(records_dir),
            routes=_routes(nl, {i: link.name for i, link in all_links.items()}),
        )


@dataclass(frozen=True, slots=True)
class Counters:
    """Byte and packet counters of a host-side device (its rx is the container's tx)."""

    rx_bytes: int
    tx_bytes: int
    rx_packets: int
    tx_packets: int


def counters(names: list[str] | None = None) -> dict[str, Counters]:
    """Counters of the named links (all owned links when None), from one dump."""
    with NlSocket() as nl:
        links = _links(nl).values()
    wanted = set(names) if names is not None else None
    return {
        link.name: Counters(link.rx_bytes, link.tx_bytes, link.rx_packets, link.tx_packets)
        for link in links
        if (link.name in wanted if wanted is not None else is_owned_link(link.name))
    }


def counters_inside(targets: list[tuple[str, str, str]]) -> dict[str, Counters]:
    """Counters of interfaces inside container netns — ``(key, netns, ifname)`` each, for endpoints
    without a host-side device (flat) — as the host side of a veth would count them (rx and tx
    swapped), so callers read every endpoint alike. A netns or interface that is gone is left out."""
    out = {}
    for key, netns, ifname in targets:
        try:
            with socket_in_netns(netns) as ns:
                body = ns.get(RTM_GETLINK, get_link(ifname))
        except OSError:
            continue
        if body is not None:
            link = parse_link(body)
            out[key] = Counters(link.tx_bytes, link.rx_bytes, link.tx_packets, link.rx_packets)
    return out


def rates(prev: Counters, cur: Counters, dt_s: float) -> Counters:
    """Per-second rates between two samples (counter resets read as 0)."""
    if dt_s <= 0:
        raise ValueError("dt_s must be positive")

    def per_s(a: int, b: int) -> int:
        return int(max(b - a, 0) / dt_s)

    return Counters(
        per_s(prev.rx_bytes, cur.rx_bytes),
        per_s(prev.tx_bytes, cur.tx_bytes),
        per_s(prev.rx_packets, cur.rx_packets),
        per_s(prev.tx_packets, cur.tx_packets),
    )

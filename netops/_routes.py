"""Routes meshd owns: IPv4 host routes in the main table, tagged by their protocol number.

Pure functions: bytes in, ``Msg`` out, and the route dump parser (an rtmsg and
RTA_* attributes, <linux/rtnetlink.h>). Every route netops adds here carries
``rtm_protocol`` :data:`RTPROT_MESHD`, so a dump keeps exactly meshd's routes
and never looks at the host's own (kernel, static, DHCP, BGP daemons, …).
A route is ``dst`` out of a device, either on-link (no gateway) or via a
gateway; a gateway on a device whose subnet does not contain it (a routed
network's VXLAN device) is marked ``onlink``.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct
from dataclasses import dataclass

from netops import _nl
from netops._addr import RT_SCOPE_LINK, RT_SCOPE_UNIVERSE, RT_TABLE_MAIN, RTA_DST, RTA_GATEWAY, RTA_OIF, RTN_UNICAST
from netops._nl import AF_INET, GONE, UPSERT, Msg, attr, u32

#: rtm_protocol of meshd's routes ("m"); iproute2 shows it as ``proto 109``
RTPROT_MESHD = 109
RTM_GETROUTE = 26
RTA_TABLE = 15
RTNH_F_ONLINK = 0x4

_RTMSG = struct.Struct("=BBBBBBBBI")


@dataclass(frozen=True, slots=True, order=True)
class RouteKey:
    """A meshd route as the planner compares them: destination, device, gateway ("" = on-link)."""

    dst: str
    dev: str
    gateway: str = ""


def route_msg(add: bool, dst: str, index: int, dev: str, gateway: str | None, onlink: bool) -> Msg:
    """Add (replace) or delete the meshd route ``dst`` out of device ``index``."""
    net = ipaddress.ip_network(dst)
    scope = RT_SCOPE_UNIVERSE if gateway else RT_SCOPE_LINK
    flags = RTNH_F_ONLINK if gateway and onlink else 0
    body = _RTMSG.pack(AF_INET, net.prefixlen, 0, 0, RT_TABLE_MAIN, RTPROT_MESHD, scope, RTN_UNICAST, flags)
    if net.prefixlen:
        body += attr(RTA_DST, net.network_address.packed)
    if gateway:
        body += attr(RTA_GATEWAY, _nl.ip_bytes(gateway))
    body += u32(RTA_OIF, index)
    via = f" via {gateway}" if gateway else ""
    if add:
        return Msg(_nl.RTM_NEWROUTE, UPSERT, body, f"add route {dst}{via} on", dev)
    return Msg(_nl.RTM_DELROUTE, 0, body, f"delete route {dst}{via} on", dev, GONE | {errno.ESRCH})


def dump_request() -> bytes:
    """A route dump of meshd's unicast routes of the main table only: with strict checking (``NlSocket``
    sets NETLINK_GET_STRICT_CHK) the kernel filters by table, protocol and type, so a host holding a
    full routing table does not send it all; :func:`parse_route` filters again for older kernels."""
    return _RTMSG.pack(AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_MESHD, 0, RTN_UNICAST, 0)


@dataclass(frozen=True, slots=True)
class RawRoute:
    dst: str
    oif: int
    gateway: str


def parse_route(body: memoryview) -> RawRoute | None:
    """A meshd route of the main table, or None for anyone else's route."""
    family, dst_len, _src_len, _tos, table, protocol, _scope, rtype, _flags = _RTMSG.unpack_from(body)
    if family != AF_INET or protocol != RTPROT_MESHD or rtype != RTN_UNICAST:
        return None
    attrs = _nl.parse_attrs(body, _RTMSG.size)
    table = _nl.get_u32(attrs, RTA_TABLE) or table
    if table != RT_TABLE_MAIN:
        return None
    raw_dst = attrs.get(RTA_DST)
    dst = socket.inet_ntoa(bytes(raw_dst)) if raw_dst is not None else "0.0.0.0"
    gw = attrs.get(RTA_GATEWAY)
    return RawRoute(f"{dst}/{dst_len}", _nl.get_u32(attrs, RTA_OIF) or 0,
                    socket.inet_ntoa(bytes(gw)) if gw is not None else "")

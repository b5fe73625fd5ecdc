"""IPv4 addresses and routes of a device (``ip addr add``, ``ip route replace``).

Pure functions: bytes in, ``Msg`` out (an ifaddrmsg and IFA_* attributes, an
rtmsg and RTA_* attributes, <linux/if_addr.h> and <linux/rtnetlink.h>). Routes
go to the main table as static unicast routes; ``route`` marks a gateway
``onlink``.
"""

from __future__ import annotations

import ipaddress
import struct

from netops import _nl
from netops._nl import AF_INET, THERE, UPSERT, Msg, attr, u32

IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_DST, RTA_OIF, RTA_GATEWAY = 1, 4, 5
RT_TABLE_MAIN, RTPROT_STATIC, RTN_UNICAST = 254, 4, 1
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK = 0, 253
RTNH_F_ONLINK = 0x4

_IFADDR = struct.Struct("=BBBBI")
_RTMSG = struct.Struct("=BBBBBBBBI")


def ifaddrmsg(family: int, prefixlen: int = 0, index: int = 0) -> bytes:
    """The fixed header of an address message (family only in a dump request)."""
    return _IFADDR.pack(family, prefixlen, 0, 0, index)


def new_addr(index: int, name: str, ip: str, prefixlen: int) -> Msg:
    body = ifaddrmsg(AF_INET, prefixlen, index)
    body += attr(IFA_LOCAL, _nl.ip_bytes(ip)) + attr(IFA_ADDRESS, _nl.ip_bytes(ip))
    return Msg(_nl.RTM_NEWADDR, UPSERT, body, f"add address {ip}/{prefixlen} to", name, THERE)


def rtmsg(dst_len: int, scope: int, flags: int = 0) -> bytes:
    """The fixed header of a static unicast IPv4 route in the main table."""
    return _RTMSG.pack(AF_INET, dst_len, 0, 0, RT_TABLE_MAIN, RTPROT_STATIC, scope, RTN_UNICAST, flags)


def default_route(index: int, name: str, gateway: str, onlink: bool = False) -> Msg:
    """Default route via ``gateway``; ``onlink`` when no address of the device covers it (a /32)."""
    body = rtmsg(0, RT_SCOPE_UNIVERSE, RTNH_F_ONLINK if onlink else 0)
    body += attr(RTA_GATEWAY, _nl.ip_bytes(gateway)) + u32(RTA_OIF, index)
    return Msg(_nl.RTM_NEWROUTE, UPSERT, body, f"add default route via {gateway} on", name)


def route(dst: str, index: int, name: str, gateway: str | None = None) -> Msg:
    """A route to ``dst`` (CIDR) out of a device, optionally via a gateway (onlink)."""
    net = ipaddress.ip_network(dst)
    scope, flags = (RT_SCOPE_UNIVERSE, RTNH_F_ONLINK) if gateway else (RT_SCOPE_LINK, 0)
    body = rtmsg(net.prefixlen, scope, flags)
    if net.prefixlen:
        body += attr(RTA_DST, net.network_address.packed)
    if gateway:
        body += attr(RTA_GATEWAY, _nl.ip_bytes(gateway))
    body += u32(RTA_OIF, index)
    return Msg(_nl.RTM_NEWROUTE, UPSERT, body, f"add route {dst} on", name)

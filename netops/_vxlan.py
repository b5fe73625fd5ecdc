"""The VXLAN device and its L2 population: FDB and neighbour entries, and the neighbour dump parser.

Pure functions: bytes in, ``Msg`` out. A VXLAN device is created with learning
off and proxy ARP on, so nothing is ever learnt or flooded to find a
container: per remote endpoint the VXLAN's own FDB knows the VTEP
(``MAC dst VTEP self``), the bridge knows the port (``MAC master static``) and
a permanent neighbour entry lets proxy ARP answer locally. An all-zeros MAC
with a VTEP is the flood list (broadcast). Message layouts: an ndmsg and NDA_*
attributes, <linux/neighbour.h>; the device itself is a link (``_links``).
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from netops import _nl
from netops._links import (
    IFLA_ADDRESS,
    IFLA_IFNAME,
    IFLA_MASTER,
    IFLA_MTU,
    IFLA_VXLAN_ID,
    IFLA_VXLAN_LEARNING,
    IFLA_VXLAN_LINK,
    IFLA_VXLAN_LOCAL,
    IFLA_VXLAN_PORT,
    IFLA_VXLAN_PROXY,
    IFLA_VXLAN_TTL,
    ifinfo,
    linkinfo,
)
from netops._nl import AF_BRIDGE, AF_INET, CREATE, GONE, THERE, UPSERT, Msg, attr, be16, cstr, u8, u32

VXLAN_PORT = 4789
NDA_DST, NDA_LLADDR = 1, 2
NUD_NOARP, NUD_PERMANENT = 0x40, 0x80
NTF_SELF, NTF_MASTER = 0x02, 0x04
NLM_F_APPEND = 0x800

_NDMSG = struct.Struct("=BxxxiHBB")


def ndmsg(family: int, index: int = 0, state: int = 0, flags: int = 0) -> bytes:
    """The fixed header of a neighbour message (index 0 in a dump request: every device)."""
    return _NDMSG.pack(family, index, state, flags, 0)


def new_vxlan(name: str, vni: int, local_ip: str, underlay_index: int, mtu: int, master: int,
              mac: str | None = None) -> Msg:
    """VXLAN with learning off, proxy ARP on (answers from the neighbour table); ``mac``: a fixed address."""
    data = (
        u32(IFLA_VXLAN_ID, vni)
        + attr(IFLA_VXLAN_LOCAL, _nl.ip_bytes(local_ip))
        + u32(IFLA_VXLAN_LINK, underlay_index)
        + u8(IFLA_VXLAN_TTL, 64)
        + u8(IFLA_VXLAN_LEARNING, 0)
        + u8(IFLA_VXLAN_PROXY, 1)
        + be16(IFLA_VXLAN_PORT, VXLAN_PORT)
    )
    body = (
        ifinfo()
        + cstr(IFLA_IFNAME, name)
        + u32(IFLA_MTU, mtu)
        + u32(IFLA_MASTER, master)
        + (attr(IFLA_ADDRESS, _nl.mac_bytes(mac)) if mac else b"")
        + linkinfo("vxlan", data)
    )
    return Msg(_nl.RTM_NEWLINK, CREATE, body, f"add vxlan (vni {vni}, local {local_ip})", name, THERE)


def fdb(add: bool, dev_index: int, dev: str, mac: str, dst: str | None) -> Msg:
    """A VXLAN FDB entry (``bridge fdb append MAC dev mx-N dst VTEP self``).

    With ``dst`` None: the bridge's static entry that sends MAC to the VXLAN
    port (``bridge fdb add MAC dev mx-N master static``).
    """
    if dst is None:
        body = ndmsg(AF_BRIDGE, dev_index, NUD_NOARP, NTF_MASTER) + attr(NDA_LLADDR, _nl.mac_bytes(mac))
        what = f"bridge fdb entry {mac} ->"
    else:
        body = ndmsg(AF_BRIDGE, dev_index, NUD_PERMANENT, NTF_SELF)
        body += attr(NDA_LLADDR, _nl.mac_bytes(mac)) + attr(NDA_DST, _nl.ip_bytes(dst))
        what = f"fdb entry {mac} -> vtep {dst} on"
    if add:
        flags = _nl.NLM_F_CREATE | (NLM_F_APPEND if dst is not None else _nl.NLM_F_REPLACE)
        return Msg(_nl.RTM_NEWNEIGH, flags, body, "add " + what, dev, THERE)
    return Msg(_nl.RTM_DELNEIGH, 0, body, "delete " + what, dev, GONE)


def neigh(add: bool, dev_index: int, dev: str, ip: str, mac: str) -> Msg:
    """A permanent IP→MAC neighbour entry (answered by the VXLAN's proxy ARP)."""
    body = ndmsg(AF_INET, dev_index, NUD_PERMANENT) + attr(NDA_DST, _nl.ip_bytes(ip))
    if add:
        body += attr(NDA_LLADDR, _nl.mac_bytes(mac))
        return Msg(_nl.RTM_NEWNEIGH, UPSERT, body, f"add neighbour {ip} lladdr {mac} on", dev)
    return Msg(_nl.RTM_DELNEIGH, 0, body, f"delete neighbour {ip} on", dev, GONE)


# ---------------------------------------------------------------- parsing dumps


@dataclass(frozen=True, slots=True)
class Neigh:
    """A neighbour-table entry: an FDB entry (family AF_BRIDGE) or an ARP entry."""

    family: int
    index: int
    state: int
    flags: int
    mac: str
    dst: str


def parse_neigh(body: memoryview) -> Neigh:
    family, index, state, flags, _type = _NDMSG.unpack_from(body)
    attrs = _nl.parse_attrs(body, _NDMSG.size)
    dst = attrs.get(NDA_DST)
    return Neigh(
        family=family,
        index=index,
        state=state,
        flags=flags,
        mac=_nl.mac_str(attrs[NDA_LLADDR]) if NDA_LLADDR in attrs else "",
        dst=socket.inet_ntoa(bytes(dst)) if dst is not None and len(dst) == 4 else "",
    )

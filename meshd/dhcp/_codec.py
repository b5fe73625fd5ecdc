"""BOOTP/DHCP bytes <-> :class:`~meshd.dhcp._messages.DhcpMessage`, with scapy's codec.

scapy is used only as a packet codec (``BOOTP``/``DHCP`` layers, no sending or
sniffing); it is imported on first use, so processes that never speak DHCP do
not pay its import time (about 0.5 s). :func:`decode` never raises: bytes that
are not a DHCP reply for a client give None (the driver counts them).
"""

from __future__ import annotations

import functools
import ipaddress
from types import ModuleType
from typing import Any

from ._messages import ANY, DhcpMessage, Kind

_BOOTREQUEST, _BOOTREPLY = 1, 2
_BROADCAST_FLAG = 0x8000


@functools.cache
def _scapy() -> ModuleType:
    from scapy.layers import dhcp

    return dhcp


_REPLIES = (Kind.OFFER, Kind.ACK, Kind.NAK)


def encode(msg: DhcpMessage) -> bytes:
    """The BOOTP payload of ``msg`` (op BOOTREPLY for OFFER/ACK/NAK, the tests' server; else BOOTREQUEST)."""
    d = _scapy()
    options: list[Any] = [("message-type", int(msg.kind))]
    named = (("requested_addr", msg.requested_ip), ("server_id", msg.server_id), ("lease_time", msg.lease_s),
             ("renewal_time", msg.t1_s), ("rebinding_time", msg.t2_s), ("router", msg.router),
             ("error_message", msg.message or None))
    options += [(name, value) for name, value in named if value is not None]
    if msg.prefix_len is not None:
        options.append(("subnet_mask", str(ipaddress.IPv4Network(f"0.0.0.0/{msg.prefix_len}").netmask)))
    if msg.kind in (Kind.DISCOVER, Kind.REQUEST):
        options.append(("param_req_list", [1, 3, 51, 54, 58, 59]))
    options.append("end")
    chaddr = bytes.fromhex(msg.mac.replace(":", "")) + bytes(10)
    pkt = d.BOOTP(op=_BOOTREPLY if msg.kind in _REPLIES else _BOOTREQUEST, xid=msg.xid,
                  flags=_BROADCAST_FLAG if msg.broadcast else 0, ciaddr=msg.ciaddr, yiaddr=msg.yiaddr,
                  chaddr=chaddr) / d.DHCP(options=options)
    return bytes(pkt)


def decode(data: bytes) -> DhcpMessage | None:
    """The DHCP message in a BOOTP payload, or None when it is not one (never raises)."""
    d = _scapy()
    try:
        pkt = d.BOOTP(data)
        if d.DHCP not in pkt:
            return None
        opts = {o[0]: o[1] for o in pkt[d.DHCP].options if isinstance(o, tuple) and len(o) >= 2}
        kind = Kind(int(opts["message-type"]))
        mask = opts.get("subnet_mask")
        router = opts.get("router")
        return DhcpMessage(
            kind=kind, xid=int(pkt.xid), mac=":".join(f"{b:02x}" for b in bytes(pkt.chaddr)[:6]),
            ciaddr=str(pkt.ciaddr or ANY), yiaddr=str(pkt.yiaddr or ANY),
            server_id=_opt_str(opts.get("server_id")), requested_ip=_opt_str(opts.get("requested_addr")),
            lease_s=_opt_int(opts.get("lease_time")), t1_s=_opt_int(opts.get("renewal_time")),
            t2_s=_opt_int(opts.get("rebinding_time")),
            prefix_len=ipaddress.IPv4Network(f"0.0.0.0/{mask}").prefixlen if mask else None,
            router=_opt_str(router[0] if isinstance(router, list) else router),
            broadcast=bool(int(pkt.flags) & _BROADCAST_FLAG), message=_opt_text(opts.get("error_message")),
        )
    except Exception:
        return None


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


def _opt_int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]


def _opt_text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)

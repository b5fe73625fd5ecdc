"""The per-mode options of a network (``CreateNetwork.options``), checked once at create.

A network's mode decides which options it takes; every value is a string on
the wire (like Docker's ``-o key=value``) and is checked here, so the data
plane never sees one it cannot use:

========================  ======================  ============================================
option                    modes                   meaning
========================  ======================  ============================================
``parent``                flat, dhcp, vlan        the host NIC the containers' macvlan
                                                  interfaces hang off (default: each host's
                                                  ``dataplane.parent``, else its underlay device)
``macvlan_mode``          flat, dhcp, vlan        ``bridge`` (default: containers of the network
                                                  on one host reach each other) or ``private``
                                                  (they do not: strict isolation on the host)
``ip_range``              vxlan, routed, flat,    a CIDR inside the subnet: addresses meshd hands
                          vlan                    out without an explicit ``ip`` come from it
                                                  only (the rest of a LAN subnet stays for the
                                                  LAN's own hosts); an explicit ``ip`` may be
                                                  anywhere in the subnet
``vlan``                  vlan                    the 802.1Q VLAN id, 1..4094 (required)
========================  ======================  ============================================
"""

from __future__ import annotations

import ipaddress
import re

from ._commands import ErrorCode, Reject
from ._types import Mode

MACVLAN_MODES = ("bridge", "private")
_IFNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}\Z")

#: which options each mode takes
OPTIONS: dict[Mode, tuple[str, ...]] = {
    Mode.VXLAN: ("ip_range",),
    Mode.ROUTED: ("ip_range",),
    Mode.FLAT: ("parent", "macvlan_mode", "ip_range"),
    Mode.DHCP: ("parent", "macvlan_mode"),
    Mode.VLAN: ("parent", "macvlan_mode", "ip_range", "vlan"),
}

#: modes whose containers share the hosts' LAN (their addresses appear on it)
LAN_MODES = (Mode.FLAT, Mode.DHCP, Mode.ROUTED)


def check_options(name: str, mode: Mode, options: object, base: int, prefix: int) -> dict[str, str]:
    """The options of network ``name`` (subnet ``base/prefix``) as stored; Reject names the bad one."""
    if not isinstance(options, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                               for k, v in options.items()):
        raise Reject(ErrorCode.INVALID_FIELD,
                     f"options of network {name!r} must map option names to string values")
    allowed = OPTIONS[mode]
    for key in options:
        if key not in allowed:
            takes = f"takes {', '.join(allowed)}" if allowed else "takes no options"
            raise Reject(ErrorCode.INVALID_FIELD,
                         f"option {key!r} does not apply to network {name!r} of mode {mode.value}: "
                         f"mode {mode.value} {takes}")
    parent = options.get("parent")
    if parent is not None and not _IFNAME_RE.match(parent):
        raise Reject(ErrorCode.INVALID_FIELD,
                     f"parent {parent!r} of network {name!r} is not an interface name: use 1-15 letters, digits, "
                     "'_', '.' or '-' (the host NIC, e.g. eth0)")
    macvlan_mode = options.get("macvlan_mode")
    if macvlan_mode is not None and macvlan_mode not in MACVLAN_MODES:
        raise Reject(ErrorCode.INVALID_FIELD,
                     f"macvlan_mode {macvlan_mode!r} of network {name!r} is unknown: use bridge or private")
    if "ip_range" in options:
        ip_range(name, options["ip_range"], base, prefix)
    if mode is Mode.VLAN:
        vlan = options.get("vlan")
        if vlan is None or not vlan.isdigit() or not 1 <= int(vlan) <= 4094:
            raise Reject(ErrorCode.INVALID_FIELD,
                         f"network {name!r} of mode vlan needs option vlan=ID with an ID of 1..4094"
                         + ("" if vlan is None else f", not {vlan!r}"))
    return dict(sorted(options.items()))


def ip_range(name: str, text: str, base: int, prefix: int) -> tuple[int, int]:
    """The slots ``[first, last]`` of network ``name``'s ``ip_range`` option (offsets in its subnet)."""
    try:
        rng = ipaddress.IPv4Network(text, strict=True)
    except ValueError as exc:
        raise Reject(ErrorCode.INVALID_CIDR,
                     f"ip_range {text!r} of network {name!r} is not an IPv4 CIDR like 10.0.0.128/25 ({exc})") from None
    start, end = int(rng.network_address), int(rng.broadcast_address) + 1
    if rng.prefixlen < prefix or not base <= start < end <= base + (1 << (32 - prefix)):
        raise Reject(ErrorCode.INVALID_FIELD,
                     f"ip_range {text} of network {name!r} is not inside its subnet: pick a range inside it")
    return start - base, end - 1 - base

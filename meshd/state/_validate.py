"""Field checks shared by the command handlers; each raises :class:`Reject` with
a message that names the object and says what to do."""

from __future__ import annotations

import ipaddress
import re

from ._commands import ErrorCode, Reject
from ._types import Qos

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
_ID_RE = re.compile(r"[!-~]{1,128}\Z")  # printable ASCII, no spaces
_MAC_RE = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}\Z")

#: smallest and largest subnets a network may use (prefix lengths)
MIN_PREFIX = 8
MAX_PREFIX = 30
MTU_MIN, MTU_MAX = 68, 9000
#: 100 Gbit/s
RATE_MAX_KBIT = 100_000_000
BURST_MAX_BYTES = 2**32 - 1
LATENCY_MAX_MS = 60_000


def check_name(what: str, value: object) -> str:
    """Network and tenant names: 1-64 of letters, digits, ``_ . -``, not starting with a symbol."""
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise Reject(
            ErrorCode.INVALID_FIELD,
            f"{what} {value!r} is not a valid name: use 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit",
        )
    return value


def check_id(what: str, value: object) -> str:
    """Endpoint ids, hosts and policy ids: 1-128 printable ASCII characters without spaces."""
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise Reject(
            ErrorCode.INVALID_FIELD,
            f"{what} {value!r} is not valid: use 1-128 printable ASCII characters without spaces",
        )
    return value


#: a container name as Docker allows them (and the CNI's container names), at most 255 characters
_CONTAINER_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}\Z")


def check_container_name(what: str, value: object) -> str:
    if not isinstance(value, str) or not _CONTAINER_NAME_RE.match(value):
        raise Reject(
            ErrorCode.INVALID_FIELD,
            f"{what} {value!r} is not a valid container name: use 1-255 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit",
        )
    return value


def check_range(what: str, value: object, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise Reject(ErrorCode.INVALID_FIELD, f"{what} {value!r} is out of range: use {low}..{high}")
    return value


def check_qos(where: str, qos: object) -> Qos:
    if not isinstance(qos, Qos):
        raise Reject(ErrorCode.INVALID_FIELD, f"QoS of {where} must be a Qos record, got {qos!r}")
    check_range(f"QoS rate_kbit of {where}", qos.rate_kbit, 0, RATE_MAX_KBIT)
    check_range(f"QoS burst_bytes of {where}", qos.burst_bytes, 0, BURST_MAX_BYTES)
    check_range(f"QoS latency_ms of {where}", qos.latency_ms, 0, LATENCY_MAX_MS)
    if qos.rate_kbit and not qos.burst_bytes:
        raise Reject(
            ErrorCode.INVALID_FIELD,
            f"QoS of {where} sets rate_kbit={qos.rate_kbit} without burst_bytes: "
            "give a burst of at least rate/8 bytes per 10 ms (e.g. 32 KiB)",
        )
    return qos


def check_labels(where: str, labels: object) -> dict[str, str]:
    if not isinstance(labels, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and 0 < len(k) <= 63 and len(v) <= 255
        for k, v in labels.items()
    ):
        raise Reject(
            ErrorCode.INVALID_FIELD,
            f"labels of {where} must map keys of 1-63 characters to string values of up to 255",
        )
    if len(labels) > 64:
        raise Reject(ErrorCode.INVALID_FIELD, f"{where} has {len(labels)} labels; at most 64 are kept")
    return dict(labels)


def _reject_v6(what: str, value: str) -> None:
    if ":" in value:
        raise Reject(
            ErrorCode.IPV6_UNSUPPORTED,
            f"{what} {value!r} is IPv6; meshd supports IPv4 only for now: give an IPv4 value",
        )


def parse_cidr(network: str, value: object) -> tuple[int, int]:
    """``"10.1.0.0/16"`` -> (network address as int, prefix length)."""
    what = f"subnet of network {network!r}"
    if not isinstance(value, str):
        raise Reject(ErrorCode.INVALID_CIDR, f"{what} must be a string like '10.1.0.0/16'")
    _reject_v6(what, value)
    if "/" not in value:
        raise Reject(
            ErrorCode.INVALID_CIDR, f"{what} {value!r} has no prefix length: write it as e.g. '{value}/24'"
        )
    try:
        net = ipaddress.IPv4Network(value, strict=True)
    except ValueError as exc:
        hint = ""
        if "has host bits set" in str(exc):
            fixed = ipaddress.IPv4Network(value, strict=False)
            hint = f": did you mean {fixed}?"
        raise Reject(ErrorCode.INVALID_CIDR, f"{what} {value!r} is not a valid IPv4 CIDR ({exc}){hint}") from None
    if not MIN_PREFIX <= net.prefixlen <= MAX_PREFIX:
        raise Reject(
            ErrorCode.INVALID_CIDR,
            f"{what} {value!r} has prefix /{net.prefixlen}: use /{MIN_PREFIX} to /{MAX_PREFIX} "
            "(a network needs room for its network, broadcast and gateway addresses)",
        )
    return int(net.network_address), net.prefixlen


def parse_ipv4(what: str, value: object) -> int:
    if not isinstance(value, str):
        raise Reject(ErrorCode.INVALID_IP, f"{what} must be a string like '10.1.0.5'")
    _reject_v6(what, value)
    try:
        return int(ipaddress.IPv4Address(value))
    except ValueError:
        raise Reject(ErrorCode.INVALID_IP, f"{what} {value!r} is not an IPv4 address like '10.1.0.5'") from None


def parse_mac(what: str, value: object) -> int:
    if not isinstance(value, str) or not _MAC_RE.match(value):
        raise Reject(ErrorCode.INVALID_MAC, f"{what} {value!r} is not a MAC address like '02:00:00:00:00:01'")
    mac = int(value.replace(":", ""), 16)
    if mac >> 40 & 1:
        raise Reject(
            ErrorCode.INVALID_MAC,
            f"{what} {value!r} is a multicast address: clear the lowest bit of the first octet",
        )
    if mac == 0:
        raise Reject(ErrorCode.INVALID_MAC, f"{what} {value!r} is all zeros: give a real unicast MAC")
    return mac

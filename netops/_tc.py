"""Traffic control: the root TBF qdisc (a rate limit), its removal, and the qdisc dump parser.

Pure functions: bytes in, ``Msg`` out (a tcmsg and TCA_* attributes,
<linux/pkt_sched.h>). The rate goes both in the 32-bit rate spec (capped)
and in TCA_TBF_RATE64, the burst as TCA_TBF_BURST (the kernel derives the
token bucket's buffer from it), the queue limit as rate × latency + burst
(what ``tc`` computes for ``latency L``).
"""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass

from netops import _nl
from netops._nl import AF_UNSPEC, GONE, UPSERT, Msg, attr, cstr, nested, u32

TCA_KIND, TCA_OPTIONS = 1, 2
TCA_TBF_PARMS, TCA_TBF_RATE64, TCA_TBF_BURST = 1, 4, 6
TC_H_ROOT = 0xFFFFFFFF
TC_LINKLAYER_ETHERNET = 1

_TCMSG = struct.Struct("=BxxxiIII")


def tcmsg(index: int = 0, handle: int = 0, parent: int = 0) -> bytes:
    """The fixed header of a qdisc message (all zeros in a dump request: every qdisc)."""
    return _TCMSG.pack(AF_UNSPEC, index, handle, parent, 0)


def tbf(index: int, name: str, rate_kbit: int, burst_bytes: int, latency_ms: float) -> Msg:
    """Root TBF qdisc (``tc qdisc replace dev X root tbf rate R burst B latency L``)."""
    rate_bps = rate_kbit * 1000 // 8
    limit = int(rate_bps * latency_ms / 1000) + burst_bytes
    ratespec = struct.pack("=BBHhHI", 0, TC_LINKLAYER_ETHERNET, 0, -1, 0, min(rate_bps, 0xFFFFFFFF))
    qopt = ratespec + b"\0" * 12 + struct.pack("=III", limit, 0, 0)
    opts = attr(TCA_TBF_PARMS, qopt) + attr(TCA_TBF_RATE64, struct.pack("=Q", rate_bps))
    opts += u32(TCA_TBF_BURST, burst_bytes)
    body = tcmsg(index, 0x10000, TC_H_ROOT) + cstr(TCA_KIND, "tbf") + nested(TCA_OPTIONS, opts)
    what = f"set tbf rate {rate_kbit}kbit burst {burst_bytes} latency {latency_ms}ms on"
    return Msg(_nl.RTM_NEWQDISC, UPSERT, body, what, name)


def del_root_qdisc(index: int, name: str) -> Msg:
    body = tcmsg(index, 0, TC_H_ROOT)
    return Msg(_nl.RTM_DELQDISC, 0, body, "remove root qdisc of", name, GONE | {errno.EINVAL})


# ---------------------------------------------------------------- parsing dumps


@dataclass(frozen=True, slots=True)
class Qdisc:
    index: int
    kind: str
    rate_bps: int
    burst_bytes: int


def parse_qdisc(body: memoryview) -> Qdisc:
    _family, index, _handle, parent, _info = _TCMSG.unpack_from(body)
    attrs = _nl.parse_attrs(body, _TCMSG.size)
    kind = _nl.get_str(attrs, TCA_KIND) or ""
    rate = burst = 0
    if kind == "tbf" and parent == TC_H_ROOT and TCA_OPTIONS in attrs:
        opts = _nl.parse_attrs(attrs[TCA_OPTIONS])
        if TCA_TBF_RATE64 in opts:
            rate = struct.unpack_from("=Q", opts[TCA_TBF_RATE64])[0]
        elif TCA_TBF_PARMS in opts:
            rate = struct.unpack_from("=I", opts[TCA_TBF_PARMS], 8)[0]
    return Qdisc(index, kind if parent == TC_H_ROOT else "", rate, burst)

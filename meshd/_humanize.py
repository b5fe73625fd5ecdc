"""Numbers and times as an operator reads them (shared by the CLI and ``meshd top``)."""

from __future__ import annotations

from typing import Any


def rate(bytes_per_s: Any, *, compact: bool = False) -> str:
    """A rate in bytes/s as bits/s: ``10.0 Mbit/s`` (``10M`` when ``compact``); '' if not a number."""
    if not isinstance(bytes_per_s, (int, float)) or isinstance(bytes_per_s, bool):
        return ""
    bits = bytes_per_s * 8
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if bits >= scale:
            value = bits / scale
            if compact:
                return f"{value:.0f}{unit}" if value >= 100 else f"{value:.1f}{unit}"
            return f"{value:.1f} {unit}bit/s"
    return f"{bits:.0f}" if compact else f"{bits:.0f} bit/s"


def kbit(rate_kbit: Any) -> str:
    """A configured rate limit in kbit/s: ``10 Mbit/s``; ``-`` when unlimited (0 or absent)."""
    if not isinstance(rate_kbit, int) or rate_kbit <= 0:
        return "-"
    for unit, scale in (("Gbit/s", 1_000_000), ("Mbit/s", 1_000)):
        if rate_kbit >= scale:
            return f"{rate_kbit / scale:g} {unit}"
    return f"{rate_kbit} kbit/s"


def duration(seconds: Any) -> str:
    """``45s``, ``12m``, ``3h05m``, ``2d04h``: at most two units."""
    if not isinstance(seconds, (int, float)):
        return "?"
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s" if s < 600 else f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def ago(when: Any, now: float) -> str:
    """How long before ``now`` the epoch time ``when`` was: ``12s ago``."""
    if not isinstance(when, (int, float)) or not when:
        return "?"
    return f"{duration(now - when)} ago"


def short_id(container_id: Any) -> str:
    """A container id as ``docker ps`` shows it (12 characters)."""
    return str(container_id or "")[:12]


def container_label(row: dict[str, Any]) -> str:
    """A container's name when the agent knows it, else its short id."""
    return str(row.get("container") or row.get("container_name") or short_id(row.get("endpoint_id")
                                                                             or row.get("container_id")))

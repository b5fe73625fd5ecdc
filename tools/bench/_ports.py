"""Loopback TCP ports for the servers a benchmark (or a test) starts."""

from __future__ import annotations

import random
import socket
from pathlib import Path

_LOWEST = 10_000  #: below this are well-known and registered services' ports


def free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports that are free on 127.0.0.1 now.

    They are taken below the kernel's ephemeral range (``net.ipv4.ip_local_port_range``):
    a port picked with ``bind(("127.0.0.1", 0))`` and closed can be handed out again by the
    next such pick, or become the local port of some outgoing connection, before its server
    binds it (a Raft test's node then died of EADDRINUSE).  All ``n`` are held until every one
    is chosen, so they differ.
    """
    low = _ephemeral_low()
    rng = random.SystemRandom()
    held: list[socket.socket] = []
    tries = 100 * n + 1000
    try:
        while len(held) < n:
            if tries == 0:
                raise RuntimeError(f"no {n} free TCP ports on 127.0.0.1 between {_LOWEST} and {low}")
            tries -= 1
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", rng.randrange(_LOWEST, low) if low - _LOWEST > 10 * n else 0))
            except OSError:
                s.close()
                continue
            held.append(s)
        return [s.getsockname()[1] for s in held]
    finally:
        for s in held:
            s.close()


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default

"""Facts about this host the agent needs at start: its address, and one agent per data dir."""

from __future__ import annotations

import fcntl
import ipaddress
import os
import socket
from pathlib import Path

from pyroute2 import IPRoute


class AgentStartError(RuntimeError):
    """The agent cannot start; the message says what to fix."""


def detect_advertise_address() -> str:
    """The IPv4 address other hosts should use to reach this one.

    The source address of the default route if there is one; otherwise the
    only global IPv4 address of this network namespace (a lab host has no
    default route).

    Raises:
      AgentStartError: no address, or several and no default route.
    """
    with IPRoute() as ipr:
        for route in ipr.get_default_routes(family=socket.AF_INET):
            oif = route.get_attr("RTA_OIF")
            addrs = [a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(family=socket.AF_INET, index=oif)]
            if addrs:
                return addrs[0]
        candidates = sorted({
            a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(family=socket.AF_INET)
            if not ipaddress.ip_address(a.get_attr("IFA_ADDRESS")).is_loopback})
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise AgentStartError("this host has no IPv4 address to advertise; configure the underlay interface first")
    raise AgentStartError(f"this host has several IPv4 addresses ({', '.join(candidates)}) and no default route: "
                          f"set agent.advertise_address to the one other hosts reach (the VTEP address)")


class DataDirLock:
    """An exclusive lock on ``<data_dir>/agent.lock``: one agent per data directory.

    Raises:
      AgentStartError: another agent holds the lock (its PID is named).
    """

    def __init__(self, data_dir: str) -> None:
        self.path = Path(data_dir) / "agent.lock"
        self._fd: int | None = None

    def __enter__(self) -> DataDirLock:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise AgentStartError(f"another meshd agent (PID {holder}) uses {self.path.parent}; "
                                  f"stop it first, or give this one another agent.data_dir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None



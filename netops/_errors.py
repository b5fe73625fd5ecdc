"""NetopsError: every kernel failure names the operation, the object and a hint.

pyroute2's bare ``NetlinkError(code)`` surfaces as "File exists" and names no
object; netops never lets a raw errno escape without saying what it was doing.
"""

from __future__ import annotations

import errno as _errno
import os

# Hints by errno: the usual cause and what to do about it.
_HINTS = {
    _errno.ESRCH: "no such process — container exited?",
    _errno.ENOENT: "object not found — removed concurrently?",
    _errno.ENODEV: "no such device — removed concurrently?",
    _errno.EEXIST: "already exists — name clash with an object meshd does not own?",
    _errno.EBUSY: "busy — interface index or name already taken",
    _errno.EPERM: "permission denied — run as root (CAP_NET_ADMIN)",
    _errno.EOPNOTSUPP: "operation not supported by this kernel",
    _errno.EINVAL: "invalid argument — kernel rejected the request",
    _errno.ERANGE: "value out of range (MTU larger than the underlay allows?)",
    _errno.ENETUNREACH: "network unreachable — gateway outside the subnet?",
}


class NetopsError(Exception):
    """A kernel operation failed.

    Attributes:
        op: what netops was doing ("add vxlan", "move veth into netns", ...).
        obj: the object it was doing it to ("mx-42", "veth mv3a1c -> pid 4121").
        errno: the kernel's errno (0 when the failure was not a syscall).
        hint: the likely cause and fix, in plain words.
    """

    def __init__(self, op: str, obj: str, errno: int = 0, hint: str = "") -> None:
        self.op = op
        self.obj = obj
        self.errno = errno
        self.hint = hint or _HINTS.get(errno, os.strerror(errno) if errno else "")
        super().__init__(self._message())

    def _message(self) -> str:
        cause = os.strerror(self.errno) if self.errno else "failed"
        text = f"cannot {self.op} {self.obj}: {cause.lower()}"
        if self.hint and self.hint.lower() != cause.lower():
            text += f" ({self.hint})"
        return text


class UnsupportedSetting(NetopsError):
    """A requested setting needs a kernel feature this host lacks (e.g. netem delay)."""

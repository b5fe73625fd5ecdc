"""Child processes of a benchmark that cannot outlive it."""

from __future__ import annotations

import ctypes
import signal

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """``preexec_fn``: the kernel sends SIGKILL to the child when the benchmark process dies.

    A benchmark interrupted by SIGKILL or a crash runs no ``finally``; without
    this, its servers (Raft nodes, etcd members) keep running, owned by init.
    The signal follows the *thread* that started the child: start such
    children from a thread that lives as long as they should (the main one).
    """
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")

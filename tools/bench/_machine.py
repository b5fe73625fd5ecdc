"""What the machine gives a lab of many agents: load, CPU, memory and file descriptors.

A benchmark that runs hundreds of ``meshd agent`` processes on one machine
must say when the limit it hit is the machine's, not meshd's. A
:class:`MachineSampler` thread reads ``/proc`` every ``interval_s`` seconds
while the benchmark runs; :meth:`MachineSampler.summary` gives the peaks and
means, and :func:`process_figures` the per-agent RSS, descriptors and CPU
seconds of a set of processes at one moment.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

_TICK = os.sysconf("SC_CLK_TCK")


def load_avg() -> tuple[float, float, float]:
    one, five, fifteen = Path("/proc/loadavg").read_text().split()[:3]
    return float(one), float(five), float(fifteen)


def _cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot (``/proc/stat``)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def softnet_dropped() -> int:
    """Packets the kernel dropped because a CPU's input backlog was full (``/proc/net/softnet_stat``,
    second column, summed over CPUs). Lab hosts' packets all pass through these queues
    (``net.core.netdev_max_backlog`` each): a drop here is a lost packet on the lab's LAN."""
    return sum(int(line.split()[1], 16) for line in Path("/proc/net/softnet_stat").read_text().splitlines())


def mem_available_mib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable"):
            return int(line.split()[1]) // 1024
    raise RuntimeError("/proc/meminfo has no MemAvailable line: not a Linux kernel ≥ 3.14?")


def _rss_kib(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))
    except (OSError, StopIteration):
        return None


def _proc(pid: int) -> tuple[int, int, int, float] | None:
    """(RSS KiB, PSS KiB, open descriptors, CPU seconds) of ``pid``; None when it is gone.

    PSS counts pages shared by several processes (the interpreter, libraries
    mapped by every agent) once in total, split between them: the sum of PSS
    is what the processes cost the machine, the sum of RSS overstates it.
    """
    rss = _rss_kib(pid)
    if rss is None:
        return None
    try:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        pss = int(next(line.split()[1] for line in rollup.splitlines() if line.startswith("Pss:")))
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(stat[11]) + int(stat[12])) / _TICK  # utime, stime
    except (OSError, StopIteration, IndexError, ValueError):
        return None
    return rss, pss, fds, cpu


def process_figures(pids: Iterable[int]) -> dict[str, Any]:
    """RSS, PSS, descriptors and CPU seconds of the live ``pids``: total, per process mean and max."""
    rows = [r for r in map(_proc, pids) if r is not None]
    if not rows:
        return {"processes": 0}
    rss, pss, fds, cpu = zip(*rows, strict=True)
    n = len(rows)
    return {"processes": n, "rss_total_mib": round(sum(rss) / 1024), "rss_mean_mib": round(sum(rss) / 1024 / n, 1),
            "rss_max_mib": round(max(rss) / 1024, 1), "pss_total_mib": round(sum(pss) / 1024),
            "pss_mean_mib": round(sum(pss) / 1024 / n, 1), "fds_mean": round(sum(fds) / n, 1), "fds_max": max(fds),
            "cpu_s_total": round(sum(cpu), 1), "cpu_s_mean": round(sum(cpu) / n, 2),
            "machine_available_mib": mem_available_mib()}


class MachineSampler:
    """A thread sampling load average, machine CPU use and the RSS of ``pids()`` until :meth:`close`."""

    def __init__(self, pids: Callable[[], Iterable[int]], interval_s: float = 2.0) -> None:
        self._pids = pids
        self._interval = interval_s
        self.samples: list[dict[str, float]] = []
        self._stop = threading.Event()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="machine-sampler", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        busy0, total0 = _cpu_times()
        while not self._stop.wait(self._interval):
            busy, total = _cpu_times()
            with contextlib.suppress(Exception):  # a process ending mid-read is not the benchmark's failure
                rss = [r for r in map(_rss_kib, self._pids()) if r is not None]  # cheap: no smaps, no fd lists
                self.samples.append({
                    "t_s": round(time.monotonic() - self._t0, 1), "load1": load_avg()[0],
                    "cpu_busy": round((busy - busy0) / max(1, total - total0), 3),
                    "rss_total_mib": round(sum(rss) / 1024), "agents": len(rss),
                })  # fmt: skip
            busy0, total0 = busy, total

    def close(self) -> None:
        self._stop.set()
        self._thread.join(self._interval + 5)

    def summary(self) -> dict[str, Any]:
        """Peaks and means over the samples (``cpu_busy``: fraction of all cores busy, 1.0 = saturated)."""
        s = list(self.samples)
        if not s:
            return {"samples": 0}
        busy = [x["cpu_busy"] for x in s]
        return {"samples": len(s), "seconds": s[-1]["t_s"], "load1_max": max(x["load1"] for x in s),
                "cpu_busy_mean": round(sum(busy) / len(busy), 3),
                "cpu_saturated_fraction": round(sum(b >= 0.95 for b in busy) / len(busy), 3),
                "rss_total_mib_max": max(x["rss_total_mib"] for x in s), "cores": os.cpu_count()}


def renice(pid: int, nice: int) -> int:
    """Give every thread of ``pid`` the niceness ``nice`` (Linux: per thread; later threads inherit it
    from the one that creates them); returns how many threads were set."""
    done = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):
            os.setpriority(os.PRIO_PROCESS, int(tid), nice)
            done += 1
    return done



class Renicer:
    """A thread that gives every pid ``pids()`` names the niceness ``nice``, once each, every
    ``interval_s`` seconds until :meth:`close`: the benchmarks run the Raft *voters* (the autopilot
    picks them as they join, so they are known only while the run goes) ahead of the other agents
    on a machine where hundreds share two cores. ``pids()`` may raise: that poll is skipped."""

    def __init__(self, pids: Callable[[], Iterable[int]], nice: int, interval_s: float = 1.0) -> None:
        self._pids, self._nice, self._interval = pids, nice, interval_s
        #: pid -> seconds since the start when it was reniced
        self.reniced: dict[int, float] = {}
        self._t0 = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="renicer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            with contextlib.suppress(Exception):  # a status query timing out under load: next poll
                for pid in self._pids():
                    if pid not in self.reniced and renice(pid, self._nice):
                        self.reniced[pid] = round(time.monotonic() - self._t0, 1)
            if self._stop.wait(self._interval):
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join(self._interval + 15)

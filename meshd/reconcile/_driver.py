"""The apply driver: dump → plan → apply in a worker thread, triggered or periodic.

``reconcile_once`` is the whole synchronous pass (netops objects are opened
and closed inside it, in the calling thread). ``Reconciler`` is the thin trio
driver: passes are coalesced (any number of triggers while a pass runs cause
one more pass), one pass at a time, plus a periodic full pass.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import trio

import netops
from netops import EnsureVxlan, Op

from meshd.reconcile._desired import HostDesired
from meshd.reconcile._plan import plan
from meshd.reconcile._rules import FAMILY, NAT_FAMILY, TABLE

log = logging.getLogger("meshd.reconcile")


@dataclass(frozen=True, slots=True)
class PassReport:
    """One reconcile pass: the operations applied, the errors, the MTU self-checks."""

    ops: tuple[Op, ...]
    errors: tuple[str, ...]
    mtu_checks: tuple[netops.MtuCheck, ...]
    duration_s: float


def reconcile_once(desired: HostDesired, check_mtu: bool = True) -> PassReport:
    """Dump, plan and apply in the calling thread's network namespace.

    When a tunnel is (re)built and ``check_mtu`` is set, the underlay path to
    one live remote VTEP is checked (full-size DF ping passes, +1 fails).
    """
    start = time.perf_counter()
    actual = netops.dump_owned(desired.router_prefix)
    ops = plan(desired, actual, netops.dump_table(FAMILY, TABLE), netops.dump_table(NAT_FAMILY, TABLE))
    indexes = {name: link.index for name, link in actual.links.items()}
    report = netops.apply(ops, indexes) if ops else netops.ApplyReport(0, ())
    checks = []
    if check_mtu:
        for op in ops:
            if isinstance(op, EnsureVxlan):
                remotes = sorted(desired.vteps.get(op.vni, frozenset()) - {desired.underlay_ip})
                if remotes:
                    checks.append(netops.check_path_mtu(remotes[0], desired.underlay_mtu))
    return PassReport(tuple(ops), tuple(str(e) for e in report.errors), tuple(checks),
                      time.perf_counter() - start)


@dataclass(frozen=True, slots=True)
class ReconcilerStatus:
    passes: int
    ops_applied: int
    errors_total: int
    last_errors: tuple[str, ...]
    last_pass_ms: float
    mtu_failures: int


class Reconciler:
    """Runs reconcile passes for one host.

    Args:
        desired: returns the current HostDesired (called at the start of each pass).
        period_s: a full pass at least this often, even without triggers.
        netns: run passes inside this netns path (None: the process's own).
    """

    def __init__(self, desired: Callable[[], HostDesired], *, period_s: float = 30.0,
                 netns: str | None = None) -> None:
        self._desired = desired
        self._period_s = period_s
        self._netns = netns
        self._wake = trio.Event()
        self._limiter = trio.CapacityLimiter(1)
        self._passes = self._ops = self._errors = self._mtu_failures = 0
        self._last_errors: tuple[str, ...] = ()
        self._last_ms = 0.0
        self.last_report: PassReport | None = None

    def trigger(self) -> None:
        """Ask for a pass soon (state change, membership event, container event)."""
        self._wake.set()

    def status(self) -> ReconcilerStatus:
        return ReconcilerStatus(self._passes, self._ops, self._errors, self._last_errors, self._last_ms,
                                self._mtu_failures)

    def _pass_sync(self, desired: HostDesired) -> PassReport:
        if self._netns is None:
            return reconcile_once(desired)
        with netops.in_netns(self._netns):
            return reconcile_once(desired)

    async def run_pass(self, desired: HostDesired | None = None) -> PassReport:
        """One pass now (in a worker thread), towards ``desired`` (default: ask the callback)."""
        if desired is None:
            desired = self._desired()
        report = await trio.to_thread.run_sync(self._pass_sync, desired, limiter=self._limiter)
        self._record(report)
        return report

    def _record(self, r: PassReport) -> None:
        self.last_report = r
        self._passes += 1
        self._ops += len(r.ops)
        self._errors += len(r.errors)
        self._last_errors = r.errors
        self._last_ms = r.duration_s * 1000
        self._mtu_failures += sum(not c.ok for c in r.mtu_checks)
        if r.ops or r.errors:
            log.info("reconcile pass ops=%d errors=%d ms=%.1f", len(r.ops), len(r.errors), self._last_ms)
        for err in r.errors:
            log.warning("reconcile error=%r", err)
        for c in r.mtu_checks:
            if not c.ok:
                log.warning("tunnel mtu check failed remote=%s mtu=%d full_size_passes=%s one_more_fails=%s",
                            c.remote_ip, c.mtu, c.full_size_passes, c.one_more_fails)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Pass now, then whenever triggered, and at least every ``period_s``."""
        task_status.started()
        while True:
            self._wake = trio.Event()
            await self.run_pass()
            with trio.move_on_after(self._period_s):
                await self._wake.wait()

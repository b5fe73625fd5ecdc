"""The apply driver: dump → plan → apply in a worker thread, triggered or periodic.

``reconcile_once`` is the whole synchronous pass (netops objects are opened
and closed inside it, in the calling thread). ``Reconciler`` is the thin trio
driver: passes are coalesced (any number of triggers while a pass runs cause
one more pass), one pass at a time, plus a periodic full pass.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import trio

import netops
from netops import EnsureVxlan, Op

from meshd.reconcile._desired import HostDesired
from meshd.reconcile._plan import plan
from meshd.reconcile._rules import FAMILY, NAT_FAMILY, TABLE

log = logging.getLogger("meshd.reconcile")
T = TypeVar("T")


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
    checks = [netops.check_path_mtu(r, desired.underlay_mtu) for r in mtu_targets(desired, ops)] if check_mtu else []
    return PassReport(tuple(ops), tuple(str(e) for e in report.errors), tuple(checks),
                      time.perf_counter() - start)


def mtu_targets(desired: HostDesired, ops: Sequence[Op]) -> list[str]:
    """One live remote VTEP per tunnel (re)built by ``ops``: where its path MTU is checked."""
    targets = []
    for op in ops:
        if isinstance(op, EnsureVxlan):
            remotes = sorted(desired.vteps.get(op.vni, frozenset()) - {desired.underlay_ip})
            if remotes and remotes[0] not in targets:
                targets.append(remotes[0])
    return targets


@dataclass(frozen=True, slots=True)
class ReconcilerStatus:
    passes: int
    ops_applied: int
    errors_total: int
    last_errors: tuple[str, ...]
    last_pass_ms: float  # of the last full pass (dump + plan + apply)
    mtu_failures: int
    additions_applied: int = 0  # passes that applied planned additions without a dump (apply_ops)


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
        self._passes = self._ops = self._errors = self._mtu_failures = self._additions = 0
        self._last_errors: tuple[str, ...] = ()
        self._last_ms = 0.0
        self.last_report: PassReport | None = None
        #: (remote VTEP, MTU) path checks of tunnels built by passes, not run yet
        self.mtu_pending: list[tuple[str, int]] = []

    def trigger(self) -> None:
        """Ask for a pass soon (state change, membership event, container event)."""
        self._wake.set()

    def status(self) -> ReconcilerStatus:
        return ReconcilerStatus(self._passes, self._ops, self._errors, self._last_errors, self._last_ms,
                                self._mtu_failures, self._additions)

    def _in_netns(self, fn: Callable[..., T], *args: Any) -> T:
        if self._netns is None:
            return fn(*args)
        with netops.in_netns(self._netns):
            return fn(*args)

    async def run_pass(self, desired: HostDesired | None = None) -> PassReport:
        """One pass now (in a worker thread), towards ``desired`` (default: ask the callback).

        The path-MTU self-checks of tunnels the pass built are not part of it
        (the one meant to fail waits out its ping timeout): they are left in
        :attr:`mtu_pending` for :meth:`check_pending_mtu`, which the caller
        runs in the background.
        """
        if desired is None:
            desired = self._desired()
        report = await trio.to_thread.run_sync(self._in_netns, reconcile_once, desired, False, limiter=self._limiter)
        self._record(report)
        self.mtu_pending += [(r, desired.underlay_mtu) for r in mtu_targets(desired, report.ops)
                             if (r, desired.underlay_mtu) not in self.mtu_pending]
        return report

    async def apply_ops(self, ops: Sequence[Op]) -> PassReport:
        """Apply planned operations without a dump (a pass from :func:`plan_additions`)."""
        def run() -> PassReport:
            start = time.perf_counter()
            report = netops.apply(ops)
            return PassReport(tuple(ops), tuple(str(e) for e in report.errors), (), time.perf_counter() - start)

        report = await trio.to_thread.run_sync(self._in_netns, run, limiter=self._limiter)
        self._record(report, full=False)
        return report

    async def check_pending_mtu(self) -> tuple[netops.MtuCheck, ...]:
        """Run the path-MTU checks :meth:`run_pass` left (in a worker thread); log the failures."""
        pending, self.mtu_pending = self.mtu_pending, []
        checks = []
        for remote, mtu in pending:
            checks.append(await trio.to_thread.run_sync(self._in_netns, netops.check_path_mtu, remote, mtu))
        self._record_mtu(checks)
        return tuple(checks)

    def _record(self, r: PassReport, full: bool = True) -> None:
        self.last_report = r
        self._ops += len(r.ops)
        self._errors += len(r.errors)
        self._last_errors = r.errors
        if full:
            self._passes += 1
            self._last_ms = r.duration_s * 1000
        else:
            self._additions += 1
        if r.ops or r.errors:
            log.info("reconcile %s ops=%d errors=%d ms=%.1f", "pass" if full else "additions", len(r.ops),
                     len(r.errors), r.duration_s * 1000)
        for err in r.errors:
            log.warning("reconcile error=%r", err)
        self._record_mtu(r.mtu_checks)

    def _record_mtu(self, checks: Sequence[netops.MtuCheck]) -> None:
        self._mtu_failures += sum(not c.ok for c in checks)
        for c in checks:
            if not c.ok:
                log.warning("tunnel mtu check failed remote=%s mtu=%d full_size_passes=%s one_more_fails=%s",
                            c.remote_ip, c.mtu, c.full_size_passes, c.one_more_fails)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Pass now, then whenever triggered, and at least every ``period_s``."""
        task_status.started()
        while True:
            self._wake = trio.Event()
            await self.run_pass()
            if self.mtu_pending:
                await self.check_pending_mtu()
            with trio.move_on_after(self._period_s):
                await self._wake.wait()

"""The reconcile loop of a host: the one place that decides when and how a pass runs.

Theory of operation
-------------------
The owner (the agent) gives a ``desired()`` callback, triggers the loop on
every change of its inputs, and listens to the reports. The loop:

1. waits for ``ready()`` before the first pass (after a restart the kernel
   already holds this host's data plane: the owner makes sure its inputs are
   complete, so the first pass does not tear down what is right);
2. coalesces triggers: any number of them during a pass cause one more pass;
3. skips a triggered pass whose desired state equals the last *clean* pass's
   (the kernel is taken to match it between periodic passes), reported as
   :attr:`~meshd.reconcile.PassKind.SKIPPED`;
4. when the new desired state only adds local endpoints to networks already
   built, applies just their veths without a dump
   (:func:`~meshd.reconcile.plan_additions`); if that fails, or anything
   else changed, runs a full pass (dump, plan, apply);
5. runs a full pass at least every ``interval_s``, however busy the triggers:
   it repairs drift made outside meshd;
6. runs the path-MTU self-checks of the tunnels a pass built or extended in
   the background (a ping that gets no answer waits out its timeout): a
   remote that the network's full frames do not reach is an MTU *problem*
   (:attr:`Reconciler.mtu_problems`), told to the MTU listeners, until a later
   check towards it passes; a check whose ping does not even finish (a
   starved machine) is tried again after the next pass;
7. hands every report, skipped ones included, to each listener, in order.

Passes run in a worker thread, one at a time, inside ``netns`` when given.
"""

from __future__ import annotations

import errno
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import trio

import netops
from meshd.reconcile._desired import HostDesired
from meshd.reconcile._pass import apply_additions, mtu_targets, reconcile_once
from meshd.reconcile._plan import plan_additions
from meshd.reconcile._report import PassKind, PassReport

log = logging.getLogger("meshd.reconcile")
T = TypeVar("T")

#: A listener gets every report, synchronously, right after its pass.
ReportListener = Callable[[PassReport], None]
#: An MTU listener gets every path-MTU check, right after it ran.
MtuListener = Callable[[netops.MtuCheck], None]


@dataclass(frozen=True, slots=True)
class ReconcilerStatus:
    passes: int              #: full passes (dump + plan + apply)
    additions_applied: int   #: passes that applied planned additions without a dump
    passes_skipped: int      #: triggered passes with nothing new to build
    ops_applied: int
    errors_total: int
    last_errors: tuple[str, ...]
    last_pass_ms: float      #: of the last full pass
    mtu_checks: int
    mtu_failures: int        #: checks whose full-size frame did not pass
    mtu_problems: int        #: remotes whose last check failed (a blackhole now)
    mtu_postponed: int = 0   #: checks whose ping did not finish in time (a starved host): tried again later


async def _nothing_to_wait_for() -> None:
    return None


class Reconciler:
    """The reconcile loop of one host; see the module docstring.

    Args:
        desired: returns the current desired state (called at each trigger).
        interval_s: a full pass at least this often.
        netns: run passes inside this netns path (None: the process's own).
        ready: awaited once before the first pass.
    """

    def __init__(self, desired: Callable[[], HostDesired], *, interval_s: float = 30.0,
                 netns: str | None = None, ready: Callable[[], Awaitable[None]] = _nothing_to_wait_for) -> None:
        self._desired = desired
        self._interval_s = interval_s
        self._netns = netns
        self._ready = ready
        self._wake = trio.Event()
        self._limiter = trio.CapacityLimiter(1)
        self._listeners: list[ReportListener] = []
        self._mtu_listeners: list[MtuListener] = []
        self._passes = self._additions = self._skipped = self._ops = self._errors = 0
        self._mtu_checks = self._mtu_failures = self._mtu_postponed = 0
        self._last_errors: tuple[str, ...] = ()
        self._last_ms = 0.0
        self._checking_mtu = False
        self.last_report: PassReport | None = None
        #: (remote VTEP, frame bytes) path checks of tunnels built by passes, not run yet
        self.mtu_pending: list[tuple[str, int]] = []
        self.last_mtu_checks: tuple[netops.MtuCheck, ...] = ()
        #: (remote VTEP, frame bytes) -> the last check, for those whose full frames did not pass
        self.mtu_problems: dict[tuple[str, int], netops.MtuCheck] = {}

    def trigger(self) -> None:
        """Ask for a pass soon (a state change, a membership event, a container event)."""
        self._wake.set()

    def listen(self, listener: ReportListener) -> None:
        """Call ``listener(report)`` after every pass from now on."""
        self._listeners.append(listener)

    def listen_mtu(self, listener: MtuListener) -> None:
        """Call ``listener(check)`` after every path-MTU check from now on."""
        self._mtu_listeners.append(listener)

    def status(self) -> ReconcilerStatus:
        return ReconcilerStatus(self._passes, self._additions, self._skipped, self._ops, self._errors,
                                self._last_errors, self._last_ms, self._mtu_checks, self._mtu_failures,
                                len(self.mtu_problems), self._mtu_postponed)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The loop: ready, then a pass whenever triggered and at least every ``interval_s``."""
        async with trio.open_nursery() as nursery:
            task_status.started()
            await self._ready()
            clean: HostDesired | None = None  # the desired state of the last pass without failures
            last_full = -math.inf
            while True:
                self._wake = trio.Event()
                desired = self._desired()
                due = trio.current_time() - last_full >= self._interval_s
                if not due and clean is not None and desired == clean:
                    report = PassReport.of(PassKind.SKIPPED, desired)
                    self._skipped += 1
                else:
                    report = await self._pass(desired, None if due else clean)
                    if report.kind is PassKind.FULL:
                        last_full = trio.current_time()
                clean = desired if report.clean else None
                self._deliver(report)
                if self.mtu_pending and not self._checking_mtu:
                    nursery.start_soon(self.check_pending_mtu)
                with trio.move_on_after(max(0.0, last_full + self._interval_s - trio.current_time())):
                    await self._wake.wait()

    async def _pass(self, desired: HostDesired, clean: HostDesired | None) -> PassReport:
        """Only the additions to ``clean`` when that is all that changed, else (or when applying
        them failed) a full pass."""
        ops = None if clean is None else plan_additions(clean, desired)
        if ops is not None:
            report = await self._in_thread(apply_additions, desired, ops)
            self._record(report)
            if report.clean:
                return report
        return await self.run_pass(desired)

    async def run_pass(self, desired: HostDesired | None = None) -> PassReport:
        """One full pass now (in a worker thread), towards ``desired`` (default: ask the callback).

        The path-MTU self-checks of the tunnels it built are left in
        :attr:`mtu_pending`; the loop runs them in the background. The report
        is recorded in :meth:`status` but not handed to the listeners (the
        loop does that with the report it acts on).
        """
        if desired is None:
            desired = self._desired()
        report = await self._in_thread(reconcile_once, desired, False)
        self._record(report)
        self.mtu_pending += [t for t in mtu_targets(desired, report.applied) if t not in self.mtu_pending]
        return report

    async def check_pending_mtu(self) -> tuple[netops.MtuCheck, ...]:
        """Run the path-MTU checks the passes left (in a worker thread); log the failures.

        A check whose ping gave no answer either way (it did not finish within
        10 s on a starved machine: 200 agents on 2 cores)
        is put back and tried again after the next pass; one that cannot run
        at all (no ``ping`` installed) is dropped with a warning.
        """
        self._checking_mtu = True
        checks, postponed = [], []
        try:
            while self.mtu_pending:
                remote, mtu = self.mtu_pending.pop(0)
                try:
                    checks.append(await trio.to_thread.run_sync(self._in_netns, netops.check_path_mtu, remote, mtu))
                except netops.NetopsError as exc:
                    if exc.errno == errno.ETIMEDOUT:
                        postponed.append((remote, mtu))
                        self._mtu_postponed += 1
                        log.info("tunnel mtu check postponed remote=%s frame_bytes=%d: %s", remote, mtu, exc)
                    else:
                        log.warning("tunnel mtu check skipped remote=%s frame_bytes=%d: %s", remote, mtu, exc)
        finally:
            self._checking_mtu = False
            self.mtu_pending += [t for t in postponed if t not in self.mtu_pending]
        self._record_mtu(checks)
        return tuple(checks)

    async def _in_thread(self, fn: Callable[..., T], *args: object) -> T:
        return await trio.to_thread.run_sync(self._in_netns, fn, *args, limiter=self._limiter)

    def _in_netns(self, fn: Callable[..., T], *args: object) -> T:
        if self._netns is None:
            return fn(*args)
        with netops.in_netns(self._netns):
            return fn(*args)

    def _deliver(self, report: PassReport) -> None:
        self.last_report = report
        for listener in self._listeners:
            listener(report)

    def _record(self, r: PassReport) -> None:
        errors = tuple(str(f.error) for f in r.failures)
        self._ops += len(r.applied)
        self._errors += len(errors)
        self._last_errors = errors
        if r.kind is PassKind.FULL:
            self._passes += 1
            self._last_ms = r.duration_s * 1000
        else:
            self._additions += 1
        if r.applied or errors:
            log.info("reconcile %s ops=%d errors=%d ms=%.1f", r.kind.value, len(r.applied), len(errors),
                     r.duration_s * 1000)
        for err in errors:
            log.warning("reconcile error=%r", err)
        self._record_mtu(r.mtu_checks)

    def _record_mtu(self, checks: Sequence[netops.MtuCheck]) -> None:
        """A check fails when a don't-fragment frame of the tunnel's full size does not reach the remote
        (whether one byte more passes says only that the path carries more than the network uses)."""
        if not checks:
            return
        self.last_mtu_checks = tuple(checks)
        self._mtu_checks += len(checks)
        for c in checks:
            if c.full_size_passes:
                self.mtu_problems.pop((c.remote_ip, c.mtu), None)
            else:
                self._mtu_failures += 1
                self.mtu_problems[c.remote_ip, c.mtu] = c
                log.warning("tunnel mtu check failed remote=%s frame_bytes=%d: frames of the network's full MTU "
                            "are lost on the underlay path (blackhole)", c.remote_ip, c.mtu)
            for listener in self._mtu_listeners:
                listener(c)

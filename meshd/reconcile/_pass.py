"""One reconcile pass, synchronous: dump → plan → apply, or apply planned additions.

Both functions run in the calling thread's network namespace and open and
close their netops objects inside (run them in a worker thread). They return a
typed :class:`~meshd.reconcile.PassReport`; failures are values, never raised.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import netops
from netops import EnsureVxlan, Op

from meshd.reconcile._desired import HostDesired
from meshd.reconcile._plan import plan
from meshd.reconcile._report import PassKind, PassReport
from meshd.reconcile._rules import FAMILY, NAT_FAMILY, TABLE


def reconcile_once(desired: HostDesired, check_mtu: bool = True) -> PassReport:
    """A full pass: dump, plan and apply.

    When a tunnel is (re)built and ``check_mtu`` is set, the underlay path to
    one live remote VTEP is checked (full-size DF ping passes, +1 fails) inside
    the pass; the agent's loop leaves ``check_mtu`` off and checks afterwards.
    """
    start = time.perf_counter()
    actual = netops.dump_owned(desired.router_prefix)
    ops = plan(desired, actual, netops.dump_table(FAMILY, TABLE), netops.dump_table(NAT_FAMILY, TABLE))
    indexes = {name: link.index for name, link in actual.links.items()}
    applied = netops.apply(ops, indexes) if ops else netops.ApplyReport(0, ())
    checks = [netops.check_path_mtu(r, desired.underlay_mtu) for r in mtu_targets(desired, ops)] if check_mtu else []
    return PassReport.of(PassKind.FULL, desired, tuple(ops), applied.failures, tuple(checks),
                         time.perf_counter() - start)


def apply_additions(desired: HostDesired, ops: Sequence[Op]) -> PassReport:
    """Apply operations planned by :func:`~meshd.reconcile.plan_additions`, without a dump."""
    start = time.perf_counter()
    applied = netops.apply(ops)
    return PassReport.of(PassKind.ADDITIONS, desired, tuple(ops), applied.failures,
                         duration_s=time.perf_counter() - start)


def mtu_targets(desired: HostDesired, ops: Sequence[Op]) -> list[str]:
    """One live remote VTEP per tunnel (re)built by ``ops``: where its path MTU is checked."""
    targets = []
    for op in ops:
        if isinstance(op, EnsureVxlan):
            remotes = sorted(desired.vteps.get(op.vni, frozenset()) - {desired.underlay_ip})
            if remotes and remotes[0] not in targets:
                targets.append(remotes[0])
    return targets

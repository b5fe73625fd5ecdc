"""One reconcile pass, synchronous: dump → plan → apply, or apply planned additions.

Both functions run in the calling thread's network namespace and open and
close their netops objects inside (run them in a worker thread). They return a
typed :class:`~meshd.reconcile.PassReport`; failures are values, never raised.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import netops
from meshd.reconcile import _routed
from meshd.reconcile._desired import HostDesired
from meshd.reconcile._plan import ZERO_MAC, plan
from meshd.reconcile._report import PassKind, PassReport
from meshd.reconcile._rules import FAMILY, NAT_FAMILY, TABLE
from netops import EnsureVxlan, FdbEntry, Op


def reconcile_once(desired: HostDesired, check_mtu: bool = True) -> PassReport:
    """A full pass: dump, plan and apply.

    When ``check_mtu`` is set, the underlay paths of the tunnels the pass
    built or extended are checked inside the pass (see :func:`mtu_targets`);
    the agent's loop leaves ``check_mtu`` off and checks afterwards.
    """
    start = time.perf_counter()
    actual = netops.dump_owned(desired.router_prefix, desired.records_dir)
    ops = plan(desired, actual, netops.dump_table(FAMILY, TABLE), netops.dump_table(NAT_FAMILY, TABLE),
               netops.dump_table(_routed.FAMILY, _routed.TABLE))
    indexes = {name: link.index for name, link in actual.links.items()}
    applied = netops.apply(ops, indexes) if ops else netops.ApplyReport(0, ())
    checks = [netops.check_path_mtu(r, size) for r, size in mtu_targets(desired, ops)] if check_mtu else []
    return PassReport.of(PassKind.FULL, desired, tuple(ops), applied.failures, tuple(checks),
                         time.perf_counter() - start)


def apply_additions(desired: HostDesired, ops: Sequence[Op]) -> PassReport:
    """Apply operations planned by :func:`~meshd.reconcile.plan_additions`, without a dump."""
    start = time.perf_counter()
    applied = netops.apply(ops)
    return PassReport.of(PassKind.ADDITIONS, desired, tuple(ops), applied.failures,
                         duration_s=time.perf_counter() - start)


def mtu_targets(desired: HostDesired, ops: Sequence[Op]) -> list[tuple[str, int]]:
    """Where the underlay must carry a tunnel's full frames: ``(remote VTEP, bytes)`` pairs.

    For every tunnel ``ops`` (re)build, each of its live remote VTEPs; for every
    remote VTEP added to a tunnel's flood list, that VTEP. The size is the
    network's MTU plus the VXLAN overhead: a don't-fragment ping of that size
    must reach the remote, or frames of the network's full MTU are lost on the
    way (a blackhole). Each pair once.
    """
    mtu = {n.vni: n.mtu or desired.underlay_mtu - netops.VXLAN_OVERHEAD for n in desired.networks}
    targets: list[tuple[str, int]] = []

    def add(remote: str, vni: int) -> None:
        pair = (remote, mtu[vni] + netops.VXLAN_OVERHEAD)
        if remote != desired.underlay_ip and pair not in targets:
            targets.append(pair)

    vni_of = {netops.vxlan_name(v): v for v in mtu}
    for op in ops:
        if isinstance(op, EnsureVxlan):
            for remote in sorted(desired.vteps.get(op.vni, frozenset())):
                add(remote, op.vni)
        elif isinstance(op, FdbEntry) and op.add and op.mac == ZERO_MAC and op.dst and op.dev in vni_of:
            add(op.dst, vni_of[op.dev])
    return targets

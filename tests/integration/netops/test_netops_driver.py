"""The trio driver: passes run in a worker thread, triggers coalesce, status counts."""

from __future__ import annotations

import trio
import pytest

import netops
from meshd.reconcile import Network, Reconciler
from tests.integration.netops.cluster import Cluster, Placement, can_ping

pytestmark = pytest.mark.root


async def wait_passes(rec: Reconciler, n: int) -> None:
    with trio.fail_after(10):
        while rec.status().passes < n:
            await trio.sleep(0.01)


async def test_reconciler_passes_on_start_and_on_trigger(make_lab, make_ns) -> None:
    h1 = make_lab(1).hosts()[0]
    c = Cluster([h1], [Network(vni=40, tenant="t", subnet="10.40.0.0/24")],
                [Placement("one", h1, 40, "10.40.0.2", make_ns())])
    rec = Reconciler(lambda: c.desired(h1), period_s=3600, netns=f"/run/netns/{h1.netns}")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(rec.run)
        await wait_passes(rec, 1)
        first = rec.status()
        assert first.ops_applied > 0 and first.errors_total == 0
        c.endpoints.append(Placement("two", h1, 40, "10.40.0.3", make_ns()))
        for _ in range(5):  # many triggers while idle or busy: passes coalesce
            rec.trigger()
        await wait_passes(rec, 2)
        await trio.sleep(0.2)
        assert rec.status().passes <= 3
        assert can_ping(c.endpoints[1].netns, "10.40.0.2")
        report = await rec.run_pass()
        assert report.ops == () and report.errors == ()
        nursery.cancel_scope.cancel()


async def test_errors_are_counted_not_raised(make_lab) -> None:
    h1 = make_lab(1).hosts()[0]
    c = Cluster([h1], [Network(vni=41, tenant="t", subnet="10.41.0.0/24")],
                [Placement("ghost", h1, 41, "10.41.0.2", "/proc/999999/ns/net")])
    rec = Reconciler(lambda: c.desired(h1), period_s=3600, netns=f"/run/netns/{h1.netns}")
    report = await rec.run_pass()
    assert len(report.errors) == 1 and "PID 999999" in report.errors[0]
    assert rec.status().errors_total == 1 and rec.status().last_errors == report.errors
    with netops.in_netns(f"/run/netns/{h1.netns}"):
        assert not [n for n in netops.dump_owned().links if n.startswith("mv")]


async def test_tunnel_mtu_checks_run_after_the_pass_not_inside_it(make_lab, make_ns) -> None:
    h1, h2 = make_lab(2).hosts()
    c = Cluster([h1, h2], [Network(vni=42, tenant="t", subnet="10.42.0.0/24")],
                [Placement("a", h1, 42, "10.42.0.2", make_ns()), Placement("b", h2, 42, "10.42.0.3", make_ns())])
    rec = Reconciler(lambda: c.desired(h1), period_s=3600, netns=f"/run/netns/{h1.netns}")
    report = await rec.run_pass()  # builds the tunnel towards h2
    assert report.errors == () and report.mtu_checks == ()
    assert rec.mtu_pending == [(h2.underlay_ip, 1500)]
    [check] = await rec.check_pending_mtu()
    assert (check.remote_ip, check.ok) == (h2.underlay_ip, True)
    assert rec.mtu_pending == [] and rec.status().mtu_failures == 0
    assert (await rec.run_pass()).ops == () and rec.mtu_pending == []  # nothing rebuilt: nothing to check

"""The reconcile loop the agent runs, on a real kernel: readiness, coalescing, skips, additions,
periodic repair, typed failures, background MTU checks."""

from __future__ import annotations

import subprocess

import pytest
import trio

import netops
from meshd.reconcile import Network, PassKind, PassReport, Reconciler
from tests.integration.netops.cluster import Cluster, Placement, can_ping

pytestmark = pytest.mark.root


class Reports:
    """A listener that keeps every report and lets a test wait for the next ones."""

    def __init__(self) -> None:
        self.all: list[PassReport] = []
        self._new = trio.Event()

    def __call__(self, report: PassReport) -> None:
        self.all.append(report)
        self._new.set()
        self._new = trio.Event()

    async def next(self, kind: PassKind | None = None) -> PassReport:
        """The next report (of ``kind``) delivered from now on."""
        seen = len(self.all)
        with trio.fail_after(10):
            while True:
                for report in self.all[seen:]:
                    if kind is None or report.kind is kind:
                        return report
                seen = len(self.all)
                await self._new.wait()


def loop_for(c: Cluster, host, **kwargs) -> tuple[Reconciler, Reports]:
    rec = Reconciler(lambda: c.desired(host), netns=f"/run/netns/{host.netns}", **kwargs)
    reports = Reports()
    rec.listen(reports)
    return rec, reports


async def test_the_loop_waits_until_ready_then_coalesces_skips_and_adds_without_a_dump(make_lab, make_ns) -> None:
    h1 = make_lab(1).hosts()[0]
    c = Cluster([h1], [Network(vni=40, tenant="t", subnet="10.40.0.0/24")],
                [Placement("one", h1, 40, "10.40.0.2", make_ns())])
    ready = trio.Event()
    rec, reports = loop_for(c, h1, interval_s=3600, ready=ready.wait)
    async with trio.open_nursery() as nursery:
        await nursery.start(rec.run)
        rec.trigger()
        await trio.sleep(0.3)
        assert reports.all == [] and rec.status().passes == 0  # nothing before the owner is ready
        ready.set()
        first = await reports.next()
        assert first.kind is PassKind.FULL and first.applied and first.clean
        assert first.built == {("one", 40)}
        for _ in range(5):  # the same desired state: skipped, however many triggers
            rec.trigger()
        assert (await reports.next()).kind is PassKind.SKIPPED
        c.endpoints.append(Placement("two", h1, 40, "10.40.0.3", make_ns()))
        rec.trigger()
        added = await reports.next(PassKind.ADDITIONS)
        assert [type(op).__name__ for op in added.applied] == ["AttachEndpoint"]
        assert added.built == {("one", 40), ("two", 40)}
        assert rec.status().passes == 1  # no dump of the kernel for the addition
        assert can_ping(c.endpoints[1].netns, "10.40.0.2")
        nursery.cancel_scope.cancel()


async def test_a_full_pass_every_interval_repairs_drift(make_lab, make_ns) -> None:
    h1 = make_lab(1).hosts()[0]
    c = Cluster([h1], [Network(vni=43, tenant="t", subnet="10.43.0.0/24")],
                [Placement("one", h1, 43, "10.43.0.2", make_ns())])
    rec, reports = loop_for(c, h1, interval_s=0.5)
    async with trio.open_nursery() as nursery:
        await nursery.start(rec.run)
        await reports.next(PassKind.FULL)
        subprocess.run(["ip", "-n", h1.netns, "link", "del", "mb-43"], check=True)  # drift made outside meshd
        while True:  # triggers keep coming (a busy host): the periodic pass still runs
            rec.trigger()
            report = await reports.next()
            if report.kind is PassKind.FULL:
                break
        assert "EnsureBridge" in {type(op).__name__ for op in report.applied}
        assert (await reports.next(PassKind.FULL)).applied == ()
        nursery.cancel_scope.cancel()


async def test_a_failure_concerns_only_its_own_endpoint(make_lab, make_ns) -> None:
    """A container in two networks with one failing leg is built in one and failed in the other."""
    h1 = make_lab(1).hosts()[0]
    ns = make_ns()
    name = ns.rsplit("/", 1)[1]
    subprocess.run(["ip", "-n", name, "link", "add", "eth1", "type", "veth", "peer", "name", "other"], check=True)
    c = Cluster([h1], [Network(vni=44, tenant="t", subnet="10.44.0.0/24"),
                       Network(vni=45, tenant="t", subnet="10.45.0.0/24")],
                [Placement("box", h1, 44, "10.44.0.2", ns), Placement("box", h1, 45, "10.45.0.2", ns, "eth1")])
    rec, reports = loop_for(c, h1, interval_s=3600)
    async with trio.open_nursery() as nursery:
        await nursery.start(rec.run)
        report = await reports.next()
        [failure] = report.failures  # eth1 exists in the container and is not meshd's
        assert type(failure.op).__name__ == "AttachEndpoint" and failure.op.ifname == "eth1"
        assert isinstance(failure.error, netops.NetopsError)
        assert report.built == {("box", 44)} and set(report.endpoint_failures) == {("box", 45)}
        assert rec.status().errors_total == 1 and rec.status().last_errors == (str(failure.error),)
        rec.trigger()  # not clean: the next trigger is a full pass again, not a skip
        again = await reports.next()
        assert again.kind is PassKind.FULL and set(again.endpoint_failures) == {("box", 45)}
        nursery.cancel_scope.cancel()


async def test_errors_are_counted_not_raised(make_lab) -> None:
    h1 = make_lab(1).hosts()[0]
    c = Cluster([h1], [Network(vni=41, tenant="t", subnet="10.41.0.0/24")],
                [Placement("ghost", h1, 41, "10.41.0.2", "/proc/999999/ns/net")])
    rec = Reconciler(lambda: c.desired(h1), interval_s=3600, netns=f"/run/netns/{h1.netns}")
    report = await rec.run_pass()
    [failure] = report.failures
    assert "PID 999999" in str(failure.error) and report.built == frozenset()
    assert rec.status().errors_total == 1
    with netops.in_netns(f"/run/netns/{h1.netns}"):
        assert not [n for n in netops.dump_owned().links if n.startswith("mv")]


async def test_tunnel_mtu_checks_run_after_the_pass_not_inside_it(make_lab, make_ns) -> None:
    h1, h2 = make_lab(2).hosts()
    c = Cluster([h1, h2], [Network(vni=42, tenant="t", subnet="10.42.0.0/24")],
                [Placement("a", h1, 42, "10.42.0.2", make_ns()), Placement("b", h2, 42, "10.42.0.3", make_ns())])
    rec, reports = loop_for(c, h1, interval_s=3600)
    async with trio.open_nursery() as nursery:
        await nursery.start(rec.run)
        report = await reports.next()  # builds the tunnel towards h2
        assert report.clean and report.mtu_checks == ()
        with trio.fail_after(10):
            while not rec.last_mtu_checks:  # run by the loop in the background
                await trio.sleep(0.05)
        [check] = rec.last_mtu_checks
        assert (check.remote_ip, check.ok) == (h2.underlay_ip, True)
        assert rec.mtu_pending == [] and rec.status().mtu_failures == 0
        assert (await rec.run_pass()).applied == () and rec.mtu_pending == []  # nothing rebuilt: nothing to check
        nursery.cancel_scope.cancel()


async def test_a_network_mtu_the_underlay_cannot_carry_is_reported_as_a_blackhole(make_lab, make_ns) -> None:
    h1, h2 = make_lab(2).hosts()
    c = Cluster([h1, h2], [Network(vni=46, tenant="t", subnet="10.46.0.0/24", mtu=9000)],
                [Placement("a", h1, 46, "10.46.0.2", make_ns()), Placement("b", h2, 46, "10.46.0.3", make_ns())])
    rec, reports = loop_for(c, h1, interval_s=3600)
    heard: list[netops.MtuCheck] = []
    rec.listen_mtu(heard.append)
    async with trio.open_nursery() as nursery:
        await nursery.start(rec.run)
        await reports.next()
        with trio.fail_after(15):
            while not heard:
                await trio.sleep(0.05)
        [check] = heard
        assert (check.remote_ip, check.mtu, check.full_size_passes) == (h2.underlay_ip, 9050, False)
        assert list(rec.mtu_problems) == [(h2.underlay_ip, 9050)] and rec.status().mtu_problems == 1
        nursery.cancel_scope.cancel()


async def test_a_check_whose_ping_does_not_finish_is_tried_again_after_the_next_pass(
        make_lab, make_ns, monkeypatch, caplog) -> None:
    """200 agents on 2 cores starved ``ping`` past its 10 s deadline, and the TimeoutExpired ended
    the agent; now the check is put back and the next pass tries it again."""
    from netops import _underlay
    h1, h2 = make_lab(2).hosts()
    c = Cluster([h1, h2], [Network(vni=43, tenant="t", subnet="10.43.0.0/24")],
                [Placement("a", h1, 43, "10.43.0.2", make_ns()), Placement("b", h2, 43, "10.43.0.3", make_ns())])
    rec, reports = loop_for(c, h1, interval_s=3600)
    monkeypatch.setattr(_underlay, "PING_DEADLINE_S", 1e-6)  # no ping finishes in a microsecond
    caplog.set_level("INFO", logger="meshd.reconcile")
    async with trio.open_nursery() as nursery:
        await nursery.start(rec.run)
        await reports.next()  # builds the tunnel towards h2
        with trio.fail_after(10):
            while "tunnel mtu check postponed" not in caplog.text or rec._checking_mtu:
                await trio.sleep(0.05)
        assert rec.mtu_pending == [(h2.underlay_ip, 1500)] and rec.last_mtu_checks == ()
        assert (rec.status().mtu_postponed, rec.status().mtu_checks) == (1, 0)
        assert f"remote={h2.underlay_ip} frame_bytes=1500" in caplog.text and "host is overloaded" in caplog.text
        monkeypatch.setattr(_underlay, "PING_DEADLINE_S", 10.0)
        rec.trigger()
        await reports.next()
        with trio.fail_after(10):
            while not rec.last_mtu_checks:
                await trio.sleep(0.05)
        [check] = rec.last_mtu_checks
        assert (check.remote_ip, check.ok, rec.mtu_pending) == (h2.underlay_ip, True, [])
        nursery.cancel_scope.cancel()


async def test_a_check_that_cannot_run_is_logged_and_dropped(make_lab, make_ns, monkeypatch, caplog) -> None:
    """No ``ping`` on the host: the check is skipped with a warning naming the package, not retried."""
    h1, h2 = make_lab(2).hosts()
    c = Cluster([h1, h2], [Network(vni=44, tenant="t", subnet="10.44.0.0/24")],
                [Placement("a", h1, 44, "10.44.0.2", make_ns()), Placement("b", h2, 44, "10.44.0.3", make_ns())])
    rec, reports = loop_for(c, h1, interval_s=3600)
    monkeypatch.setenv("PATH", "/nonexistent")  # the pass itself runs no program
    caplog.set_level("WARNING", logger="meshd.reconcile")
    async with trio.open_nursery() as nursery:
        await nursery.start(rec.run)
        assert (await reports.next()).clean  # builds the tunnel towards h2
        with trio.fail_after(10):
            while "tunnel mtu check skipped" not in caplog.text:
                await trio.sleep(0.05)
        assert "install iputils-ping" in caplog.text and rec.mtu_pending == []
        assert (rec.status().mtu_checks, rec.status().mtu_postponed) == (0, 0)
        nursery.cancel_scope.cancel()

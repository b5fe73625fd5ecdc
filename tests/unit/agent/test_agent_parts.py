"""The agent's small parts without I/O: endpoint tracking from typed pass reports, the event
stream, the local containers."""

from __future__ import annotations

import errno

import pytest
import trio

import netops
from meshd import state as st
from meshd.agent._containers import LocalContainers, seed_refusal
from meshd.agent._endpoints import EndpointTracker
from meshd.agent._events import Event, Events
from meshd.api import MsgType
from meshd.reconcile import HostDesired, LocalEndpoint, Network, PassKind, PassReport
from meshd.reconcile._plan import attach_op
from meshd.runtime import ConnectRequest, ContainerInfo, RuntimeSnapshot, Source

NETS = (Network(vni=1, tenant="a", subnet="10.1.0.0/24"), Network(vni=2, tenant="a", subnet="10.2.0.0/24"))


def ep(key: str, vni: int, ip: str, ifname: str = "eth0") -> LocalEndpoint:
    return LocalEndpoint(key=key, vni=vni, netns="/proc/1/ns/net", ip=ip, mac="02:00:00:00:00:01", ifname=ifname)


def desired(*local: LocalEndpoint) -> HostDesired:
    return HostDesired(underlay_ip="192.0.2.11", underlay_dev="eth0", underlay_mtu=1500, networks=NETS, local=local)


def failing(op: netops.Op) -> netops.OpFailure:
    return netops.OpFailure(op, netops.NetopsError("attach", "something", errno.EEXIST))


def published(events: Events) -> list[tuple[MsgType | None, str]]:
    out: list[tuple[MsgType | None, str]] = []
    events.subscribe(lambda e: out.append((e.msg_type, e.body.get("endpoint_id", ""))))
    return out


def test_one_failing_leg_fails_only_its_network() -> None:
    events = Events()
    pub = published(events)
    tracker = EndpointTracker("h1", events, trigger=lambda: None)
    legs = (ep("c1", 1, "10.1.0.2"), ep("c1", 2, "10.2.0.2", "eth1"))
    d = desired(*legs)
    report = PassReport.of(PassKind.FULL, d, failures=(failing(attach_op(legs[1], NETS[1], 1450)),))
    assert set(report.endpoint_failures) == {("c1", 2)} and report.built == {("c1", 1)}
    tracker.on_pass(report)
    assert tracker.is_up(("c1", 1)) and not tracker.is_up(("c1", 2))
    assert "exists" in tracker.problems["c1", 2].error and tracker.problems["c1", 2].operation == "AttachEndpoint"
    assert pub == [(MsgType.EVENT_ENDPOINT_UP, "c1")]
    tracker.on_pass(PassReport.of(PassKind.FULL, d))  # repaired
    assert tracker.is_up(("c1", 2)) and tracker.problems == {}
    tracker.on_pass(PassReport.of(PassKind.SKIPPED, desired(legs[0])))  # disconnected from network 2
    assert pub[-1] == (MsgType.EVENT_ENDPOINT_DOWN, "c1") and not tracker.is_up(("c1", 2))


def test_a_tunnel_failure_fails_every_endpoint_of_its_network() -> None:
    legs = (ep("c1", 1, "10.1.0.2"), ep("c2", 1, "10.1.0.3"), ep("c3", 2, "10.2.0.3"))
    vx = netops.EnsureVxlan("mx-1", 1, "192.0.2.11", "eth0", "mb-1", 1450)
    report = PassReport.of(PassKind.FULL, desired(*legs), failures=(failing(vx), failing(netops.FdbEntry(
        True, "mx-2", "00:00:00:00:00:00", "192.0.2.12"))))
    assert set(report.endpoint_failures) == {("c1", 1), ("c2", 1)}  # an FDB entry concerns no local endpoint
    assert report.built == {("c3", 2)} and not report.clean


def test_a_failed_macvlan_or_vlan_sub_interface_fails_exactly_the_flat_endpoints_it_concerns() -> None:
    from meshd.reconcile._plan import attach_flat_op

    flat = Network(vni=3, tenant="a", subnet="10.3.0.0/24", mode="flat", parent="eth0")
    vlan = Network(vni=4, tenant="a", subnet="10.4.0.0/24", mode="flat", parent="eth0", vlan=7)
    legs = (ep("f1", 3, "10.3.0.2"), ep("f2", 3, "10.3.0.3"), ep("v1", 4, "10.4.0.2"), ep("c1", 1, "10.1.0.2"))
    d = HostDesired(underlay_ip="192.0.2.11", underlay_dev="eth0", underlay_mtu=1500,
                    networks=(*NETS, flat, vlan), local=legs)
    sub = netops.EnsureVlan(netops.vlan_name("eth0", 7), "eth0", 7, 1500, "meshd vlan eth0 7 mtu=1500")
    report = PassReport.of(PassKind.FULL, d, failures=(failing(attach_flat_op(d, legs[0], flat, 1500)),
                                                       failing(sub)))
    assert set(report.endpoint_failures) == {("f1", 3), ("v1", 4)}
    assert report.built == {("f2", 3), ("c1", 1)}


async def test_wait_up_answers_when_a_pass_built_it_or_says_why_not() -> None:
    tracker = EndpointTracker("h1", Events(), trigger=lambda: None)
    a, b = ep("c1", 1, "10.1.0.2"), ep("c2", 1, "10.1.0.3")
    async with trio.open_nursery() as nursery:
        results: dict[str, object] = {}

        async def wait(key: str) -> None:
            results[key] = await tracker.wait_up((key, 1), timeout_s=5)

        nursery.start_soon(wait, "c1")
        nursery.start_soon(wait, "c2")
        await trio.sleep(0.01)
        tracker.on_pass(PassReport.of(PassKind.FULL, desired(a, b),
                                      failures=(failing(attach_op(b, NETS[0], 1450)),)))
    assert results["c1"] is None and "exists" in results["c2"].error  # type: ignore[union-attr]
    with pytest.raises(trio.TooSlowError):
        await tracker.wait_up(("c9", 1), timeout_s=0.05)


def test_events_keep_a_bounded_history_and_reach_every_subscriber() -> None:
    events = Events(history=3)
    seen: list[Event] = []
    events.subscribe(seen.append)
    events.subscribe(lambda e: 1 / 0)  # a broken view does not stop the others
    for n in range(5):
        events.note("state", f"change {n}")
    events.emit(Event("stats", "", MsgType.EVENT_ENDPOINT_STATS, {"x": 1}, history=False))
    assert [e["text"] for e in events.recent()] == ["change 2", "change 3", "change 4"]
    assert len(seen) == 6 and seen[-1].msg_type is MsgType.EVENT_ENDPOINT_STATS


async def test_local_containers_are_listed_once_every_running_one_was_reported() -> None:
    containers = LocalContainers(labels=("meshd.lab.host=h1",))
    containers.started("api-made", 77)  # a PID given through the API survives the resync
    containers.started("gone", 5)
    containers.listed(RuntimeSnapshot(existing=frozenset({"a", "b", "gone"}), running=frozenset({"a", "b"})))
    assert dict(containers.pids) == {"api-made": 77}
    containers.started("a", 10)
    with trio.move_on_after(0.05):
        await containers.wait_listed()
        pytest.fail("listed before every running container was reported")
    containers.seen("b")  # reported, even though its labels were wrong
    await containers.wait_listed()
    assert containers.owns(ContainerInfo("x", "x", 1, True, labels={"meshd.lab.host": "h1"}))
    assert not containers.owns(ContainerInfo("y", "y", 1, True, labels={"meshd.lab.host": "h2"}))
    with pytest.raises(TypeError):
        containers.pids["z"] = 1  # type: ignore[index]


def _net(gateway: str = "10.1.0.1", mode: st.Mode = st.Mode.VXLAN, **options: str) -> st.Network:
    return st.Network(name="test1", tenant="a", subnet="10.1.0.0/24", gateway=gateway, vni=7, mode=mode,
                      mtu=1450, egress_kbit=0, external=False, labels={}, created_index=1, options=options)


def _seed(**kw: object) -> ConnectRequest:
    return ConnectRequest(container_id="c" * 64, container_name="web", pid=1, network="test1",
                          source=Source.ENV, **kw)  # type: ignore[arg-type]


FLAT = st.Mode.FLAT


@pytest.mark.parametrize("kw,net,words", [
    ({"seed_type": "flat", "ip": "10.1.0.5", "prefix_len": 24}, _net(),
     "TYPE=flat asks for a flat (macvlan) network, but test1 is a vxlan network: use TYPE=vlan"),
    ({"seed_type": "vlan"}, _net(mode=FLAT), "but test1 is a flat network: use TYPE=flat to join it"),
    ({"seed_type": "dhcp"}, _net(), "TYPE=dhcp asks for a dhcp network (addresses from a DHCP server), but test1 is "
     "a vxlan network: use TYPE=vlan to join it"),
    ({"seed_type": "dhcp"}, _net(mode=FLAT), "but test1 is a flat network: use TYPE=flat"),
    ({"seed_type": "flat", "ip": "10.1.0.5"}, _net(mode=st.Mode.DHCP), "is a dhcp network: use TYPE=dhcp"),
    ({"ip": "10.1.0.5"}, _net(mode=st.Mode.DHCP), "IP=10.1.0.5 is set but addresses of dhcp network test1 come "
     "from its DHCP server: drop IP"),
    ({"seed_type": "dhcp", "hostif": "eth1"}, _net(mode=st.Mode.DHCP), "HOSTIF=eth1 is not the NIC"),
    ({"seed_type": "vlan", "gateway": "10.1.0.254"}, _net(), "use GW=10.1.0.1"),
    ({"seed_type": "vlan", "ip": "10.1.0.5", "prefix_len": 16}, _net(), "use /24"),
    ({"seed_type": "flat", "ip": "10.1.0.5", "hostif": "eth1"}, _net(mode=FLAT),
     "HOSTIF=eth1 is not the NIC flat network test1 uses on this host (eth0): use HOSTIF=eth0"),
    ({"seed_type": "flat", "ip": "10.1.0.5", "hostif": "eth0"}, _net(mode=FLAT, parent="bond0"),
     "(bond0): use HOSTIF=bond0"),
])
def test_seed_002_containers_the_network_cannot_honour_are_refused(kw: dict, net: st.Network, words: str) -> None:
    assert words in (seed_refusal(_seed(**kw), net, "eth0") or "")


def test_seed_002_vlan_and_flat_matching_the_network_are_accepted() -> None:
    assert seed_refusal(_seed(seed_type="vlan", ip="10.1.0.5", prefix_len=24, gateway="10.1.0.1"), _net()) is None
    assert seed_refusal(_seed(seed_type="vlan"), None) is None  # the state refuses an unknown network itself
    flat = _seed(seed_type="flat", ip="10.1.0.5", prefix_len=24, gateway="10.1.0.1", hostif="eth0")
    assert seed_refusal(flat, _net(mode=FLAT), "eth0") is None
    dhcp = _seed(seed_type="dhcp", hostif="eth0")
    assert seed_refusal(dhcp, _net(mode=st.Mode.DHCP), "eth0") is None
    assert seed_refusal(flat, _net(mode=FLAT, parent="eth0"), "bond0") is None
    vlan = _seed(seed_type="vlan", ip="10.1.0.5", prefix_len=24, hostif="eth0")
    assert seed_refusal(vlan, _net(mode=st.Mode.VLAN, vlan="100"), "eth0") is None

"""netops primitives on the real kernel: tunnel, L2 population, attach, TBF, MTU, errors."""

from __future__ import annotations

import json

import pytest

import netops
from netops import (
    AttachEndpoint,
    DeleteLink,
    EnsureBridge,
    EnsureVxlan,
    FdbEntry,
    NeighEntry,
    NetopsError,
    Qos,
    SetEndpointQos,
    UnsupportedSetting,
)
from tests.integration.netops.conftest import ns_name, sh
from tools.lab import Lab

pytestmark = pytest.mark.root
ZERO = "00:00:00:00:00:00"


def mac_of(ip: str) -> str:
    a, b, c, d = (int(x) for x in ip.split("."))
    return f"02:00:{a:02x}:{b:02x}:{c:02x}:{d:02x}"


def tunnel_ops(host, remote_vtep: str, remote_ips: list[str], vni: int = 10) -> list:
    with netops.in_netns(f"/run/netns/{host.netns}"):
        u = netops.underlay_for(host.underlay_ip)
    br, vx = netops.bridge_name(vni), netops.vxlan_name(vni)
    ops = [EnsureBridge(br, u.overlay_mtu), EnsureVxlan(vx, vni, host.underlay_ip, u.dev, br, u.overlay_mtu),
           FdbEntry(True, vx, ZERO, remote_vtep)]
    for ip in remote_ips:
        ops += [FdbEntry(True, vx, mac_of(ip), remote_vtep), FdbEntry(True, vx, mac_of(ip), None),
                NeighEntry(True, vx, ip, mac_of(ip))]
    return ops


def attach(host_if: str, ns: str, ip: str, vni: int = 10, qos: Qos | None = None, gw: str | None = "10.1.0.1"):
    return AttachEndpoint(host_if, netops.bridge_name(vni), ns, "eth0", ip, 24, mac_of(ip), 1450, gw, qos,
                          f"meshd:{host_if}")


def apply_in(host, ops) -> netops.ApplyReport:
    with netops.in_netns(f"/run/netns/{host.netns}"):
        return netops.apply(ops)


def build_pair(lab: Lab, make_ns) -> tuple:
    h1, h2 = lab.hosts()[:2]
    c1, c2 = make_ns(), make_ns()
    r1 = apply_in(h1, tunnel_ops(h1, h2.underlay_ip, ["10.1.0.3"]) + [attach("mvc1", c1, "10.1.0.2")])
    r2 = apply_in(h2, tunnel_ops(h2, h1.underlay_ip, ["10.1.0.2"]) + [attach("mvc2", c2, "10.1.0.3")])
    assert r1.errors == () and r2.errors == ()
    return h1, h2, c1, c2


def ping(ns: str, ip: str, *extra: str) -> bool:
    return sh("ip", "netns", "exec", ns_name(ns), "ping", "-c1", "-W1", *extra, ip, check=False).returncode == 0


def test_containers_reach_each_other_through_the_tunnel_with_l2_population(make_lab, make_ns) -> None:
    h1, h2, c1, c2 = build_pair(make_lab(2), make_ns)
    assert ping(c1, "10.1.0.3")
    with netops.in_netns(f"/run/netns/{h1.netns}"):
        actual = netops.dump_owned()
    assert {"mb-10", "mx-10", "mvc1"} <= set(actual.links)
    assert actual.links["mx-10"].vni == 10 and actual.links["mx-10"].vxlan_local == h1.underlay_ip
    assert actual.fdb == {("mx-10", ZERO, h2.underlay_ip), ("mx-10", mac_of("10.1.0.3"), h2.underlay_ip),
                          ("mx-10", mac_of("10.1.0.3"), "")}
    assert actual.neigh == {("mx-10", "10.1.0.3", mac_of("10.1.0.3"))}
    info = json.loads(sh("ip", "-n", h1.netns, "-j", "-d", "link", "show", "mx-10").stdout)[0]
    data = info["linkinfo"]["info_data"]
    assert data["learning"] is False and data["proxy"] is True and data["port"] == 4789
    slave = info["linkinfo"]["info_slave_data"]
    # unknown unicast never enters the tunnel: reaching c2 relied on the populated entries alone
    assert slave["learning"] is False and slave["flood"] is False


def test_withdrawn_entries_cut_the_path_and_restored_ones_heal_it(make_lab, make_ns) -> None:
    h1, h2, c1, _c2 = build_pair(make_lab(2), make_ns)
    assert ping(c1, "10.1.0.3")
    withdraw = [op for op in tunnel_ops(h1, h2.underlay_ip, ["10.1.0.3"]) if isinstance(op, (FdbEntry, NeighEntry))]
    assert apply_in(h1, [type(op)(False, *vars_of(op)[1:]) for op in withdraw]).errors == ()
    with netops.in_netns(f"/run/netns/{h1.netns}"):
        assert netops.dump_owned().fdb == frozenset()
    assert not ping(c1, "10.1.0.3")
    assert apply_in(h1, withdraw).errors == ()
    assert ping(c1, "10.1.0.3")


def vars_of(op) -> tuple:
    return tuple(getattr(op, f) for f in op.__dataclass_fields__)


def test_container_mtu_is_underlay_minus_50_and_full_size_df_ping_passes(make_lab, make_ns) -> None:
    h1, _h2, c1, _c2 = build_pair(make_lab(2), make_ns)
    link = json.loads(sh("ip", "-n", ns_name(c1), "-j", "link", "show", "eth0").stdout)[0]
    assert link["mtu"] == 1450
    assert ping(c1, "10.1.0.3", "-M", "do", "-s", "1422")
    assert not ping(c1, "10.1.0.3", "-M", "do", "-s", "1423")
    check = netops.check_path_mtu("192.0.2.12", 1500, f"/run/netns/{h1.netns}")
    assert check.ok, check
    assert not netops.check_path_mtu("192.0.2.12", 1501, f"/run/netns/{h1.netns}").ok


def test_attach_is_idempotent_and_configures_the_container(make_lab, make_ns) -> None:
    h1, _h2, c1, _c2 = build_pair(make_lab(2), make_ns)
    again = apply_in(h1, tunnel_ops(h1, "192.0.2.12", ["10.1.0.3"]))
    assert again.errors == ()
    routes = sh("ip", "-n", ns_name(c1), "route").stdout
    assert "default via 10.1.0.1 dev eth0" in routes
    addr = json.loads(sh("ip", "-n", ns_name(c1), "-j", "addr", "show", "eth0").stdout)[0]
    assert addr["address"] == mac_of("10.1.0.2")
    assert [a["local"] for a in addr["addr_info"] if a["family"] == "inet"] == ["10.1.0.2"]
    with netops.in_netns(f"/run/netns/{h1.netns}"):
        assert netops.dump_owned().links["mvc1"].alias == "meshd:mvc1"


def test_tbf_is_set_changed_and_removed(make_lab, make_ns) -> None:
    h1 = make_lab(1).hosts()[0]
    c = make_ns()
    ops = [EnsureBridge("mb-10", 1450), attach("mvq", c, "10.1.0.2", qos=Qos(8000, 20000, 40))]
    assert apply_in(h1, ops).errors == ()
    qd = sh("tc", "-n", ns_name(c), "qdisc", "show", "dev", "eth0").stdout
    assert "tbf" in qd and "rate 8Mbit" in qd and "burst 20000b" in qd
    assert apply_in(h1, [SetEndpointQos("mvq", c, "eth0", Qos(2000), "s2")]).errors == ()
    assert "rate 2Mbit" in sh("tc", "-n", ns_name(c), "qdisc", "show", "dev", "eth0").stdout
    assert apply_in(h1, [SetEndpointQos("mvq", c, "eth0", None, "s3")]).errors == ()
    assert "tbf" not in sh("tc", "-n", ns_name(c), "qdisc", "show", "dev", "eth0").stdout


def test_delay_is_refused_clearly_and_nothing_is_left_behind(make_lab, make_ns) -> None:
    h1 = make_lab(1).hosts()[0]
    c = make_ns()
    report = apply_in(h1, [EnsureBridge("mb-10", 1450), attach("mvd", c, "10.1.0.2", qos=Qos(1000, delay_ms=20))])
    [err] = report.errors
    assert isinstance(err, UnsupportedSetting) and "netem" in str(err) and "mvd" in str(err)
    with netops.in_netns(f"/run/netns/{h1.netns}"):
        assert "mvd" not in netops.dump_owned().links


def test_attach_to_a_dead_pid_names_the_veth_and_the_pid(make_lab) -> None:
    h1 = make_lab(1).hosts()[0]
    report = apply_in(h1, [EnsureBridge("mb-10", 1450), attach("mvx", "/proc/999999/ns/net", "10.1.0.2")])
    [err] = report.errors
    assert str(err).startswith("cannot move veth mvx into netns of PID 999999")
    assert "container exited?" in str(err)


def test_failed_attach_rolls_back_what_it_created(make_lab, make_ns) -> None:
    h1 = make_lab(1).hosts()[0]
    c = make_ns()
    bad = attach("mvr", c, "10.1.0.2", gw="10.9.9.9")  # gateway outside the subnet: route add fails
    report = apply_in(h1, [EnsureBridge("mb-10", 1450), bad])
    [err] = report.errors
    assert isinstance(err, NetopsError) and "10.9.9.9" in str(err) and "eth0" in str(err)
    with netops.in_netns(f"/run/netns/{h1.netns}"):
        assert "mvr" not in netops.dump_owned().links
    assert "eth0" not in sh("ip", "-n", ns_name(c), "link").stdout


def test_counters_follow_traffic_and_delete_is_idempotent(make_lab, make_ns) -> None:
    h1, _h2, c1, _c2 = build_pair(make_lab(2), make_ns)
    with netops.in_netns(f"/run/netns/{h1.netns}"):
        before = netops.counters(["mvc1"])["mvc1"]
    assert ping(c1, "10.1.0.3")
    with netops.in_netns(f"/run/netns/{h1.netns}"):
        after = netops.counters(["mvc1"])["mvc1"]
    assert after.rx_packets > before.rx_packets and after.rx_bytes > before.rx_bytes
    assert netops.rates(before, after, 2.0).rx_bytes == (after.rx_bytes - before.rx_bytes) // 2
    assert apply_in(h1, [DeleteLink("mvc1"), DeleteLink("mvc1")]).errors == ()
    assert "eth0" not in sh("ip", "-n", ns_name(c1), "link").stdout


def test_tx_checksum_offload_can_be_turned_off_on_the_tunnel(make_lab) -> None:
    h1 = make_lab(1).hosts()[0]
    with netops.in_netns(f"/run/netns/{h1.netns}"):
        u = netops.underlay_for(h1.underlay_ip)
        ops = [EnsureBridge("mb-10", 1450), EnsureVxlan("mx-10", 10, h1.underlay_ip, u.dev, "mb-10", 1450),
               EnsureBridge("mb-11", 1450), EnsureVxlan("mx-11", 11, h1.underlay_ip, u.dev, "mb-11", 1450, False)]
        assert netops.apply(ops).errors == ()
        assert netops.tx_csum_offload("mx-10") is True  # kernel default kept
        assert netops.tx_csum_offload("mx-11") is False
        with pytest.raises(NetopsError, match="mx-99"):
            netops.tx_csum_offload("mx-99")


def test_many_deletes_in_one_apply_remove_exactly_those_links(make_lab, make_ns) -> None:
    h1 = make_lab(1).hosts()[0]
    nss = [make_ns() for _ in range(4)]
    ops = [EnsureBridge("mb-10", 1450)] + [attach(f"mvk{i}", ns, f"10.1.0.{i + 2}") for i, ns in enumerate(nss)]
    assert apply_in(h1, ops).errors == ()
    # consecutive deletes become one kernel group delete, placed where they were planned:
    # the bridge deleted and made again after them is the new one
    report = apply_in(h1, [DeleteLink("mvk0"), DeleteLink("mvk1"), DeleteLink("mvnothere"), DeleteLink("mb-10"),
                           EnsureBridge("mb-10", 1450), DeleteLink("mvk2")])
    assert report.errors == ()
    with netops.in_netns(f"/run/netns/{h1.netns}"):
        links = netops.dump_owned().links
    assert set(links) == {"mb-10", "mvk3"} and links["mvk3"].master == 0  # released from the old bridge
    assert "eth0" in sh("ip", "-n", h1.netns, "link").stdout  # the underlay is never touched
    assert "eth0" not in sh("ip", "-n", ns_name(nss[0]), "link").stdout


# the same links made by iproute2, an implementation independent of netops, on a veth parent p0
IP_LINK_ADD = {
    "vxlan": "x0 type vxlan id 5 dstport 4789 dev p0",
    "bridge": "b0 type bridge",
    "veth": "v0 type veth peer name v1",
    "macvlan": "m0 link p0 type macvlan mode bridge",
    "vlan": "p0.5 link p0 type vlan id 5",
    "ipvlan": "i0 link p0 type ipvlan mode l2",
}


def test_the_link_kind_probe_agrees_with_iproute2_and_leaves_nothing(make_ns):
    ns = ns_name(make_ns())
    sh("ip", "-n", ns, "link", "add", "p0", "type", "veth", "peer", "name", "p1")
    before = sh("ip", "-n", ns, "-o", "link").stdout
    with netops.in_netns(f"/run/netns/{ns}"):
        found = netops.probe_link_kinds()
        assert netops.probe_link_kinds(["no-such-kind"]) == frozenset()
    assert sh("ip", "-n", ns, "-o", "link").stdout == before
    assert set(IP_LINK_ADD) == set(netops.LINK_KINDS)
    made = {kind for kind, args in IP_LINK_ADD.items()
            if sh("ip", "-n", ns, "link", "add", *args.split(), check=False).returncode == 0}
    assert found == made
    assert {"vxlan", "bridge", "veth"} <= found  # what the VXLAN model, built today, needs

"""Flat endpoints on the real kernel: macvlans on a lab host's NIC, their records, private mode, failures."""

from __future__ import annotations

import json
import os

import pytest

import netops
from netops import AttachMacvlan, DetachMacvlan, NetopsError, Qos, SetMacvlanQos
from tests.integration.netops.conftest import ns_name, sh

pytestmark = pytest.mark.root


def flat(name: str, ns: str, ip: str, records: str, parent: str, mode: str = "bridge", mtu: int = 1500,
         qos: Qos | None = None, ifname: str = "eth0", gateway: str | None = "10.77.0.1") -> AttachMacvlan:
    mac = "02:6d:" + ":".join(f"{int(x):02x}" for x in ip.split("."))
    return AttachMacvlan(name, records, parent, mode, ns, ifname, ip, 24, mac, mtu, gateway, qos,
                         f"meshd ep {name} q=-")


def in_host(host, fn, *args):
    with netops.in_netns(f"/run/netns/{host.netns}"):
        return fn(*args)


def parent_of(host) -> str:
    return in_host(host, netops.underlay_for, host.underlay_ip).dev


def ping(ns: str, ip: str) -> bool:
    return sh("ip", "netns", "exec", ns_name(ns), "ping", "-c1", "-W1", ip, check=False).returncode == 0


def link(ns: str, ifname: str) -> dict | None:
    out = sh("ip", "-n", ns_name(ns), "-j", "-d", "link", "show", ifname, check=False)
    return json.loads(out.stdout)[0] if out.returncode == 0 else None


def test_flat_endpoints_on_two_hosts_reach_each_other_on_the_lan_and_are_found_again(make_lab, make_ns, tmp_path):
    h1, h2 = make_lab(2).hosts()[:2]
    c1, c2 = make_ns(), make_ns()
    r1, r2 = str(tmp_path / "h1"), str(tmp_path / "h2")
    assert in_host(h1, netops.apply, [flat("mvf1", c1, "10.77.0.2", r1, parent_of(h1))]).errors == ()
    assert in_host(h2, netops.apply, [flat("mvf2", c2, "10.77.0.3", r2, parent_of(h2))]).errors == ()
    assert ping(c1, "10.77.0.3") and ping(c2, "10.77.0.2")
    # its counters are read inside the container, as a host-side veth would count them (rx/tx swapped)
    seen = netops.counters_inside([("mvf1", c1, "eth0"), ("gone", "/run/netns/nosuch", "eth0")])
    inside = json.loads(sh("ip", "-n", ns_name(c1), "-j", "-s", "link", "show", "eth0").stdout)[0]["stats64"]
    assert set(seen) == {"mvf1"} and 0 < seen["mvf1"].tx_bytes <= inside["rx"]["bytes"]
    eth0 = link(c1, "eth0")
    assert eth0["linkinfo"]["info_kind"] == "macvlan" and eth0["linkinfo"]["info_data"]["mode"] == "bridge"
    assert eth0["address"] == "02:6d:0a:4d:00:02" and eth0["mtu"] == 1500 and eth0["ifalias"] == "meshd ep mvf1 q=-"
    assert "default via 10.77.0.1 dev eth0" in sh("ip", "-n", ns_name(c1), "route").stdout
    # nothing of the endpoint stays in the host netns; the record is how netops finds it again
    assert "mvf1" not in sh("ip", "-n", h1.netns, "link").stdout
    [rec] = in_host(h1, netops.dump_owned, netops.ROUTER_NETNS_PREFIX, r1).macvlans.values()
    assert (rec.name, rec.netns, rec.ifname, rec.stamp, rec.alias) == ("mvf1", c1, "eth0", "meshd ep mvf1 q=-",
                                                                       "meshd ep mvf1 q=-")
    # QoS in place, then the detach removes interface and record (twice: idempotent)
    qos = SetMacvlanQos("mvf1", r1, c1, "eth0", Qos(4000), "meshd ep mvf1 q=4")
    assert in_host(h1, netops.apply, [qos]).errors == ()
    assert "rate 4Mbit" in sh("tc", "-n", ns_name(c1), "qdisc", "show", "dev", "eth0").stdout
    detach = DetachMacvlan("mvf1", r1, c1, "eth0", "meshd ep mvf1 q=4")
    assert in_host(h1, netops.apply, [detach, detach]).errors == ()
    assert link(c1, "eth0") is None and os.listdir(r1) == []
    assert not ping(c2, "10.77.0.2")


def test_on_the_lans_own_subnet_other_hosts_reach_a_container_its_own_host_only_through_a_shim(
        make_lab, make_ns, tmp_path):
    """What the operator's guide says of a flat network whose subnet is the LAN's (192.0.2.0/24 in the lab)."""
    h1, h2 = make_lab(2).hosts()[:2]
    c = make_ns()
    assert in_host(h1, netops.apply, [flat("mvl", c, "192.0.2.201", str(tmp_path), parent_of(h1),
                                           gateway=None)]).errors == ()
    assert ping(f"/run/netns/{h2.netns}", "192.0.2.201") and ping(c, h2.underlay_ip)
    assert not ping(f"/run/netns/{h1.netns}", "192.0.2.201")  # macvlan: no traffic with its parent's host
    p1 = parent_of(h1)
    sh("ip", "-n", h1.netns, "link", "add", "shim0", "link", p1, "type", "macvlan", "mode", "bridge")
    sh("ip", "-n", h1.netns, "addr", "add", "192.0.2.250/32", "dev", "shim0")
    sh("ip", "-n", h1.netns, "link", "set", "shim0", "up")
    sh("ip", "-n", h1.netns, "route", "add", "192.0.2.201/32", "dev", "shim0")
    assert ping(f"/run/netns/{h1.netns}", "192.0.2.201")


def test_private_mode_keeps_one_hosts_containers_apart_and_bridge_mode_does_not(make_lab, make_ns, tmp_path):
    h1, h2 = make_lab(2).hosts()[:2]
    a, b, c = make_ns(), make_ns(), make_ns()
    rec = str(tmp_path)
    ops = [flat("mva", a, "10.77.0.2", rec, parent_of(h1), "private"),
           flat("mvb", b, "10.77.0.3", rec, parent_of(h1), "private")]
    assert in_host(h1, netops.apply, ops).errors == ()
    assert in_host(h2, netops.apply, [flat("mvc", c, "10.77.0.4", str(tmp_path / "h2"), parent_of(h2))]).errors == ()
    assert not ping(a, "10.77.0.3")  # same host, private
    assert ping(a, "10.77.0.4") and ping(b, "10.77.0.4")  # other hosts are reached through the LAN


def test_a_failed_attach_names_the_cause_and_leaves_no_interface_or_record(make_lab, make_ns, tmp_path):
    h1 = make_lab(1).hosts()[0]
    c = make_ns()
    rec = str(tmp_path)
    sh("ip", "-n", ns_name(c), "link", "add", "eth0", "type", "veth", "peer", "name", "x0")
    [err] = in_host(h1, netops.apply, [flat("mve", c, "10.77.0.2", rec, parent_of(h1))]).errors
    assert isinstance(err, NetopsError) and "already has an interface eth0" in str(err) and c in str(err)
    [err] = in_host(h1, netops.apply, [flat("mvm", c, "10.77.0.2", rec, parent_of(h1), mtu=9000,
                                            ifname="eth1")]).errors
    assert f"add macvlan on {parent_of(h1)}" in str(err) and "MTU 9000" in str(err)
    [err] = in_host(h1, netops.apply, [flat("mvp", c, "10.77.0.2", rec, "nosuchnic", ifname="eth1")]).errors
    assert "nosuchnic" in str(err)
    assert os.listdir(rec) == [] and link(c, "eth1") is None
    assert not any(n in sh("ip", "-n", h1.netns, "link").stdout for n in ("mve", "mvm", "mvp"))


def test_records_of_containers_that_exited_or_of_an_interrupted_attach_are_cleaned_up(make_lab, make_ns, tmp_path):
    h1 = make_lab(1).hosts()[0]
    c, gone = make_ns(), make_ns()
    rec = str(tmp_path)
    ops = [flat("mvg", gone, "10.77.0.2", rec, parent_of(h1)), flat("mvh", c, "10.77.0.3", rec, parent_of(h1))]
    assert in_host(h1, netops.apply, ops).errors == ()
    sh("ip", "netns", "del", ns_name(gone))
    # an attach interrupted right after creating the macvlan: it still has its first name (meshd's alone), no alias
    sh("ip", "-n", ns_name(c), "link", "set", "eth0", "name", "mvh", "alias", "")
    (tmp_path / "mvh").write_text(json.dumps({"netns": c, "ifname": "eth0", "stamp": "meshd:building"}))
    found = in_host(h1, netops.read_records, rec)
    assert found["mvg"].alias is None and found["mvh"].alias is None and found["mvh"].stamp == "meshd:building"
    ops = [DetachMacvlan(r.name, rec, r.netns, r.ifname, r.stamp) for r in found.values()]
    assert in_host(h1, netops.apply, ops).errors == ()
    assert os.listdir(rec) == [] and link(c, "mvh") is None


def test_a_vlan_sub_interface_is_made_where_the_kernel_has_8021q_and_refused_clearly_where_not(make_lab):
    h1 = make_lab(1).hosts()[0]
    parent = parent_of(h1)
    name = netops.vlan_name(parent, 7)
    report = in_host(h1, netops.apply, [netops.EnsureVlan(name, parent, 7, 1500, "meshd vlan x 7")])
    if "vlan" not in netops.probe_link_kinds():
        [err] = report.errors
        assert f"cannot add 802.1Q VLAN 7 on {parent} as {name}" in str(err)
        assert "load module 8021q (modprobe 8021q)" in str(err)
        assert name not in sh("ip", "-n", h1.netns, "link").stdout
        pytest.skip("this kernel has no 8021q: the refusal was checked, a VLAN sub-interface cannot be made")
    assert report.errors == ()
    link = json.loads(sh("ip", "-n", h1.netns, "-j", "-d", "link", "show", name).stdout)[0]
    assert link["linkinfo"]["info_data"]["id"] == 7 and link["ifalias"] == "meshd vlan x 7"

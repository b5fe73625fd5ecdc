"""netops pure parts: message encoding, dump parsing, error text, names, rates."""

from __future__ import annotations

import errno
import struct

import pytest

import netops
from netops import _links, _nl, _tc, _vxlan
from netops._endpoint import check_qos


def test_attributes_are_padded_and_parse_back() -> None:
    body = _nl.cstr(3, "mx-7") + _nl.u32(4, 1450) + _nl.nested(18, _nl.cstr(1, "vxlan"))
    attrs = _nl.parse_attrs(body)
    assert _nl.get_str(attrs, 3) == "mx-7" and _nl.get_u32(attrs, 4) == 1450
    assert _nl.get_str(_nl.parse_attrs(attrs[18]), 1) == "vxlan"
    assert len(_nl.cstr(3, "mx-7")) % 4 == 0


def test_a_link_message_encodes_what_the_dump_parser_reads() -> None:
    msg = _vxlan.new_vxlan("mx-42", 42, "192.0.2.11", 2, 1450, 5)
    link = _links.parse_link(memoryview(msg.body))
    assert (link.name, link.kind, link.vni, link.vxlan_local, link.master, link.mtu, link.up) == (
        "mx-42", "vxlan", 42, "192.0.2.11", 5, 1450, False)  # created down, up after addrgenmode none
    assert msg.op.startswith("add vxlan") and msg.obj == "mx-42"


def test_fdb_and_neighbour_messages_carry_mac_and_addresses() -> None:
    n = _vxlan.parse_neigh(memoryview(_vxlan.fdb(True, 9, "mx-1", "02:00:0a:01:00:03", "192.0.2.12").body))
    assert (n.family, n.index, n.mac, n.dst, n.flags) == (_nl.AF_BRIDGE, 9, "02:00:0a:01:00:03", "192.0.2.12",
                                                         _vxlan.NTF_SELF)
    master = _vxlan.parse_neigh(memoryview(_vxlan.fdb(True, 9, "mx-1", "02:00:0a:01:00:03", None).body))
    assert master.flags == _vxlan.NTF_MASTER and master.state == _vxlan.NUD_NOARP
    arp = _vxlan.parse_neigh(memoryview(_vxlan.neigh(True, 9, "mx-1", "10.1.0.3", "02:00:0a:01:00:03").body))
    assert (arp.family, arp.dst, arp.mac, arp.state) == (_nl.AF_INET, "10.1.0.3", "02:00:0a:01:00:03",
                                                         _vxlan.NUD_PERMANENT)


def test_tbf_rate_is_bytes_per_second_and_limit_covers_latency() -> None:
    body = _tc.tbf(3, "eth0", 8000, 20000, 40).body
    q = _tc.parse_qdisc(memoryview(body))
    assert q.kind == "tbf" and q.rate_bps == 1_000_000
    opts = _nl.parse_attrs(_nl.parse_attrs(memoryview(body), 20)[_tc.TCA_OPTIONS])
    limit = struct.unpack_from("=I", opts[_tc.TCA_TBF_PARMS], 24)[0]
    assert limit == 40_000 + 20_000


def test_errors_name_the_object_and_the_fix() -> None:
    err = netops.NetopsError("move veth mv3a1c into", "netns of PID 4121", errno.ESRCH)
    assert str(err) == ("cannot move veth mv3a1c into netns of PID 4121: no such process"
                        " (no such process — container exited?)")
    assert (err.op, err.obj, err.errno) == ("move veth mv3a1c into", "netns of PID 4121", errno.ESRCH)


def test_delay_and_nonsense_qos_are_refused_before_touching_the_kernel() -> None:
    with pytest.raises(netops.UnsupportedSetting, match="no netem"):
        check_qos(netops.Qos(1000, delay_ms=5), "mv1")
    with pytest.raises(netops.NetopsError, match="must be positive"):
        check_qos(netops.Qos(0), "mv1")
    check_qos(None, "mv1")


def test_names_and_ownership() -> None:
    assert (netops.bridge_name(7), netops.vxlan_name(7), netops.leg_name(7)) == ("mb-7", "mx-7", "mg-7")
    assert len(netops.vxlan_name(16_777_215)) <= 15
    assert netops.is_owned_link("mvabc") and not netops.is_owned_link("eth0") and not netops.is_owned_link("docker0")


def test_rates_are_per_second_and_survive_counter_resets() -> None:
    a, b = netops.Counters(100, 0, 1, 0), netops.Counters(300, 0, 5, 0)
    assert netops.rates(a, b, 2.0) == netops.Counters(100, 0, 2, 0)
    assert netops.rates(b, a, 1.0) == netops.Counters(0, 0, 0, 0)
    with pytest.raises(ValueError):
        netops.rates(a, b, 0)

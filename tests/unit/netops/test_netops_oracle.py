"""netops' hand-written rtnetlink messages checked by an independent decoder: pyroute2.

netops encodes its requests itself (netops/_nl.py and the message modules). Its
own parsers reading them back cannot catch a wrong attribute number, struct
layout, byte order or flag that encoder and parser share. Here pyroute2's
message classes (ifinfmsg, ndmsg, ifaddrmsg, rtmsg, tcmsg) decode the exact
bytes ``NlSocket`` sends, and every name, index, address, flag and number must
be what the operation asked for; pyroute2's own constants are the expected
values. The other way round, netops' dump parsers read messages pyroute2 encodes.
"""

from __future__ import annotations

import socket

import pytest
from pyroute2.netlink import (
    NLA_F_NESTED,
    NLM_F_ACK,
    NLM_F_APPEND,
    NLM_F_CREATE,
    NLM_F_DUMP,
    NLM_F_EXCL,
    NLM_F_REPLACE,
    NLM_F_REQUEST,
    rtnl,
)
from pyroute2.netlink.rtnl import TC_H_ROOT, rt_proto, rt_scope, rt_type
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import IFF_UP, ifinfmsg
from pyroute2.netlink.rtnl.marshal import MarshalRtnl
from pyroute2.netlink.rtnl.ndmsg import NTF_MASTER, NTF_SELF, NUD_NOARP, NUD_PERMANENT, ndmsg
from pyroute2.netlink.rtnl.rtmsg import RTNH_F_ONLINK, rtmsg
from pyroute2.netlink.rtnl.tcmsg import sched_tbf, tcmsg

from netops import _addr, _links, _nl, _tc, _vxlan

SEQ = 4242
ACKED = NLM_F_REQUEST | NLM_F_ACK
RT_TABLE_MAIN = 254  # <linux/rtnetlink.h>; pyroute2 has no constant for it
MAC = "02:00:0a:01:00:03"


class _TbfOptions(sched_tbf.options):
    """pyroute2 (0.9) knows TBF attributes 0-3 only: the whole map, numbered as <linux/pkt_sched.h> has it."""

    nla_map = (
        (0, "TCA_TBF_UNSPEC", "none"),
        (1, "TCA_TBF_PARMS", "tbf_parms"),
        (2, "TCA_TBF_RTAB", "rtab"),
        (3, "TCA_TBF_PTAB", "ptab"),
        (4, "TCA_TBF_RATE64", "uint64"),
        (5, "TCA_TBF_PRATE64", "uint64"),
        (6, "TCA_TBF_BURST", "uint32"),
        (7, "TCA_TBF_PBURST", "uint32"),
        (8, "TCA_TBF_PAD", "hex"),
    )


class _Tcmsg(tcmsg):
    """pyroute2's tcmsg, with TBF options decoded (and encoded) by the full map above."""

    @staticmethod
    def get_options(self, *argv, **kwarg):
        if self.get_attr("TCA_KIND") == "tbf":
            return _TbfOptions
        return tcmsg.get_options(self, *argv, **kwarg)


def decode(cls, msg: _nl.Msg):
    """``msg`` exactly as ``NlSocket.batch`` sends it, decoded by pyroute2."""
    wire = msg.request(SEQ)
    out = cls(wire)
    out.decode()
    assert out["header"]["length"] == len(wire) and out["header"]["sequence_number"] == SEQ
    assert out["header"]["type"] == msg.kind and out["header"]["flags"] == ACKED | msg.flags
    return out


def decode_request(cls, kind: int, flags: int, body: bytes):
    """A get or dump request framed as ``NlSocket.get``/``dump`` frame it."""
    out = cls(_nl.frame(kind, flags, SEQ, body))
    out.decode()
    return out


def attrs(nla) -> list[str]:
    return [name for name, *_ in nla["attrs"]]


def is_nested(nla, name: str) -> bool:
    """The attribute carries NLA_F_NESTED (the kernel reads IFLA_PROTINFO as port flags only with it)."""
    return bool(next(a for a in nla["attrs"] if a[0] == name).get_flags() & NLA_F_NESTED)


# ------------------------------------------------------------------ links


def test_new_bridge_is_an_exclusive_create_of_a_down_bridge() -> None:
    m = decode(ifinfmsg, _links.new_bridge("mb-7", 1450))
    assert m["header"]["type"] == rtnl.RTM_NEWLINK
    assert m["header"]["flags"] == ACKED | NLM_F_CREATE | NLM_F_EXCL
    assert (m["index"], m["flags"], m["change"]) == (0, 0, 0)  # created down
    assert m.get_attr("IFLA_IFNAME") == "mb-7" and m.get_attr("IFLA_MTU") == 1450
    assert m.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") == "bridge"
    assert is_nested(m, "IFLA_LINKINFO")


def test_new_vxlan_carries_vni_vtep_underlay_port_and_no_learning() -> None:
    m = decode(ifinfmsg, _vxlan.new_vxlan("mx-42", 42, "192.0.2.11", 2, 1450, 5))
    assert m["header"]["flags"] == ACKED | NLM_F_CREATE | NLM_F_EXCL
    assert (m.get_attr("IFLA_IFNAME"), m.get_attr("IFLA_MTU"), m.get_attr("IFLA_MASTER")) == ("mx-42", 1450, 5)
    assert m.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") == "vxlan"
    data = m.get_nested("IFLA_LINKINFO", "IFLA_INFO_DATA")
    assert {name: data.get_attr(name) for name in attrs(data)} == {
        "IFLA_VXLAN_ID": 42,
        "IFLA_VXLAN_LOCAL": "192.0.2.11",
        "IFLA_VXLAN_LINK": 2,
        "IFLA_VXLAN_TTL": 64,
        "IFLA_VXLAN_LEARNING": 0,
        "IFLA_VXLAN_PROXY": 1,
        "IFLA_VXLAN_PORT": 4789,  # pyroute2 decodes it as big-endian: IANA's port, not 46354
    }
    assert is_nested(m.get_attr("IFLA_LINKINFO"), "IFLA_INFO_DATA")


@pytest.mark.parametrize("mac", [MAC, None])
def test_new_veth_creates_its_peer_inside_the_netns_fd(mac: str | None) -> None:
    m = decode(ifinfmsg, _links.new_veth("mv3a1c", "eth1", 1450, 6, 17, mac))
    assert m["header"]["flags"] == ACKED | NLM_F_CREATE | NLM_F_EXCL
    assert (m.get_attr("IFLA_IFNAME"), m.get_attr("IFLA_MTU"), m.get_attr("IFLA_MASTER")) == ("mv3a1c", 1450, 6)
    assert m.get_attr("IFLA_NET_NS_FD") is None  # the host side stays here
    assert m.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") == "veth"
    peer = m.get_nested("IFLA_LINKINFO", "IFLA_INFO_DATA", "VETH_INFO_PEER")
    assert (peer["index"], peer["flags"]) == (0, 0)
    assert (peer.get_attr("IFLA_IFNAME"), peer.get_attr("IFLA_MTU"), peer.get_attr("IFLA_NET_NS_FD")) == (
        "eth1", 1450, 17)
    assert peer.get_attr("IFLA_ADDRESS") == mac
    assert peer.get_attr("IFLA_MASTER") is None  # the container side is on no bridge


def test_bridge_port_flags_turn_learning_and_unicast_flood_off_on_the_port() -> None:
    m = decode(ifinfmsg, _links.bridge_port_flags(9, "mx-42", learning=False, unicast_flood=False))
    assert m["header"]["type"] == rtnl.RTM_SETLINK and m["header"]["flags"] == ACKED
    assert (m["family"], m["index"]) == (socket.AF_BRIDGE, 9)
    assert is_nested(m, "IFLA_PROTINFO")  # without the flag: the old one-byte STP port state
    prot = m.get_attr("IFLA_PROTINFO")
    assert (prot.get_attr("IFLA_BRPORT_LEARNING"), prot.get_attr("IFLA_BRPORT_UNICAST_FLOOD")) == (0, 0)
    on = decode(ifinfmsg, _links.bridge_port_flags(9, "mx-42", learning=True, unicast_flood=True))
    assert on.get_nested("IFLA_PROTINFO", "IFLA_BRPORT_LEARNING") == 1


@pytest.mark.parametrize(("index", "name"), [(9, None), (0, "mv3a1c")])
def test_quiet_turns_ipv6_addresses_off_then_brings_the_link_up(index: int, name: str | None) -> None:
    no_ipv6, up = (decode(ifinfmsg, m) for m in _links.quiet(index, "mv3a1c"))
    for m in (no_ipv6, up):
        assert m["header"]["type"] == rtnl.RTM_NEWLINK and m["header"]["flags"] == ACKED  # no create
        assert m["index"] == index and m.get_attr("IFLA_IFNAME") == name  # by index when known
    assert no_ipv6.get_nested("IFLA_AF_SPEC", "AF_INET6", "IFLA_INET6_ADDR_GEN_MODE") == 1  # none
    assert (no_ipv6["flags"], no_ipv6["change"]) == (0, 0)  # leaves the link down
    assert (up["flags"], up["change"]) == (IFF_UP, IFF_UP)


@pytest.mark.parametrize(
    ("kwargs", "flags", "change", "expected"),
    [
        (dict(up=True), IFF_UP, IFF_UP, {}),
        (dict(up=False), 0, IFF_UP, {}),
        (dict(mtu=1400), 0, 0, {"IFLA_MTU": 1400}),
        (dict(master=6), 0, 0, {"IFLA_MASTER": 6}),
        (dict(master=0), 0, 0, {"IFLA_MASTER": 0}),  # 0: off its bridge
        (dict(alias="meshd ep 3f2a q=-"), 0, 0, {"IFLA_IFALIAS": "meshd ep 3f2a q=-"}),
        (dict(up=True, mtu=9000, master=3, alias="a"), IFF_UP, IFF_UP,
         {"IFLA_MTU": 9000, "IFLA_MASTER": 3, "IFLA_IFALIAS": "a"}),
    ],
)
@pytest.mark.parametrize("index", [0, 11])
def test_set_link_changes_exactly_what_was_asked(index: int, kwargs: dict, flags: int, change: int,
                                                 expected: dict) -> None:
    m = decode(ifinfmsg, _links.set_link(index, "mv3a1c", **kwargs))
    assert m["header"]["type"] == rtnl.RTM_NEWLINK and m["header"]["flags"] == ACKED
    assert (m["index"], m["flags"], m["change"]) == (index, flags, change)
    by_name = {} if index else {"IFLA_IFNAME": "mv3a1c"}
    assert {name: m.get_attr(name) for name in attrs(m)} == by_name | expected


def test_get_link_asks_by_name_as_nlsocket_get_frames_it() -> None:
    m = decode_request(ifinfmsg, rtnl.RTM_GETLINK, ACKED, _links.get_link("eth1"))
    assert m["header"]["type"] == rtnl.RTM_GETLINK and m["header"]["flags"] == ACKED
    assert (m["index"], m["family"]) == (0, socket.AF_UNSPEC) and attrs(m) == ["IFLA_IFNAME"]
    assert m.get_attr("IFLA_IFNAME") == "eth1"
    dump = decode_request(ifinfmsg, rtnl.RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, _links.ifinfo())
    assert dump["header"]["flags"] == NLM_F_REQUEST | NLM_F_DUMP and dump["index"] == 0 and attrs(dump) == []
    one = decode_request(ifinfmsg, rtnl.RTM_GETLINK, ACKED, _links.ifinfo(12))
    assert one["index"] == 12


@pytest.mark.parametrize(("index", "name"), [(14, None), (0, "mv3a1c")])
def test_doom_moves_the_link_to_the_doomed_group_and_del_doomed_deletes_that_group(index, name) -> None:
    doom = decode(ifinfmsg, _links.doom(index, "mv3a1c"))
    assert doom["header"]["type"] == rtnl.RTM_NEWLINK and doom["header"]["flags"] == ACKED
    assert doom["index"] == index and doom.get_attr("IFLA_IFNAME") == name
    assert doom.get_attr("IFLA_GROUP") == int.from_bytes(b"MESH", "big")
    gone = decode(ifinfmsg, _links.del_doomed())
    assert gone["header"]["type"] == rtnl.RTM_DELLINK and gone["header"]["flags"] == ACKED
    assert gone["index"] == 0 and attrs(gone) == ["IFLA_GROUP"]  # no index, no name: the whole group
    assert gone.get_attr("IFLA_GROUP") == doom.get_attr("IFLA_GROUP")


@pytest.mark.parametrize(("index", "name"), [(14, None), (0, "mv3a1c")])
def test_del_link_deletes_one_link_by_index_or_name(index: int, name: str | None) -> None:
    m = decode(ifinfmsg, _links.del_link(index, "mv3a1c"))
    assert m["header"]["type"] == rtnl.RTM_DELLINK and m["header"]["flags"] == ACKED
    assert m["index"] == index and m.get_attr("IFLA_IFNAME") == name


# ------------------------------------------------------ VXLAN L2 population


def test_fdb_self_entry_appends_mac_to_vtep_on_the_vxlan() -> None:
    m = decode(ndmsg, _vxlan.fdb(True, 9, "mx-42", MAC, "192.0.2.12"))
    assert m["header"]["type"] == rtnl.RTM_NEWNEIGH
    assert m["header"]["flags"] == ACKED | NLM_F_CREATE | NLM_F_APPEND  # several VTEPs per MAC (flood list)
    assert (m["family"], m["ifindex"], m["state"], m["flags"]) == (socket.AF_BRIDGE, 9, NUD_PERMANENT, NTF_SELF)
    assert (m.get_attr("NDA_LLADDR"), m.get_attr("NDA_DST")) == (MAC, "192.0.2.12")
    gone = decode(ndmsg, _vxlan.fdb(False, 9, "mx-42", MAC, "192.0.2.12"))
    assert gone["header"]["type"] == rtnl.RTM_DELNEIGH and gone["header"]["flags"] == ACKED
    assert (gone["ifindex"], gone["flags"], gone.get_attr("NDA_LLADDR"), gone.get_attr("NDA_DST")) == (
        9, NTF_SELF, MAC, "192.0.2.12")


def test_the_flood_entry_is_the_all_zeros_mac() -> None:
    m = decode(ndmsg, _vxlan.fdb(True, 9, "mx-42", "00:00:00:00:00:00", "192.0.2.13"))
    assert (m.get_attr("NDA_LLADDR"), m.get_attr("NDA_DST")) == ("00:00:00:00:00:00", "192.0.2.13")


def test_fdb_master_entry_is_a_static_bridge_entry_towards_the_vxlan_port() -> None:
    m = decode(ndmsg, _vxlan.fdb(True, 9, "mx-42", MAC, None))
    assert m["header"]["flags"] == ACKED | NLM_F_CREATE | NLM_F_REPLACE
    assert (m["family"], m["ifindex"], m["state"], m["flags"]) == (socket.AF_BRIDGE, 9, NUD_NOARP, NTF_MASTER)
    assert attrs(m) == ["NDA_LLADDR"] and m.get_attr("NDA_LLADDR") == MAC
    gone = decode(ndmsg, _vxlan.fdb(False, 9, "mx-42", MAC, None))
    assert gone["header"]["type"] == rtnl.RTM_DELNEIGH and (gone["flags"], gone["state"]) == (NTF_MASTER, NUD_NOARP)


def test_neighbour_entry_is_a_permanent_ip_to_mac_entry_on_the_vxlan() -> None:
    m = decode(ndmsg, _vxlan.neigh(True, 9, "mx-42", "10.1.0.3", MAC))
    assert m["header"]["type"] == rtnl.RTM_NEWNEIGH and m["header"]["flags"] == ACKED | NLM_F_CREATE | NLM_F_REPLACE
    assert (m["family"], m["ifindex"], m["state"], m["flags"]) == (socket.AF_INET, 9, NUD_PERMANENT, 0)
    assert (m.get_attr("NDA_DST"), m.get_attr("NDA_LLADDR")) == ("10.1.0.3", MAC)
    gone = decode(ndmsg, _vxlan.neigh(False, 9, "mx-42", "10.1.0.3", MAC))
    assert gone["header"]["type"] == rtnl.RTM_DELNEIGH and attrs(gone) == ["NDA_DST"]
    assert (gone["family"], gone["ifindex"], gone.get_attr("NDA_DST")) == (socket.AF_INET, 9, "10.1.0.3")


def test_neighbour_dump_requests_filter_by_family_and_device() -> None:
    fdb = decode_request(ndmsg, rtnl.RTM_GETNEIGH, NLM_F_REQUEST | NLM_F_DUMP, _vxlan.ndmsg(socket.AF_BRIDGE, 9))
    assert (fdb["family"], fdb["ifindex"], fdb["state"], fdb["flags"]) == (socket.AF_BRIDGE, 9, 0, 0)
    arp = decode_request(ndmsg, rtnl.RTM_GETNEIGH, NLM_F_REQUEST | NLM_F_DUMP, _vxlan.ndmsg(socket.AF_INET))
    assert (arp["family"], arp["ifindex"]) == (socket.AF_INET, 0)


# --------------------------------------------------------- addresses, routes


def test_new_addr_puts_the_address_with_its_prefix_on_the_device() -> None:
    m = decode(ifaddrmsg, _addr.new_addr(4, "eth0", "10.1.0.2", 24))
    assert m["header"]["type"] == rtnl.RTM_NEWADDR and m["header"]["flags"] == ACKED | NLM_F_CREATE | NLM_F_REPLACE
    assert (m["family"], m["prefixlen"], m["index"], m["scope"]) == (socket.AF_INET, 24, 4, 0)
    assert (m.get_attr("IFA_LOCAL"), m.get_attr("IFA_ADDRESS")) == ("10.1.0.2", "10.1.0.2")
    dump = decode_request(ifaddrmsg, rtnl.RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, _addr.ifaddrmsg(socket.AF_INET))
    assert (dump["family"], dump["index"]) == (socket.AF_INET, 0)


def _route_fields(m) -> tuple:
    return m["family"], m["table"], m["proto"], m["type"], m["scope"], m["flags"], m["dst_len"]


def test_default_route_goes_via_the_gateway_out_of_the_device() -> None:
    m = decode(rtmsg, _addr.default_route(4, "eth0", "10.1.0.1"))
    assert m["header"]["type"] == rtnl.RTM_NEWROUTE and m["header"]["flags"] == ACKED | NLM_F_CREATE | NLM_F_REPLACE
    assert _route_fields(m) == (socket.AF_INET, RT_TABLE_MAIN, rt_proto["static"], rt_type["unicast"],
                                rt_scope["universe"], 0, 0)
    assert {name: m.get_attr(name) for name in attrs(m)} == {"RTA_GATEWAY": "10.1.0.1", "RTA_OIF": 4}


def test_route_via_a_gateway_is_onlink_and_a_subnet_route_is_link_scoped() -> None:
    via = decode(rtmsg, _addr.route("0.0.0.0/0", 5, "up0", "100.64.0.0"))
    assert _route_fields(via) == (socket.AF_INET, RT_TABLE_MAIN, rt_proto["static"], rt_type["unicast"],
                                  rt_scope["universe"], RTNH_F_ONLINK, 0)
    assert {name: via.get_attr(name) for name in attrs(via)} == {"RTA_GATEWAY": "100.64.0.0", "RTA_OIF": 5}
    net = decode(rtmsg, _addr.route("10.8.0.0/14", 5, "up0"))
    assert _route_fields(net) == (socket.AF_INET, RT_TABLE_MAIN, rt_proto["static"], rt_type["unicast"],
                                  rt_scope["link"], 0, 14)
    assert {name: net.get_attr(name) for name in attrs(net)} == {"RTA_DST": "10.8.0.0", "RTA_OIF": 5}


# ----------------------------------------------------------------------- tc


@pytest.mark.parametrize(
    ("rate_kbit", "burst", "latency_ms", "rate_bps", "limit"),
    [
        (8_000, 20_000, 40, 1_000_000, 60_000),
        (100_000, 65_536, 50.0, 12_500_000, 625_000 + 65_536),
        (1_000, 32_768, 2.5, 125_000, 312 + 32_768),  # limit rounds down to whole bytes
        (40_000_000, 1 << 20, 10, 5_000_000_000, 50_000_000 + (1 << 20)),  # above 4 GB/s: 64-bit rate
    ],
)
def test_tbf_is_a_root_qdisc_with_rate_burst_and_limit(rate_kbit, burst, latency_ms, rate_bps, limit) -> None:
    m = decode(_Tcmsg, _tc.tbf(6, "eth0", rate_kbit, burst, latency_ms))
    assert m["header"]["type"] == rtnl.RTM_NEWQDISC and m["header"]["flags"] == ACKED | NLM_F_CREATE | NLM_F_REPLACE
    assert (m["index"], m["parent"], m["handle"]) == (6, TC_H_ROOT, 0x10000)  # root, handle 1:
    assert m.get_attr("TCA_KIND") == "tbf"
    opts = m.get_attr("TCA_OPTIONS")
    parms = opts.get_attr("TCA_TBF_PARMS")
    assert parms["rate"] == min(rate_bps, 0xFFFFFFFF)  # the 32-bit field saturates ...
    assert opts.get_attr("TCA_TBF_RATE64") == rate_bps  # ... the 64-bit attribute carries the rate
    assert parms["rate___reserved"] == 1  # tc_ratespec.linklayer: TC_LINKLAYER_ETHERNET
    assert (parms["limit"], parms["peak"]) == (limit, 0)  # no peak rate
    assert opts.get_attr("TCA_TBF_BURST") == burst


def test_del_root_qdisc_names_the_root_of_the_device() -> None:
    m = decode(tcmsg, _tc.del_root_qdisc(6, "eth0"))
    assert m["header"]["type"] == rtnl.RTM_DELQDISC and m["header"]["flags"] == ACKED
    assert (m["index"], m["parent"], m["handle"]) == (6, TC_H_ROOT, 0) and attrs(m) == []
    dump = decode_request(tcmsg, rtnl.RTM_GETQDISC, NLM_F_REQUEST | NLM_F_DUMP, _tc.tcmsg())
    assert (dump["index"], dump["parent"]) == (0, 0)


# ---------------------------------------------------------------- batches

EVERY_REQUEST = [
    _links.new_bridge("mb-7", 1450), *_links.quiet(0, "mb-7"),
    _vxlan.new_vxlan("mx-7", 7, "192.0.2.11", 2, 1450, 8), _links.bridge_port_flags(9, "mx-7", False, False),
    _links.set_link(9, "mx-7", alias="meshd:ready"),
    _links.new_veth("mv3a1c", "eth1", 1450, 8, 17, MAC), _links.set_link(0, "mv3a1c", alias="meshd:building"),
    _links.set_link(0, "lo", up=True), _addr.new_addr(4, "eth1", "10.1.0.2", 24),
    _addr.default_route(4, "eth1", "10.1.0.1"), _addr.route("10.8.0.0/14", 5, "up0"),
    _tc.tbf(4, "eth1", 8_000, 20_000, 40), _tc.del_root_qdisc(4, "eth1"),
    _vxlan.fdb(True, 9, "mx-7", MAC, "192.0.2.12"), _vxlan.fdb(True, 9, "mx-7", MAC, None),
    _vxlan.neigh(True, 9, "mx-7", "10.1.0.3", MAC), _vxlan.neigh(False, 9, "mx-7", "10.1.0.3", MAC),
    _links.doom(14, "mv3a1c"), _links.del_doomed(), _links.del_link(0, "mv0"),
]


def test_a_batch_of_every_request_splits_where_pyroute2_splits_it() -> None:
    """One datagram as ``NlSocket.batch`` joins its requests reads back as those requests,
    and each is a multiple of 4 bytes long: the kernel looks for the next message at the
    aligned end of the previous one, so an unpadded body would shift every message after it."""
    datagram = b"".join(msg.request(SEQ + i) for i, msg in enumerate(EVERY_REQUEST))
    parsed = list(MarshalRtnl().parse(datagram))
    assert [(m["header"]["type"], m["header"]["sequence_number"], m["header"]["length"]) for m in parsed] == [
        (msg.kind, SEQ + i, 16 + len(msg.body)) for i, msg in enumerate(EVERY_REQUEST)]
    assert all(len(msg.body) % 4 == 0 for msg in EVERY_REQUEST)
    assert parsed[-1].get_attr("IFLA_IFNAME") == "mv0"  # the last one is still read whole


# --------------------------------------- netops' parsers on pyroute2's bytes


def encoded(msg) -> memoryview:
    """The body (after the netlink header) of a message pyroute2 encodes."""
    msg.encode()
    return memoryview(bytes(msg.data))[16:]


def test_parse_link_reads_a_vxlan_link_pyroute2_encodes() -> None:
    m = ifinfmsg()
    m["index"], m["flags"] = 12, IFF_UP
    m["attrs"] = [
        ("IFLA_IFNAME", "mx-42"), ("IFLA_ADDRESS", MAC), ("IFLA_MTU", 1450), ("IFLA_MASTER", 5),
        ("IFLA_IFALIAS", "meshd:ready"), ("IFLA_TXQLEN", 1000),
        ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "vxlan"), ("IFLA_INFO_DATA", {"attrs": [
            ("IFLA_VXLAN_ID", 42), ("IFLA_VXLAN_LINK", 2), ("IFLA_VXLAN_LOCAL", "192.0.2.11"),
            ("IFLA_VXLAN_PORT", 4789)]})]}),
        ("IFLA_STATS64", {"rx_packets": 1, "tx_packets": 2, "rx_bytes": 300, "tx_bytes": 4000}),
    ]
    link = _links.parse_link(encoded(m))
    assert link == _links.Link(index=12, name="mx-42", kind="vxlan", master=5, mtu=1450, up=True,
                               alias="meshd:ready", mac=MAC, vni=42, vxlan_local="192.0.2.11", vxlan_link=2,
                               rx_bytes=300, tx_bytes=4000, rx_packets=1, tx_packets=2)


def test_parse_link_reads_a_down_veth_without_extras() -> None:
    m = ifinfmsg()
    m["index"] = 3
    m["attrs"] = [("IFLA_IFNAME", "mv3a1c"), ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "veth")]})]
    link = _links.parse_link(encoded(m))
    assert (link.index, link.name, link.kind, link.up, link.master, link.mtu, link.mac, link.vni) == (
        3, "mv3a1c", "veth", False, 0, 0, "", 0)


def test_parse_neigh_reads_fdb_and_arp_entries_pyroute2_encodes() -> None:
    fdb = ndmsg()
    fdb["family"], fdb["ifindex"], fdb["state"], fdb["flags"] = socket.AF_BRIDGE, 9, NUD_PERMANENT, NTF_SELF
    fdb["attrs"] = [("NDA_LLADDR", MAC), ("NDA_DST", "192.0.2.12"), ("NDA_VNI", 42)]
    assert _vxlan.parse_neigh(encoded(fdb)) == _vxlan.Neigh(socket.AF_BRIDGE, 9, NUD_PERMANENT, NTF_SELF,
                                                             MAC, "192.0.2.12")
    arp = ndmsg()
    arp["family"], arp["ifindex"], arp["state"] = socket.AF_INET, 9, NUD_PERMANENT
    arp["attrs"] = [("NDA_DST", "10.1.0.3"), ("NDA_LLADDR", MAC)]
    assert _vxlan.parse_neigh(encoded(arp)) == _vxlan.Neigh(socket.AF_INET, 9, NUD_PERMANENT, 0, MAC, "10.1.0.3")


def _qdisc(kind: str, parent: int, options: list | None = None) -> memoryview:
    m = _Tcmsg()
    m["index"], m["handle"], m["parent"] = 6, 0x10000, parent
    m["attrs"] = [("TCA_KIND", kind)] + ([("TCA_OPTIONS", {"attrs": options})] if options else [])
    return encoded(m)


def test_parse_qdisc_reads_the_tbf_rate_pyroute2_encodes() -> None:
    parms = {"rate": 1_000_000, "limit": 60_000, "buffer": 0, "mtu": 0, "rate___reserved": 1}
    q = _tc.parse_qdisc(_qdisc("tbf", TC_H_ROOT, [("TCA_TBF_PARMS", parms)]))
    assert (q.index, q.kind, q.rate_bps) == (6, "tbf", 1_000_000)
    fast = [("TCA_TBF_PARMS", parms | {"rate": 0xFFFFFFFF}), ("TCA_TBF_RATE64", 5_000_000_000)]
    assert _tc.parse_qdisc(_qdisc("tbf", TC_H_ROOT, fast)).rate_bps == 5_000_000_000
    assert _tc.parse_qdisc(_qdisc("noqueue", TC_H_ROOT)).kind == "noqueue"
    child = _tc.parse_qdisc(_qdisc("tbf", 0x10001, [("TCA_TBF_PARMS", parms)]))
    assert (child.kind, child.rate_bps) == ("", 0)  # only root qdiscs are netops'

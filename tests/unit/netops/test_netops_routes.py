"""meshd's routes (protocol RTPROT_MESHD) decoded by pyroute2, and the route dump parser on
messages pyroute2 encodes: only meshd's routes of the main table are read back."""

from __future__ import annotations

import socket

import pytest
from pyroute2.netlink import NLM_F_CREATE, NLM_F_REPLACE, rtnl
from pyroute2.netlink.rtnl import rt_scope, rt_type
from pyroute2.netlink.rtnl.rtmsg import RTNH_F_ONLINK, rtmsg

from netops import RTPROT_MESHD, _routes, _vxlan
from tests.unit.netops.test_netops_oracle import ACKED, RT_TABLE_MAIN, attrs, decode


def _fields(m) -> tuple:
    return m["family"], m["table"], m["proto"], m["type"], m["scope"], m["flags"], m["dst_len"]


def test_a_host_route_to_a_local_container_is_link_scoped_and_tagged_meshd() -> None:
    m = decode(rtmsg, _routes.route_msg(True, "10.70.0.2/32", 9, "mv1", None, False))
    assert m["header"]["type"] == rtnl.RTM_NEWROUTE and m["header"]["flags"] == ACKED | NLM_F_CREATE | NLM_F_REPLACE
    assert _fields(m) == (socket.AF_INET, RT_TABLE_MAIN, RTPROT_MESHD, rt_type["unicast"], rt_scope["link"], 0, 32)
    assert {n: m.get_attr(n) for n in attrs(m)} == {"RTA_DST": "10.70.0.2", "RTA_OIF": 9}


@pytest.mark.parametrize("onlink", [False, True])
def test_a_route_to_a_remote_container_goes_via_its_hosts_underlay_address(onlink: bool) -> None:
    m = decode(rtmsg, _routes.route_msg(True, "10.70.0.3/32", 2, "eth0", "192.0.2.12", onlink))
    assert _fields(m) == (socket.AF_INET, RT_TABLE_MAIN, RTPROT_MESHD, rt_type["unicast"], rt_scope["universe"],
                          RTNH_F_ONLINK if onlink else 0, 32)
    assert {n: m.get_attr(n) for n in attrs(m)} == {"RTA_DST": "10.70.0.3", "RTA_GATEWAY": "192.0.2.12", "RTA_OIF": 2}
    gone = decode(rtmsg, _routes.route_msg(False, "10.70.0.3/32", 2, "eth0", "192.0.2.12", onlink))
    assert gone["header"]["type"] == rtnl.RTM_DELROUTE and gone["header"]["flags"] == ACKED


def _encoded(proto: int, table: int = RT_TABLE_MAIN, gateway: str | None = None) -> memoryview:
    m = rtmsg()
    m["family"], m["dst_len"], m["table"], m["proto"], m["type"] = socket.AF_INET, 32, min(table, 255), proto, 1
    m["attrs"] = [("RTA_TABLE", table), ("RTA_DST", "10.70.0.3"), ("RTA_OIF", 7)]
    if gateway:
        m["attrs"].append(("RTA_GATEWAY", gateway))
    m.encode()
    return memoryview(bytes(m.data))[16:]  # the body after the netlink header


def test_the_dump_keeps_only_meshds_routes_of_the_main_table() -> None:
    assert _routes.parse_route(_encoded(RTPROT_MESHD, gateway="192.0.2.12")) == _routes.RawRoute(
        "10.70.0.3/32", 7, "192.0.2.12")
    assert _routes.parse_route(_encoded(RTPROT_MESHD)) == _routes.RawRoute("10.70.0.3/32", 7, "")
    assert _routes.parse_route(_encoded(4)) is None  # static: the operator's, never touched
    assert _routes.parse_route(_encoded(RTPROT_MESHD, table=1000)) is None  # another table


def test_a_routed_vxlan_device_gets_its_fixed_mac_and_no_bridge() -> None:
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

    m = decode(ifinfmsg, _vxlan.new_vxlan("mr-70", 70, "192.0.2.11", 2, 1450, 0, "02:6d:c0:00:02:0b"))
    assert (m.get_attr("IFLA_ADDRESS"), m.get_attr("IFLA_MASTER")) == ("02:6d:c0:00:02:0b", 0)


def test_verdict_map_elements_read_back_as_key_colon_verdict() -> None:
    from netops._nft import _element

    key = {"concat": [{"prefix": {"addr": "10.70.0.0", "len": 24}}, {"prefix": {"addr": "10.71.0.0", "len": 24}}]}
    assert _element([key, {"accept": None}]) == "10.70.0.0/24 . 10.71.0.0/24 : accept"
    assert _element([key, {"jump": {"target": "deny"}}]) == "10.70.0.0/24 . 10.71.0.0/24 : jump deny"

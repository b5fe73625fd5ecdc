"""The converge bench's kernel watcher reads neighbour notifications as pyroute2 (an independent
encoder) writes them: the three kinds of object a subject has, and a deletion."""

from __future__ import annotations

import socket

from pyroute2.netlink.rtnl.ndmsg import ndmsg

from tools.bench.converge import FLOOD_MAC, RTM_DELNEIGH, RTM_NEWNEIGH, Subject, _parse_neigh


def _msg(family: int, attrs: list, kind: int) -> bytes:
    m = ndmsg()
    m["family"], m["ifindex"], m["state"], m["attrs"] = family, 3, 0x80, attrs
    m["header"]["type"] = kind
    m.encode()
    return bytes(m.data)


def test_one_datagram_of_arp_flood_and_master_entries_is_read_in_order() -> None:
    data = (_msg(socket.AF_INET, [("NDA_DST", "10.90.0.7"), ("NDA_LLADDR", "aa:bb:cc:dd:ee:07")], RTM_NEWNEIGH)
            + _msg(socket.AF_BRIDGE, [("NDA_LLADDR", FLOOD_MAC), ("NDA_DST", "192.0.2.17")], RTM_DELNEIGH)
            + _msg(socket.AF_BRIDGE, [("NDA_LLADDR", "aa:bb:cc:dd:ee:07")], RTM_NEWNEIGH))
    events = list(_parse_neigh(data))
    assert events == [(True, socket.AF_INET, "10.90.0.7", "aa:bb:cc:dd:ee:07"),
                      (False, socket.AF_BRIDGE, "192.0.2.17", FLOOD_MAC),
                      (True, socket.AF_BRIDGE, None, "aa:bb:cc:dd:ee:07")]
    subj = Subject("h7", "192.0.2.17", "10.90.0.7", "aa:bb:cc:dd:ee:07")
    assert [subj.key(f, d, m) for _p, f, d, m in events] == [("arp", "h7"), ("flood", "h7"), ("master", "h7")]

"""The BOOTP/DHCP codec (scapy): every message the client and the tests' server use survives a round
trip, and bytes that are not DHCP decode to None instead of raising."""

from __future__ import annotations

import pytest

from meshd.dhcp import DhcpMessage, Kind
from meshd.dhcp._codec import decode, encode

MAC = "02:6e:0a:0b:0c:0d"


@pytest.mark.parametrize("msg", [
    DhcpMessage(Kind.DISCOVER, 1, MAC, broadcast=True),
    DhcpMessage(Kind.REQUEST, 2, MAC, server_id="10.0.0.2", requested_ip="10.0.0.5", broadcast=True),
    DhcpMessage(Kind.REQUEST, 3, MAC, ciaddr="10.0.0.5"),
    DhcpMessage(Kind.RELEASE, 4, MAC, ciaddr="10.0.0.5", server_id="10.0.0.2"),
    DhcpMessage(Kind.OFFER, 5, MAC, yiaddr="10.0.0.5", server_id="10.0.0.2", lease_s=120, t1_s=60, t2_s=105,
                prefix_len=24, router="10.0.0.1", broadcast=True),
    DhcpMessage(Kind.ACK, 0xFFFFFFFF, MAC, yiaddr="10.0.0.5", server_id="10.0.0.2", lease_s=0xFFFFFFFF,
                prefix_len=16),
    DhcpMessage(Kind.NAK, 7, MAC, server_id="10.0.0.2", message="address not available"),
])
def test_round_trip(msg: DhcpMessage) -> None:
    assert decode(encode(msg)) == msg


@pytest.mark.parametrize("data", [b"", b"garbage", bytes(300), encode(DhcpMessage(Kind.ACK, 1, MAC))[:240]])
def test_not_dhcp_is_none(data: bytes) -> None:
    assert decode(data) is None

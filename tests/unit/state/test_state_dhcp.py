"""dhcp networks in the state: the addresses are leases, so a connect carries the leased ip and its MAC;
the MACs meshd derives for them (02:6e + a hash) never collide with IP-derived ones (02:6d)."""

from __future__ import annotations

import pytest

from meshd.state import (
    DHCP_MAC_PREFIX,
    MAC_PREFIX,
    CommandError,
    Connect,
    CreateNetwork,
    ErrorCode,
    NetworkState,
    dhcp_mac,
    precheck,
)


@pytest.fixture
def state() -> NetworkState:
    s = NetworkState()
    created = s.execute(CreateNetwork(name="dyn", tenant="acme", subnet="10.78.0.0/24", mode="dhcp",
                                      options={"parent": "eth0"}), 1)
    assert not isinstance(created, CommandError), created
    return s


def test_a_dhcp_network_is_created_and_takes_leases_as_explicit_addresses(state: NetworkState) -> None:
    mac = dhcp_mac("c1", "dyn")
    got = state.execute(Connect(endpoint_id="c1", network="dyn", host="h1", ip="10.78.0.150", mac=mac), 2)
    assert (got.ip, got.mac, got.gateway) == ("10.78.0.150", mac, "10.78.0.1")
    (ep,) = state.endpoints(network="dyn")
    assert (ep.ip, ep.mac) == ("10.78.0.150", mac)
    # a retry of the same connect returns the attachment
    again = state.execute(Connect(endpoint_id="c1", network="dyn", host="h1", ip="10.78.0.150", mac=mac), 3)
    assert again == got


@pytest.mark.parametrize("kw", [{}, {"ip": "10.78.0.150"}, {"mac": "02:6e:00:00:00:01"}])
def test_a_connect_without_the_lease_is_refused(state: NetworkState, kw: dict) -> None:
    got = state.execute(Connect(endpoint_id="c1", network="dyn", host="h1", **kw), 2)
    assert isinstance(got, CommandError) and got.code is ErrorCode.INVALID_FIELD
    assert "addresses of dhcp network 'dyn' come from its DHCP server" in got.message
    assert "through the container's host agent, which leases one" in got.message
    assert not state.endpoints()


def test_a_lan_subnet_is_served_once_whatever_the_mode(state: NetworkState) -> None:
    got = state.execute(CreateNetwork(name="lan", tenant="other", subnet="10.78.0.0/25", mode="flat"), 2)
    assert isinstance(got, CommandError) and got.code is ErrorCode.SUBNET_OVERLAP
    assert "dhcp network 'dyn'" in got.message


def test_dhcp_macs_are_stable_distinct_and_apart_from_ip_derived_ones() -> None:
    macs = {dhcp_mac(f"c{i}", "dyn") for i in range(2000)}
    assert len(macs) == 2000 and dhcp_mac("c1", "dyn") == dhcp_mac("c1", "dyn") != dhcp_mac("c1", "other")
    assert all(int(m.replace(":", ""), 16) >> 32 == DHCP_MAC_PREFIX != MAC_PREFIX for m in macs)


def test_precheck_refuses_a_connect_without_the_lease_as_apply_does(state: NetworkState) -> None:
    cmd = Connect(endpoint_id="c1", network="dyn", host="h1", ip="10.78.0.150")
    early = precheck(state, cmd)
    assert early is not None and early == state.execute(cmd, 2)

"""Routed networks in the replicated state: built, and their subnets disjoint across tenants."""

from __future__ import annotations

import itertools

import pytest

from meshd.state import CommandError, Connect, CreateNetwork, ErrorCode, Mode, NetworkState, UpdateNetwork


@pytest.fixture
def state() -> NetworkState:
    s = NetworkState()
    idx = itertools.count(1)
    s.run = lambda cmd: s.execute(cmd, next(idx))  # type: ignore[attr-defined]
    for cmd in [CreateNetwork(name="r1", tenant="acme", subnet="10.70.0.0/24", mode="routed"),
                CreateNetwork(name="v1", tenant="other", subnet="10.80.0.0/24")]:
        assert not isinstance(s.run(cmd), CommandError), cmd  # type: ignore[attr-defined]
    return s


def test_a_routed_network_is_created_and_its_endpoints_get_addresses(state: NetworkState) -> None:
    assert state.mode_of("r1") is Mode.ROUTED
    got = state.run(Connect(endpoint_id="c1", network="r1", host="h1"))  # type: ignore[attr-defined]
    assert not isinstance(got, CommandError) and got.ip == "10.70.0.2"


@pytest.mark.parametrize("cmd, words", [
    (CreateNetwork(name="x", tenant="zeta", subnet="10.70.0.128/25", mode="routed"),  # another tenant
     ["10.70.0.128/25", "routed network 'x'", "overlaps routed network 'r1' (10.70.0.0/24)", "of tenant 'acme'",
      "pick a disjoint subnet", "need mode vxlan"]),
    (CreateNetwork(name="x", tenant="zeta", subnet="10.0.0.0/8", mode="routed"),  # contains it
     ["10.0.0.0/8", "overlaps routed network 'r1'"]),
])
def test_a_routed_subnet_overlapping_another_routed_one_of_any_tenant_is_refused(state, cmd, words) -> None:
    got = state.run(cmd)
    assert isinstance(got, CommandError) and got.code == ErrorCode.SUBNET_OVERLAP, got
    assert all(w in got.message for w in words), got.message
    assert state.mode_of("x") is None


def test_vxlan_networks_may_overlap_routed_ones_of_other_tenants(state: NetworkState) -> None:
    assert not isinstance(state.run(CreateNetwork(name="x", tenant="zeta", subnet="10.70.0.0/24")), CommandError)
    # and a routed network may overlap another tenant's VXLAN network
    got = state.run(CreateNetwork(name="y", tenant="zeta2", subnet="10.80.0.0/24", mode="routed"))
    assert not isinstance(got, CommandError), got


def test_a_routed_network_has_no_external_access(state: NetworkState) -> None:
    got = state.run(CreateNetwork(name="x", tenant="acme", subnet="10.71.0.0/24", mode="routed", external=True))
    assert isinstance(got, CommandError) and got.code == ErrorCode.INVALID_FIELD and "external" in got.message
    got = state.run(UpdateNetwork(name="r1", external=True))
    assert isinstance(got, CommandError) and "external access of network 'r1'" in got.message

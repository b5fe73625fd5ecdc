"""A routed subnet containing a member's underlay address is refused, naming the host (pure)."""

from meshd.agent._overlap import underlay_refusal


def test_a_subnet_holding_a_members_underlay_address_is_refused_with_the_host_and_address():
    vteps = {"h1": "192.0.2.11", "h2": "10.70.0.9"}
    why = underlay_refusal("r1", "10.70.0.0/24", vteps)
    assert why is not None and len(why.splitlines()) == 1
    assert "subnet 10.70.0.0/24 of routed network 'r1' contains the underlay address 10.70.0.9 of host h2" in why
    assert underlay_refusal("r1", "10.71.0.0/24", vteps) is None
    assert underlay_refusal("r1", "192.0.0.0/8", vteps) is not None and "host h1" in underlay_refusal(
        "r1", "192.0.0.0/8", vteps)


def test_what_does_not_parse_is_left_to_the_state():
    assert underlay_refusal("r1", "10.70.0.0/33", {"h1": "10.70.0.1"}) is None
    assert underlay_refusal("r1", "10.70.0.0/24", {"h1": ""}) is None

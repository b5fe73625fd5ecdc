"""Which network MTUs the members' underlays carry (meshd.agent._mtu)."""

from meshd.agent._mtu import mtu_refusal, smallest_underlay, underlay_problems


def test_the_smallest_known_underlay_decides():
    assert smallest_underlay({"h1": 1500, "h2": 9000, "h3": 0}) == ("h1", 1500)
    assert smallest_underlay({"h1": 0}) is None
    assert mtu_refusal("blue", 1450, {"h1": 1500, "h2": 9000}) is None
    why = mtu_refusal("blue", 1451, {"h1": 1500, "h2": 9000})
    assert why is not None and "h1" in why and "1500" in why and "--mtu 1450" in why
    assert mtu_refusal("blue", 9000, {}) is None  # nothing known: the path-MTU check still watches


def test_a_member_with_a_smaller_underlay_names_every_network_it_cannot_carry():
    nets = [("blue", 1450), ("red", 1350), ("jumbo", 8950)]
    [p1, p2] = underlay_problems(nets, {"h1": 9000, "h2": 1500, "h3": 1400, "old": 0})
    assert (p2.host, p2.underlay_mtu, p2.networks, p2.largest_mtu) == ("h3", 1400, ("blue", "jumbo"), 1350)
    assert (p1.host, p1.networks) == ("h2", ("jumbo",))
    assert "--mtu 1350" in p2.text and p2.as_map()["networks"] == ["blue", "jumbo"]

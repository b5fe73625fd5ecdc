"""Which hosts can build which network modes (meshd.agent._dataplane)."""

from meshd.agent._dataplane import NEEDS, missing, mode_refusal
from meshd.state import Mode

ALL = ("bridge", "macvlan", "veth", "vxlan", "vlan")
NO_8021Q = ("bridge", "macvlan", "veth", "vxlan")


def test_every_mode_says_what_it_needs():
    assert set(NEEDS) == set(Mode)
    assert missing(Mode.VLAN, NO_8021Q) == ["vlan"]
    assert missing(Mode.FLAT, ("vxlan", "veth")) == ["macvlan"]
    assert all(missing(mode, ALL) == [] for mode in Mode)


def test_the_refusal_names_the_host_the_missing_feature_and_what_that_kernel_has():
    why = mode_refusal("lan", "vlan", {"h1": ALL, "h2": NO_8021Q})
    assert why is not None
    assert why.startswith("network 'lan' (mode vlan) cannot be built on host h2: its kernel has no 802.1Q VLANs "
                          "(module 8021q); load the module on h2"), why
    assert "h2's kernel creates bridge, macvlan, veth, vxlan links" in why


def test_hosts_that_can_or_do_not_say_pass_and_unknown_modes_are_left_to_the_state():
    assert mode_refusal("lan", "vlan", {"h1": ALL, "h2": ()}) is None  # h2: too old to say
    assert mode_refusal("blue", "vxlan", {"h1": NO_8021Q}) is None
    assert mode_refusal("blue", "carrier-pigeon", {"h1": ()}) is None
    assert mode_refusal("blue", "vxlan", {}) is None


def test_two_missing_features_are_both_named_and_the_first_host_by_name_is_reported():
    why = mode_refusal("lan", "vlan", {"h9": ("vxlan",), "h3": ("veth",)})
    assert why is not None and "host h3" in why
    assert "802.1Q VLANs (module 8021q) and macvlan (module macvlan)" in why


def test_a_member_that_cannot_build_an_existing_network_is_reported_once_per_network():
    from meshd.agent._dataplane import unbuildable

    nets = [("lan", "flat"), ("v7", "vlan"), ("blue", "vxlan")]
    found = unbuildable(nets, {"h1": ALL, "h2": NO_8021Q, "h3": (), "h4": ("vxlan", "bridge", "veth")})
    assert [(h, n) for h, n, _ in found] == [("h2", "v7"), ("h4", "lan"), ("h4", "v7")]
    assert found[0][2] == ("host h2's kernel has no 802.1Q VLANs (module 8021q): its containers cannot join "
                           "network 'v7' (mode vlan); load the module on h2 and restart its agent")

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

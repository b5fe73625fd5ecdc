"""State + members + containers -> HostDesired for routed networks (pure)."""

import itertools

from meshd import state as st
from meshd.agent._translate import host_desired


def _state():
    s = st.NetworkState()
    idx = itertools.count(1)
    run = lambda cmd: s.execute(cmd, next(idx))  # noqa: E731
    run(st.CreateNetwork(name="r1", tenant="t1", subnet="10.70.0.0/24", mode="routed"))
    run(st.CreateNetwork(name="r2", tenant="t1", subnet="10.71.0.0/24", mode="routed"))
    run(st.CreateNetwork(name="v1", tenant="t1", subnet="10.1.0.0/24"))
    run(st.CreateNetwork(name="rb", tenant="t2", subnet="10.80.0.0/24", mode="routed"))
    run(st.Connect(endpoint_id="c1", network="r1", host="h1"))
    run(st.Connect(endpoint_id="c2", network="r2", host="h2"))
    run(st.Connect(endpoint_id="c3", network="v1", host="h2"))
    run(st.Connect(endpoint_id="c4", network="rb", host="h2"))
    return s


def test_routed_networks_carry_their_mode_and_bring_in_the_tenants_other_routed_networks():
    d = host_desired(host="h1", state=_state(), live_vteps={"h1": "192.0.2.11", "h2": "192.0.2.12"},
                     pids={"c1": 101}, underlay_ip="192.0.2.11", underlay_dev="eth0", underlay_mtu=1500,
                     underlay_subnet="192.0.2.0/24")
    assert {n.subnet: n.mode for n in d.networks} == {"10.70.0.0/24": "routed", "10.71.0.0/24": "routed",
                                                      "10.1.0.0/24": "vxlan", "10.80.0.0/24": "routed"}
    assert d.underlay_subnet == "192.0.2.0/24"
    # c1's host routes to t1's other routed network (c2), not to t1's VXLAN network nor to tenant t2
    assert {r.ip for r in d.remote} == {"10.71.0.2"}

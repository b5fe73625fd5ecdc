"""State + members + containers -> HostDesired (pure)."""

import itertools

from meshd import state as st
from meshd.agent._translate import host_desired


def _state():
    s = st.NetworkState()
    idx = itertools.count(1)
    run = lambda cmd: s.execute(cmd, next(idx))  # noqa: E731
    run(st.CreateNetwork(name="blue", tenant="t1", subnet="10.1.0.0/24"))
    run(st.CreateNetwork(name="red", tenant="t2", subnet="10.1.0.0/24"))          # overlaps blue: another tenant
    run(st.CreateNetwork(name="green", tenant="t1", subnet="10.3.0.0/24", egress_kbit=5000, external=True))
    run(st.Connect(endpoint_id="c1", network="blue", host="h1", qos=st.Qos(1000, 32768, 20)))
    run(st.Connect(endpoint_id="c1", network="green", host="h1"))
    run(st.Connect(endpoint_id="c2", network="blue", host="h2"))
    run(st.Connect(endpoint_id="c3", network="red", host="h3"))
    run(st.Connect(endpoint_id="c4", network="red", host="h1"))
    run(st.AddPolicy(kind=st.PolicyKind.DENY_ONE_WAY, network="blue", peer="green", policy_id="p1"))
    return s


def _desired(**kw):
    args = dict(host="h1", state=_state(), live_vteps={"h1": "192.0.2.11", "h2": "192.0.2.12", "h3": "192.0.2.13"},
                pids={"c1": 101, "c4": 104}, underlay_ip="192.0.2.11", underlay_dev="eth0", underlay_mtu=1500)
    args.update(kw)
    return host_desired(**args)


def test_local_endpoints_get_interfaces_in_network_creation_order():
    d = _desired()
    nets = {n.tenant + "/" + n.subnet: n.vni for n in d.networks}
    local = {(e.key, e.ifname): e for e in d.local}
    assert set(local) == {("c1", "eth0"), ("c1", "eth1"), ("c4", "eth0")}
    assert local["c1", "eth0"].vni == nets["t1/10.1.0.0/24"] and local["c1", "eth1"].vni == nets["t1/10.3.0.0/24"]
    assert local["c1", "eth0"].netns == "/proc/101/ns/net"
    assert local["c1", "eth0"].qos.rate_kbit == 1000 and local["c1", "eth1"].qos is None
    assert [n.egress_kbit for n in d.networks] == [None, None, 5000]
    assert [n.external for n in d.networks] == [False, False, True]


def test_remote_entries_only_from_live_hosts():
    d = _desired()
    assert {(r.ip, r.vtep) for r in d.remote} == {("10.1.0.3", "192.0.2.12"), ("10.1.0.2", "192.0.2.13")}
    assert {v: set(s) for v, s in d.vteps.items()} == {1: {"192.0.2.12"}, 2: {"192.0.2.13"}}
    failed = _desired(live_vteps={"h1": "192.0.2.11", "h2": "192.0.2.12"})   # h3 failed
    assert {r.vtep for r in failed.remote} == {"192.0.2.12"}
    assert 2 not in failed.vteps


def test_a_stopped_container_has_no_interface_but_keeps_its_address():
    d = _desired(pids={"c4": 104})
    assert [e.key for e in d.local] == ["c4"]


def test_policies_are_translated_by_vni():
    (p,) = _desired().policies
    assert (p.kind, p.a, p.b) == ("deny", 1, 3)


def test_remote_entries_only_in_networks_this_host_builds():
    s = _state()
    s.execute(st.CreateNetwork(name="big", tenant="t3", subnet="10.0.0.0/8"), 100)
    for i in range(50):  # another host's endpoints in a network h1 has nothing in
        s.execute(st.Connect(endpoint_id=f"x{i}", network="big", host="h2"), 101 + i)
    d = _desired(state=s)
    assert {(r.ip, r.vtep) for r in d.remote} == {("10.1.0.3", "192.0.2.12"), ("10.1.0.2", "192.0.2.13")}
    s.execute(
        st.Connect(endpoint_id="c9", network="big", host="h1"), 200
    )  # now h1 builds "big": h2's endpoints there matter
    d = _desired(state=s, pids={"c1": 101, "c4": 104, "c9": 109})
    assert sum(r.vtep == "192.0.2.12" for r in d.remote) == 51


def test_stopped_local_endpoints_do_not_pull_in_remote_entries():
    d = _desired(pids={"c4": 104})  # c1 (blue, green) is not running: h1 builds only red
    assert {(r.ip, r.vtep) for r in d.remote} == {("10.1.0.2", "192.0.2.13")}


def test_flat_and_vlan_networks_become_macvlan_networks_on_the_hosts_parent_without_remote_entries():
    s = _state()
    index = itertools.count(100)
    run = lambda cmd: s.execute(cmd, next(index))  # noqa: E731
    run(st.CreateNetwork(name="lan", tenant="t1", subnet="10.9.0.0/24", mode=st.Mode.FLAT, mtu=1500))
    run(st.CreateNetwork(name="v7", tenant="t1", subnet="10.8.0.0/24", mode=st.Mode.VLAN, mtu=1500,
                         options={"vlan": "7", "parent": "bond0", "macvlan_mode": "private"}))
    for cid, host in (("f1", "h1"), ("f2", "h2"), ("v1", "h1")):
        run(st.Connect(endpoint_id=cid, network="v7" if cid == "v1" else "lan", host=host))
    d = _desired(state=s, pids={"c1": 101, "f1": 201, "v1": 202}, parent="eth9", records_dir="/run/x/endpoints")
    nets = {n.subnet: n for n in d.networks}
    assert (nets["10.9.0.0/24"].mode, nets["10.9.0.0/24"].parent, nets["10.9.0.0/24"].vlan) == ("flat", "eth9", None)
    assert (nets["10.8.0.0/24"].mode, nets["10.8.0.0/24"].parent, nets["10.8.0.0/24"].vlan,
            nets["10.8.0.0/24"].macvlan_mode) == ("flat", "bond0", 7, "private")
    flat_vnis = {nets["10.9.0.0/24"].vni, nets["10.8.0.0/24"].vni}
    assert {e.key for e in d.local if e.vni in flat_vnis} == {"f1", "v1"}
    assert not [r for r in d.remote if r.vni in flat_vnis] and not flat_vnis & set(d.vteps)  # f2: on the LAN
    assert d.records_dir == "/run/x/endpoints"
    assert _desired(state=s, pids={"f1": 201}).networks[3].parent == "eth0"  # no dataplane.parent: the underlay


def test_a_container_attached_by_netns_path_gets_its_interface_there_with_the_name_asked_for():
    d = _desired(pids={}, netns={"c1": "/run/netns/pod1"}, ifnames={("c1", "green"): "net1"})
    local = {(e.key, e.ifname): e for e in d.local}
    assert set(local) == {("c1", "eth0"), ("c1", "net1")}  # blue by its order, green by the name asked for
    assert {e.netns for e in d.local} == {"/run/netns/pod1"}

"""Network options: checked at create, kept through snapshots, and ``ip_range`` bounds the addresses handed out."""

from __future__ import annotations

import random

from meshd.state import CommandError, Connect, CreateNetwork, Mode, NetworkState
from meshd.state._bitvec import BitVector


def _run(state: NetworkState, *cmds):
    results = []
    for cmd in cmds:
        results.append(state.execute(cmd, state.last_index + 1))
        assert not isinstance(results[-1], CommandError), results[-1]
    return results


def test_flat_network_keeps_its_options_and_hands_out_addresses_from_its_ip_range_only():
    s = NetworkState()
    _run(s, CreateNetwork(name="lan", tenant="a", subnet="192.0.2.0/24", gateway="192.0.2.1", mode=Mode.FLAT,
                          mtu=1500, options={"parent": "eth1", "ip_range": "192.0.2.200/29",
                                             "macvlan_mode": "private"}))
    info = s.network("lan")
    assert info.network.mode is Mode.FLAT
    assert info.network.options == {"ip_range": "192.0.2.200/29", "macvlan_mode": "private", "parent": "eth1"}
    got = [r.ip for r in _run(s, *(Connect(endpoint_id=f"c{i}", network="lan", host="h1") for i in range(8)))]
    assert got == [f"192.0.2.{200 + i}" for i in range(8)]
    full = s.execute(Connect(endpoint_id="c9", network="lan", host="h1"), s.last_index + 1)
    assert isinstance(full, CommandError) and "ip_range 192.0.2.200/29" in full.message
    # an explicit address may be anywhere in the subnet (Docker's --ip beside --ip-range)
    assert _run(s, Connect(endpoint_id="c9", network="lan", host="h1", ip="192.0.2.77"))[0].ip == "192.0.2.77"
    # the returned record is a copy: changing it changes nothing
    info.network.options["parent"] = "x"
    assert s.network("lan").network.options["parent"] == "eth1"


def test_options_survive_a_snapshot_and_old_format_3_snapshots_load_without_options():
    s = NetworkState()
    _run(s, CreateNetwork(name="lan", tenant="a", subnet="10.60.0.0/24", mode=Mode.FLAT,
                          options={"ip_range": "10.60.0.64/26"}),
         CreateNetwork(name="blue", tenant="a", subnet="10.61.0.0/24"),
         Connect(endpoint_id="c1", network="lan", host="h1"))
    restored = NetworkState()
    restored.restore(s.snapshot())
    assert restored.network("lan").network.options == {"ip_range": "10.60.0.64/26"}
    assert restored.network("blue").network.options == {}
    # the range still bounds allocation after the restore
    assert _run(restored, Connect(endpoint_id="c2", network="lan", host="h1"))[0].ip == "10.60.0.65"


def test_lan_modes_may_not_overlap_each_other_across_tenants_but_vxlan_may_overlap_them():
    s = NetworkState()
    _run(s, CreateNetwork(name="lan", tenant="a", subnet="10.70.0.0/24", mode=Mode.FLAT),
         CreateNetwork(name="overlay", tenant="b", subnet="10.70.0.0/16"))  # vxlan: its own segment
    refused = s.execute(CreateNetwork(name="lan2", tenant="c", subnet="10.70.0.0/25", mode=Mode.FLAT), 10)
    assert isinstance(refused, CommandError) and "flat network 'lan'" in refused.message
    _run(s, CreateNetwork(name="lan3", tenant="b", subnet="10.71.0.0/24", mode=Mode.FLAT))


def test_allocate_in_takes_free_slots_of_the_range_from_the_cursor_and_wraps():
    vec = BitVector(256)
    for i in (10, 11, 13):
        vec.set(i)
    assert [vec.allocate_in(10, 15) for _ in range(3)] == [12, 14, 15]
    assert vec.allocate_in(10, 15) is None
    vec.clear(11)
    assert vec.allocate_in(10, 15) == 11  # wrapped round inside the range
    rng = random.Random(5)
    big = BitVector(4096)
    for i in rng.sample(range(1000, 3000), 1500):
        big.set(i)
    taken = {big.allocate_in(1000, 2999) for _ in range(500)}
    assert len(taken) == 500 and all(1000 <= i <= 2999 for i in taken)
    assert big.allocate_in(1000, 2999) is None and not big.test(999) and not big.test(3000)


def test_a_vlan_network_needs_its_vlan_id_and_a_vlan_is_one_tenants_segment():
    s = NetworkState()
    missing = s.execute(CreateNetwork(name="v", tenant="a", subnet="10.90.0.0/24", mode=Mode.VLAN), 1)
    assert isinstance(missing, CommandError) and "needs option vlan=ID with an ID of 1..4094" in missing.message
    bad = s.execute(CreateNetwork(name="v", tenant="a", subnet="10.90.0.0/24", mode=Mode.VLAN,
                                  options={"vlan": "4095"}), 2)
    assert isinstance(bad, CommandError) and "not '4095'" in bad.message
    _run(s, CreateNetwork(name="v", tenant="a", subnet="10.90.0.0/24", mode=Mode.VLAN, options={"vlan": "100"}),
         CreateNetwork(name="v2", tenant="a", subnet="10.91.0.0/24", mode=Mode.VLAN, options={"vlan": "100"}),
         CreateNetwork(name="w", tenant="b", subnet="10.90.0.0/24", mode=Mode.VLAN, options={"vlan": "101"}))
    taken = s.execute(CreateNetwork(name="x", tenant="b", subnet="10.92.0.0/24", mode=Mode.VLAN,
                                    options={"vlan": "100"}), 10)
    assert isinstance(taken, CommandError)
    assert "VLAN 100 of network 'x' already carries network 'v' of tenant 'a'" in taken.message
    assert s.network("v").network.options == {"vlan": "100"}

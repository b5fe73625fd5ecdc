"""The chaos oracles: the scenario's reachability, the expected kernel of a host, and the probe packets."""

import random
import socket
import struct

import pytest

from meshd.reconcile import host_if_name, router_name
from tools.chaos._expect import KernelView, StateView, active_vnis, diff_kernel, expected_kernel
from tools.chaos._kernel import _element
from tools.chaos._probe import SO_TIMESTAMPNS, _checksum, _kernel_time, echo_request, parse_echo_reply
from tools.chaos._topology import ICMP, UDP, Placed, expect, matrix, ping_pairs, topology


# ---------------------------------------------------------------- scenario and reachability
def test_topology_spreads_every_network_over_distinct_hosts_and_overlaps_tenants():
    topo = topology(hosts=5, replicas=4)
    assert len(topo.containers) == 6 * 4
    for net in topo.networks:
        hosts = [c.host for c in topo.containers if c.network == net.name]
        assert len(set(hosts)) == 4
    subnets = {(n.tenant, n.subnet) for n in topo.networks}
    assert ("a", "10.1.0.0/24") in subnets and ("b", "10.1.0.0/24") in subnets
    asked = [c.ip for c in topo.containers if c.network == "b-red"]
    assert asked == ["10.1.0.200", None, "10.1.0.202", None]  # half unique to b, half overlapping a
    assert {p.kind for p in topo.policies} == {"isolate-within", "deny-one-way", "deny-both", "deny-all"}
    with pytest.raises(ValueError, match="replicas 4 out of range: use 2..3"):
        topology(hosts=3, replicas=4)


def _placed():
    return (
        Placed("blue1", "h1", "a-blue", "a", "10.1.0.2"), Placed("blue2", "h2", "a-blue", "a", "10.1.0.3"),
        Placed("green1", "h2", "a-green", "a", "10.2.0.2"), Placed("iso1", "h1", "a-iso", "a", "10.3.0.2"),
        Placed("iso2", "h2", "a-iso", "a", "10.3.0.3"), Placed("dark1", "h3", "a-dark", "a", "10.4.0.2"),
        Placed("red1", "h3", "b-red", "b", "10.1.0.2"), Placed("red2", "h1", "b-red", "b", "10.1.0.200"),
        Placed("amber1", "h3", "b-amber", "b", "10.2.0.2"),
    )


TOPO = topology(hosts=3, replicas=2)
P = {p.name: p for p in _placed()}


@pytest.mark.parametrize("src, dst_ip, proto, passes, responder", [
    ("blue1", "10.1.0.3", UDP, True, "blue2"),      # same network across hosts
    ("blue1", "10.3.0.2", ICMP, True, "iso1"),      # routed inside tenant a; isolate-within is within a-iso only
    ("iso1", "10.3.0.3", ICMP, False, "iso2"),      # isolate-within
    ("iso1", "10.3.0.1", ICMP, True, None),         # ... keeps the gateway
    ("blue1", "10.2.0.2", ICMP, False, "green1"),   # deny-one-way a-blue -> a-green
    ("green1", "10.1.0.2", ICMP, True, "blue1"),    # the other way passes for pings
    ("green1", "10.1.0.2", UDP, False, "blue1"),    # but UDP replies A->B are dropped (documented gap)
    ("red1", "10.2.0.2", ICMP, False, "amber1"),    # deny-both
    ("amber1", "10.1.0.2", ICMP, False, "red1"),
    ("dark1", "10.4.0.1", ICMP, False, None),       # deny-all: not even the gateway
    ("blue1", "10.4.0.2", ICMP, False, None),       # nor from outside
    ("blue1", "10.1.0.200", UDP, False, None),      # only tenant b holds it: any answer is a leak
    ("red2", "10.1.0.2", UDP, True, "red1"),        # tenant a holds 10.1.0.2 too: red1 must answer, not blue1
    ("red1", "10.1.0.2", ICMP, True, "red1"),       # its own address
])
def test_expect(src, dst_ip, proto, passes, responder):
    e = expect(TOPO, _placed(), P[src], dst_ip, proto)
    assert (e.passes, e.responder) == (passes, responder)


def test_matrix_covers_every_ordered_pair_and_gateway_but_skips_addresses_without_an_oracle():
    placed = _placed()
    probes = matrix(TOPO, placed)
    same_ip = sum(1 for a in placed for b in placed if a is not b and a.ip == b.ip)
    assert len(probes) == 2 * (len(placed) * (len(placed) - 1) - same_ip) + len(placed)
    churn = frozenset({("a", "10.1.0.200")})  # a churn container of tenant a holds tenant b's address
    fewer = matrix(TOPO, placed, churn)
    assert not any(p.src in ("blue1", "blue2", "green1", "iso1", "iso2", "dark1") and p.dst_ip == "10.1.0.200"
                   for p in fewer)
    assert len(fewer) == len(probes) - 2 * 6


def test_ping_pairs_one_per_host_pair_both_ways_reachable():
    placed = _placed()
    pairs = ping_pairs(TOPO, placed, random.Random(1))
    # h2 and h3 share no tenant whose containers may reach each other (h3 has a-dark and tenant b only)
    assert {frozenset((a.host, b.host)) for a, b in pairs} == {frozenset(p) for p in (("h1", "h2"), ("h1", "h3"))}
    for a, b in pairs:
        assert expect(TOPO, placed, a, b.ip, ICMP).passes and expect(TOPO, placed, b, a.ip, ICMP).passes
    assert pairs == ping_pairs(TOPO, placed, random.Random(1))


def test_ping_pairs_never_cross_tenants_through_a_shared_address():
    # red1 (tenant b) and blue1 (tenant a) both hold 10.1.0.2; blue2's 10.1.0.3 is held in b by red9 on h3:
    # a "pair" red1 -> blue2 would really ping red9
    placed = (Placed("blue1", "h1", "a-blue", "a", "10.1.0.2"), Placed("blue2", "h2", "a-blue", "a", "10.1.0.3"),
              Placed("red1", "h1", "b-red", "b", "10.1.0.2"), Placed("red9", "h3", "b-red", "b", "10.1.0.3"))
    for seed in range(20):
        for a, b in ping_pairs(TOPO, placed, random.Random(seed)):
            assert a.tenant == b.tenant, (a, b)


# ---------------------------------------------------------------- expected kernel
NETS = (
    {"name": "blue", "tenant": "a", "subnet": "10.1.0.0/24", "gateway": "10.1.0.1", "vni": 1},
    {"name": "green", "tenant": "a", "subnet": "10.2.0.0/24", "gateway": "10.2.0.1", "vni": 2},
    {"name": "red", "tenant": "b", "subnet": "10.1.0.0/24", "gateway": "10.1.0.1", "vni": 3},
)
EPS = (
    {"endpoint_id": "c1", "network": "blue", "host": "h1", "ip": "10.1.0.2", "mac": "02:6d:0a:01:00:02"},
    {"endpoint_id": "c2", "network": "blue", "host": "h2", "ip": "10.1.0.3", "mac": "02:6d:0a:01:00:03"},
    {"endpoint_id": "c3", "network": "green", "host": "h3", "ip": "10.2.0.2", "mac": "02:6d:0a:02:00:02"},
    {"endpoint_id": "c4", "network": "red", "host": "h2", "ip": "10.1.0.2", "mac": "02:6d:0a:01:00:02"},
)
POLS = ({"policy_id": "p1", "kind": "isolate-within", "network": "blue", "peer": None},
        {"policy_id": "p2", "kind": "deny-one-way", "network": "green", "peer": "blue"})
LIVE = {"h1": "192.0.2.11", "h2": "192.0.2.12", "h3": "192.0.2.13"}


def test_active_networks_are_local_ones_plus_routed_ones_of_the_same_tenant():
    st = StateView(NETS, EPS, POLS)
    assert active_vnis(st, [("c1", "blue")]) == {1, 2}
    assert active_vnis(st, [("c4", "red")]) == {3}
    assert active_vnis(st, []) == set()


def test_expected_kernel_of_a_host():
    want = expected_kernel("h1", StateView(NETS, EPS, POLS), LIVE, {"c1"}, "p-r1-")
    v1 = host_if_name("c1", 1)
    assert want.links == {"mb-1", "mx-1", "mg-1", "mb-2", "mx-2", "mg-2", v1}
    assert want.routers == {router_name("a", "p-r1-")}
    assert want.fdb == {("mx-1", "00:00:00:00:00:00", "192.0.2.12"), ("mx-1", "02:6d:0a:01:00:03", "192.0.2.12"),
                        ("mx-1", "02:6d:0a:01:00:03", ""), ("mx-2", "00:00:00:00:00:00", "192.0.2.13"),
                        ("mx-2", "02:6d:0a:02:00:02", "192.0.2.13"), ("mx-2", "02:6d:0a:02:00:02", "")}
    assert want.neigh == {("mx-1", "10.1.0.3", "02:6d:0a:01:00:03"), ("mx-2", "10.2.0.2", "02:6d:0a:02:00:02")}
    assert want.nft == {"icc_off": {f"{v1} . 10.1.0.2", "mx-1 . 10.1.0.3"}, "deny_all": set(),
                        "deny_to": {"mg-1 . 10.2.0.0/24"}}


def test_a_dead_host_has_no_entries_and_a_host_without_containers_builds_nothing():
    live = {"h1": "192.0.2.11", "h3": "192.0.2.13"}  # h2 is down
    want = expected_kernel("h1", StateView(NETS, EPS, POLS), live, {"c1"}, "p-r1-")
    assert not any(vtep == "192.0.2.12" for _d, _m, vtep in want.fdb)
    assert want.nft["icc_off"] == {f"{host_if_name('c1', 1)} . 10.1.0.2"}
    idle = expected_kernel("h1", StateView(NETS, EPS, POLS), LIVE, set(), "p-r1-")  # c1 not running
    assert (idle.links, idle.fdb, idle.neigh, idle.routers) == (set(), set(), set(), set())


def test_diff_separates_wrong_entries_from_leaks():
    want = expected_kernel("h1", StateView(NETS, EPS, POLS), LIVE, {"c1"}, "p-r1-")
    assert diff_kernel("h1", want, want).clean
    have = KernelView(want.links - {"mg-2"} | {"mb-9", "mv0123456789ab"},
                      want.fdb - {("mx-1", "02:6d:0a:01:00:03", "")} | {("mx-1", "02:6d:0a:01:00:09", "192.0.2.19")},
                      want.neigh, {**want.nft, "deny_all": frozenset({"mvdead"})}, want.routers | {"p-r1-x-000000"})
    d = diff_kernel("h1", want, have)
    assert d.wrong == ("h1: fdb mx-1 02:6d:0a:01:00:03 missing", "h1: fdb mx-1 02:6d:0a:01:00:09 192.0.2.19 stale",
                       "h1: device mg-2 missing")
    assert d.leaked == ("h1: device mb-9 leaked", "h1: device mv0123456789ab leaked",
                        "h1: router netns p-r1-x-000000 leaked", "h1: nft deny_all mvdead leaked")
    assert d.compared > len(want.fdb)


def test_nft_json_elements_become_canonical_text():
    assert _element("mv1a2b") == "mv1a2b"
    assert _element({"concat": ["mv1a2b", "10.1.0.2"]}) == "mv1a2b . 10.1.0.2"
    assert _element({"concat": ["mg-2", {"prefix": {"addr": "10.1.0.0", "len": 24}}]}) == "mg-2 . 10.1.0.0/24"
    assert _element({"elem": {"val": {"concat": ["mx-1", "10.1.0.3"]}, "counter": {}}}) == "mx-1 . 10.1.0.3"


# ---------------------------------------------------------------- probe packets
def test_echo_request_checksums_and_a_reply_parses():
    req = echo_request(0x7001, 42)
    assert _checksum(req) == 0  # a valid ICMP checksum sums to zero
    reply = bytearray(req)
    reply[0] = 0  # type 0: echo reply
    ip = bytes([0x45, 0, 0, 20 + len(reply)]) + bytes(8) + socket.inet_aton("10.1.0.3") + socket.inet_aton("10.1.0.2")
    assert parse_echo_reply(ip + bytes(reply)) == ("10.1.0.3", 0x7001, 42)
    assert parse_echo_reply(ip + req) is None  # a request, not a reply
    assert parse_echo_reply(b"short") is None


def test_kernel_receive_time_comes_from_the_timestamp_control_message():
    stamp = struct.pack("qq", 1700000000, 250_000_000)
    assert _kernel_time([(socket.SOL_SOCKET, SO_TIMESTAMPNS, stamp)]) == 1700000000.25
    assert _kernel_time([(socket.SOL_SOCKET, 99, stamp)]) is None

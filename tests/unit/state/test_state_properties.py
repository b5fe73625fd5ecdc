"""Property tests: random command sequences against the state machine's invariants.

A small universe (4 networks, overlapping tiny subnets, 6 containers, 3 hosts,
a few fixed IPs, MACs and VNIs) makes collisions, exhaustion and rejections
common.  After every command: no IP or VNI is held twice, every bit vector's
popcount equals its live allocations plus reserved slots, reserved addresses
are never held, a rejected command changed nothing, the indexes agree with
the endpoints, and a snapshot restores to an equal state that then evolves
identically; folding the change stream rebuilds what the queries show.
Replaying the same log gives the same state hash.

Long run: HYPOTHESIS_PROFILE=state-long runs 2,000 examples per property (about 10 minutes on an idle 2-core machine).
"""

from __future__ import annotations

import collections
import os

import msgpack
from hypothesis import event, given, settings
from hypothesis import strategies as st

from meshd.state import (
    NO_QOS,
    VNI_MAX,
    AddPolicy,
    ChangeKind,
    CommandError,
    Connect,
    CreateNetwork,
    DeleteNetwork,
    Disconnect,
    MarkHostStale,
    MoveEndpoint,
    NetworkState,
    PolicyKind,
    Qos,
    RemoveHost,
    RemovePolicy,
    SetQos,
    UpdateNetwork,
    decode_result,
    encode_command,
    precheck,
    replay,
)

settings.register_profile("state-ci", max_examples=100, deadline=None)
settings.register_profile("state-long", max_examples=2000, deadline=None)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "state-ci")
if PROFILE not in ("state-ci", "state-long"):
    PROFILE = "state-ci"

NETS = ["n0", "n1", "n2", "n3"]
EPS = ["c0", "c1", "c2", "c3", "c4", "c5"]
HOSTS = ["h0", "h1", "h2"]
SUBNETS = ["10.0.0.0/29", "10.0.0.0/28", "10.0.0.8/29", "10.0.0.16/30", "10.0.1.0/29", "10.0.0.3/29", "fd00::/64"]
IPS = [None, None, None, *(f"10.0.0.{i}" for i in range(20)), "10.0.1.2", "10.0.1.7"]
MACS = [None, None, None, "04:00:00:00:00:01", "04:00:00:00:00:02", "01:00:00:00:00:01"]
QOS = [NO_QOS, Qos(), Qos(1000, 4000, 5), Qos(1000, 0, 0)]

name = st.sampled_from(["n0", "n0", "n1", "n1", "n2", "n3"])  # n3 is never in the preamble
ep = st.sampled_from(EPS)
host = st.sampled_from(HOSTS)
connects = st.builds(
    Connect, endpoint_id=ep, network=name, host=host, ip=st.sampled_from(IPS), mac=st.sampled_from(MACS),
    qos=st.sampled_from(QOS), name=st.sampled_from([None, None, "web", "db-1", "-bad name"]),
)
commands = st.one_of(
    connects,
    connects,
    st.builds(Connect, endpoint_id=ep, network=name, host=host),
    st.builds(Connect, endpoint_id=ep, network=name, host=host),
    st.builds(
        CreateNetwork,
        name=name,
        tenant=st.sampled_from(["t0", "t1"]),
        subnet=st.sampled_from(SUBNETS),
        gateway=st.sampled_from([None, None, "10.0.0.6", "10.0.0.9"]),
        vni=st.sampled_from([None, None, 1, 2, 3, 0, VNI_MAX]),
    ),
    st.builds(DeleteNetwork, name=name, force=st.booleans()),
    st.builds(UpdateNetwork, name=name, mtu=st.sampled_from([None, 1400, 10])),
    st.builds(Disconnect, endpoint_id=ep, network=name),
    st.builds(MoveEndpoint, endpoint_id=ep, host=host),
    st.builds(SetQos, endpoint_id=ep, network=name, qos=st.sampled_from(QOS)),
    st.builds(AddPolicy, kind=st.sampled_from(list(PolicyKind)), network=name, peer=st.sampled_from([None, *NETS])),
    st.builds(RemovePolicy, policy_id=st.sampled_from(["policy-3", "policy-5", "policy-8", "x"])),
    st.builds(MarkHostStale, host=host, stale=st.booleans()),
    st.builds(RemoveHost, host=host),
)


#: most sequences start from a few networks, so that endpoint commands have somewhere to go
PREAMBLE = [
    CreateNetwork(name="n0", tenant="t0", subnet="10.0.0.0/28"),
    CreateNetwork(name="n1", tenant="t1", subnet="10.0.0.0/29", vni=2),
    CreateNetwork(name="n2", tenant="t0", subnet="10.0.1.0/29"),
]
logs = st.tuples(
    st.sampled_from([PREAMBLE, PREAMBLE, PREAMBLE, PREAMBLE[:1], []]), st.lists(commands, min_size=15, max_size=50)
).map(lambda t: t[0] + t[1])


def content(state: NetworkState) -> dict:
    doc = msgpack.unpackb(state.snapshot(), raw=False, strict_map_key=False)
    del doc["last_index"]
    return doc


def check_invariants(state: NetworkState) -> None:
    vnis = [net.net.vni for net in state._nets.values()]
    assert len(set(vnis)) == len(vnis), "a VNI is held twice"
    assert all(1 <= v <= VNI_MAX for v in vnis)
    assert state._vnis.used() == sorted([0, *vnis])
    assert state._vnis.count == state._vnis.popcount() == len(vnis) + 1
    containers: dict[str, list[str]] = collections.defaultdict(list)
    hosts: dict[str, dict[str, int]] = collections.defaultdict(lambda: collections.defaultdict(int))
    named: dict[str, dict[str, int]] = collections.defaultdict(lambda: collections.defaultdict(int))
    for nname, net in state._nets.items():
        offs = [off for _, off, _, _, _ in net.eps.values()]
        assert len(set(offs)) == len(offs), f"an IP is held twice in {nname}"
        reserved = {0, net.size - 1, net.gw_off}
        assert not reserved & set(offs), f"a reserved address was handed out in {nname}"
        assert net.vec.used() == sorted(reserved | set(offs))
        assert net.vec.count == net.vec.popcount() == len(offs) + 3
        assert net.macs == {mac: cid for cid, (_, _, mac, _, _) in net.eps.items() if mac is not None}
        for cid, (ep_host, _, _, qos, ep_name) in net.eps.items():
            if ep_name is not None:
                named[ep_name][cid] += 1
            containers[cid].append(nname)
            hosts[ep_host][nname] += 1
            assert qos is None or (qos != (0, 0, 0) and state._qos_pool[qos] is qos), "QoS not interned"
    assert {c: sorted(n) for c, n in containers.items()} == {c: sorted(n) for c, n in state._containers.items()}
    assert {h: dict(n) for h, n in hosts.items()} == state._hosts
    assert {name: dict(c) for name, c in named.items()} == state._named, "the name index differs from the endpoints"
    for cid, nets in state._containers.items():
        assert len({state._nets[n].eps[cid][0] for n in nets}) == 1, f"container {cid} is on two hosts"
    for info in state.networks():
        assert info.used + info.free + 3 == state._nets[info.network.name].size
    nets = list(state._nets.values())
    for i, a in enumerate(nets):
        for b in nets[i + 1 :]:
            if a.net.tenant == b.net.tenant:
                assert a.base + a.size <= b.base or b.base + b.size <= a.base, "overlap within a tenant"


@settings(settings.get_profile(PROFILE))
@given(cmds=logs, split=st.integers(0, 45))
def test_random_command_sequences_keep_every_invariant(cmds, split):
    state, copy, lazy = NetworkState(), None, None
    for i, cmd in enumerate(cmds, 1):
        before = content(state)
        result = state.execute(cmd, i)
        event(f"{type(cmd).__name__}: {result.code.name if isinstance(result, CommandError) else 'ok'}")
        if isinstance(result, CommandError):
            assert content(state) == before, f"rejected {cmd} changed the state: {result.message}"
        check_invariants(state)
        if copy is not None and lazy is not None:  # replicas restored from a snapshot evolve identically
            assert copy.execute(cmd, i) == result
            assert lazy.execute(cmd, i) == result
        if i == split:
            copy, lazy = NetworkState(), NetworkState()
            copy.restore(state.snapshot())
            assert copy == state
            check_invariants(copy)  # builds every index at once
            lazy.restore(state.snapshot())  # builds them as the commands need them
    if copy is not None and lazy is not None:
        assert copy.state_hash() == state.state_hash() == lazy.state_hash()
        check_invariants(copy)
        check_invariants(lazy)
    check_change_stream(state)


def check_change_stream(state: NetworkState) -> None:
    """Folding the change stream from index 0 rebuilds what the queries show (the reconciler's view)."""
    changes = state.changes_since(0)
    assert changes.complete
    nets: set[str] = set()
    eps: dict[tuple[str, str], str] = {}
    policies: set[str] = set()
    stale: set[str] = set()
    for c in changes.changes:
        if c.kind == ChangeKind.NETWORK_CREATED:
            nets.add(c.network)
        elif c.kind == ChangeKind.NETWORK_DELETED:
            nets.discard(c.network)
            eps = {k: h for k, h in eps.items() if k[0] != c.network}
        elif c.kind in (ChangeKind.ENDPOINT_ADDED, ChangeKind.ENDPOINT_MOVED):
            eps[(c.network, c.endpoint_id)] = c.host
        elif c.kind == ChangeKind.ENDPOINT_REMOVED:
            del eps[(c.network, c.endpoint_id)]
        elif c.kind == ChangeKind.POLICY_ADDED:
            policies.add(c.policy_id)
        elif c.kind == ChangeKind.POLICY_REMOVED:
            policies.remove(c.policy_id)
        elif c.kind == ChangeKind.HOST_STALE:
            stale.add(c.host)
        elif c.kind == ChangeKind.HOST_CLEARED:
            stale.remove(c.host)
    assert nets == {i.network.name for i in state.networks()}
    assert eps == {(e.network, e.endpoint_id): e.host for e in state.endpoints()}
    assert policies == {p.policy_id for p in state.policies()}
    assert stale == set(state.stale_hosts())


@settings(settings.get_profile(PROFILE))
@given(cmds=logs)
def test_replaying_the_log_gives_the_same_state_hash_and_results(cmds):
    first = replay(cmds)
    again = NetworkState()
    results = [decode_result(again.apply(i, encode_command(c))) for i, c in enumerate(cmds, 1)]
    assert again.state_hash() == first.state_hash()
    third = NetworkState()
    assert [third.execute(c, i) for i, c in enumerate(cmds, 1)] == results


@settings(settings.get_profile(PROFILE))
@given(cmds=logs)
def test_a_precheck_refusal_is_exactly_the_refusal_apply_gives_and_changes_nothing(cmds):
    """What the committer refuses without a log entry is what the state would have answered."""
    state = NetworkState()
    rejected = refused = 0
    for index, cmd in enumerate(cmds, start=1):
        before = state.state_hash()
        early = precheck(state, cmd)
        assert state.state_hash() == before, f"precheck of {cmd!r} changed the state"
        result = state.execute(cmd, index)
        rejected += isinstance(result, CommandError)
        if early is not None:
            refused += 1
            assert result == early, f"precheck said {early!r}, apply said {result!r} for {cmd!r}"
    event(f"rejections refused early: {10 * refused // max(rejected, 1) * 10}%")

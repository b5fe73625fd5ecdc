"""NetworkState plugs into consensus.StateMachine (checked against the protocol itself)."""

from __future__ import annotations

import inspect

import consensus
from meshd.state import Connect, CreateNetwork, NetworkState, decode_result, encode_command


def test_network_state_has_every_method_of_the_consensus_protocol_with_the_same_signature():
    protocol_methods = {
        name
        for name, member in vars(consensus.StateMachine).items()
        if callable(member) and not name.startswith("_")
    }
    assert protocol_methods == {"apply", "snapshot", "restore"}
    for name in protocol_methods:
        want = inspect.signature(getattr(consensus.StateMachine, name))
        got = inspect.signature(getattr(NetworkState, name))
        assert list(got.parameters) == list(want.parameters), name
        assert str(got.return_annotation) == str(want.return_annotation), name


def test_apply_snapshot_restore_as_the_log_drives_them():
    leader, follower = NetworkState(), NetworkState()
    log = [
        encode_command(CreateNetwork(name="blue", tenant="acme", subnet="10.1.0.0/24")),
        encode_command(Connect(endpoint_id="c1", network="blue", host="h1")),
    ]
    results = [leader.apply(i, data) for i, data in enumerate(log, 1)]
    follower.restore(leader.snapshot())  # InstallSnapshot at index 2
    entry3 = encode_command(Connect(endpoint_id="c2", network="blue", host="h2"))
    assert leader.apply(3, entry3) == follower.apply(3, entry3)
    assert decode_result(results[1]).ip == "10.1.0.2"
    assert follower.state_hash() == leader.state_hash()

"""Every error a user can hit: its code, and that its message names the object and the fix.

Each case also checks that the rejected command changed nothing.
"""

from __future__ import annotations

import msgpack
import pytest

from meshd.state import (
    AddPolicy,
    CommandError,
    Connect,
    CreateNetwork,
    DeleteNetwork,
    Disconnect,
    ErrorCode,
    MarkHostStale,
    MoveEndpoint,
    NetworkState,
    PolicyKind,
    Qos,
    RemovePolicy,
    SetQos,
    UpdateNetwork,
)


def content(state: NetworkState) -> dict:
    """The snapshot without the applied index (which a rejected command still consumes)."""
    doc = msgpack.unpackb(state.snapshot(), raw=False, strict_map_key=False)
    del doc["last_index"]
    return doc


@pytest.fixture
def state() -> NetworkState:
    s = NetworkState()
    setup = [
        CreateNetwork(name="blue", tenant="acme", subnet="10.1.0.0/24", vni=100),
        CreateNetwork(name="red", tenant="acme", subnet="10.2.0.0/30"),
        Connect(endpoint_id="c1", network="blue", host="h1", mac="04:00:00:00:00:01"),
        Connect(endpoint_id="c2", network="red", host="h2"),  # red (/30) is now full: 4 addresses - 3 reserved
        AddPolicy(kind=PolicyKind.DENY_ONE_WAY, network="blue", peer="red", policy_id="no-blue-to-red"),
    ]
    for i, cmd in enumerate(setup, 1):
        assert not isinstance(s.execute(cmd, i), CommandError), cmd
    return s


CASES = [
    # (command, code, words the message must contain)
    (
        CreateNetwork(name="x", tenant="acme", subnet="10.9.0.0"),
        ErrorCode.INVALID_CIDR,
        ["'x'", "no prefix length", "10.9.0.0/24"],
    ),
    (
        CreateNetwork(name="x", tenant="acme", subnet="10.9.0.0/33"),
        ErrorCode.INVALID_CIDR,
        ["'x'", "not a valid IPv4 CIDR"],
    ),
    (
        CreateNetwork(name="x", tenant="acme", subnet="10.9.0.1/24"),
        ErrorCode.INVALID_CIDR,
        ["host bits", "did you mean 10.9.0.0/24"],
    ),
    (
        CreateNetwork(name="x", tenant="acme", subnet="banana/24"),
        ErrorCode.INVALID_CIDR,
        ["'banana/24'", "not a valid IPv4 CIDR"],
    ),
    (CreateNetwork(name="x", tenant="acme", subnet="10.9.0.0/31"), ErrorCode.INVALID_CIDR, ["/31", "use /8 to /30"]),
    (
        CreateNetwork(name="x", tenant="acme", subnet="fd00::/64"),
        ErrorCode.IPV6_UNSUPPORTED,
        ["subnet of network 'x'", "IPv4 only"],
    ),
    (
        CreateNetwork(name="x", tenant="acme", subnet="10.9.0.0/24", gateway="10.8.0.1"),
        ErrorCode.GATEWAY_OUTSIDE_SUBNET,
        ["gateway 10.8.0.1", "'x'", "outside its subnet 10.9.0.0/24", "omit it to use 10.9.0.1"],
    ),
    (
        CreateNetwork(name="x", tenant="acme", subnet="10.9.0.0/24", gateway="10.9.0.255"),
        ErrorCode.GATEWAY_RESERVED,
        ["broadcast address", "e.g. 10.9.0.1"],
    ),
    (
        CreateNetwork(name="x", tenant="acme", subnet="10.9.0.0/24", gateway="fe80::1"),
        ErrorCode.IPV6_UNSUPPORTED,
        ["gateway", "IPv4"],
    ),
    (
        CreateNetwork(name="x", tenant="acme", subnet="10.9.0.0/24", gateway="10.9.0"),
        ErrorCode.INVALID_IP,
        ["gateway of network 'x'"],
    ),
    (
        CreateNetwork(name="x", tenant="acme", subnet="10.1.0.128/25"),
        ErrorCode.SUBNET_OVERLAP,
        ["10.1.0.128/25", "'x'", "overlaps network 'blue' (10.1.0.0/24)", "tenant 'acme'", "disjoint"],
    ),
    (
        CreateNetwork(name="x", tenant="acme", subnet="10.9.0.0/24", vni=0),
        ErrorCode.VNI_OUT_OF_RANGE,
        ["VNI 0", "1..16777215"],
    ),
    (
        CreateNetwork(name="x", tenant="acme", subnet="10.9.0.0/24", vni=1 << 24),
        ErrorCode.VNI_OUT_OF_RANGE,
        ["16777216", "omit it"],
    ),
    (
        CreateNetwork(name="x", tenant="acme", subnet="10.9.0.0/24", vni=100),
        ErrorCode.VNI_TAKEN,
        ["VNI 100", "'x'", "already used by network 'blue'", "pick another VNI"],
    ),
    (
        CreateNetwork(name="blue", tenant="other", subnet="10.9.0.0/24"),
        ErrorCode.DUPLICATE_NETWORK,
        ["'blue' already exists", "tenant 'acme'", "pick another name"],
    ),
    (
        CreateNetwork(name="bad name", tenant="acme", subnet="10.9.0.0/24"),
        ErrorCode.INVALID_FIELD,
        ["'bad name'", "1-64 letters"],
    ),
    (
        CreateNetwork(name="x", tenant="acme", subnet="10.9.0.0/24", mtu=20),
        ErrorCode.INVALID_FIELD,
        ["MTU of network 'x'", "68..9000"],
    ),
    (
        CreateNetwork(name="x", tenant="acme", subnet="10.9.0.0/24", mode="bridged"),
        ErrorCode.INVALID_FIELD,
        ["'bridged'", "is unknown", "vxlan, routed, flat, dhcp, vlan"],
    ),
    (
        CreateNetwork(name="x", tenant="acme", subnet="10.9.0.0/24", mode="flat", options={"vni": "3"}),
        ErrorCode.INVALID_FIELD,
        ["option 'vni'", "'x'", "mode flat takes parent, macvlan_mode, ip_range"],
    ),
    (
        CreateNetwork(name="x", tenant="acme", subnet="10.9.0.0/24", options={"parent": "eth0"}),
        ErrorCode.INVALID_FIELD,
        ["option 'parent'", "mode vxlan takes ip_range"],
    ),
    (
        CreateNetwork(name="x", tenant="acme", subnet="10.9.0.0/24", mode="flat", options={"parent": "eth0;rm"}),
        ErrorCode.INVALID_FIELD,
        ["parent 'eth0;rm'", "'x'", "interface name"],
    ),
    (
        CreateNetwork(name="x", tenant="acme", subnet="10.9.0.0/24", mode="flat", options={"macvlan_mode": "vepa"}),
        ErrorCode.INVALID_FIELD,
        ["macvlan_mode 'vepa'", "bridge or private"],
    ),
    (
        CreateNetwork(name="x", tenant="acme", subnet="10.9.0.0/24", mode="flat", options={"ip_range": "10.8.0.0/25"}),
        ErrorCode.INVALID_FIELD,
        ["ip_range 10.8.0.0/25", "'x'", "not inside its subnet"],
    ),
    (
        CreateNetwork(name="x", tenant="acme", subnet="10.9.0.0/24", options={"ip_range": "10.9.0.1/25"}),
        ErrorCode.INVALID_CIDR,
        ["ip_range '10.9.0.1/25'", "'x'", "IPv4 CIDR"],
    ),
    (
        CreateNetwork(name="x", tenant="acme", subnet="10.9.0.0/24", mode="flat", egress_kbit=1000),
        ErrorCode.INVALID_FIELD,
        ["egress_kbit of network 'x'", "flat", "QoS"],
    ),
    (
        CreateNetwork(name="x", tenant="acme", subnet="10.9.0.0/24", mode="flat", external=True),
        ErrorCode.INVALID_FIELD,
        ["external access of network 'x'", "flat", "drop external"],
    ),
    (
        CreateNetwork(name="x", tenant="acme", subnet="10.9.0.0/24", mode="ovs"),
        ErrorCode.INVALID_FIELD,
        ["'ovs'", "use one of vxlan"],
    ),
    (
        Connect(endpoint_id="c9", network="green", host="h1"),
        ErrorCode.UNKNOWN_NETWORK,
        ["'green' does not exist", "known: blue, red"],
    ),
    (DeleteNetwork(name="green"), ErrorCode.UNKNOWN_NETWORK, ["'green'", "create it first"]),
    (
        DeleteNetwork(name="blue"),
        ErrorCode.NETWORK_IN_USE,
        ["'blue' still has 1 endpoint", "'c1' on host 'h1'", "delete with force"],
    ),
    (
        Connect(endpoint_id="c9", network="blue", host="h1", ip="10.1.0.300"),
        ErrorCode.INVALID_IP,
        ["'10.1.0.300'", "'c9'"],
    ),
    (
        Connect(endpoint_id="c9", network="blue", host="h1", ip="fd00::5"),
        ErrorCode.IPV6_UNSUPPORTED,
        ["'c9'", "IPv4 only"],
    ),
    (
        Connect(endpoint_id="c9", network="blue", host="h1", ip="10.7.0.5"),
        ErrorCode.IP_OUTSIDE_SUBNET,
        ["10.7.0.5", "'c9'", "outside network 'blue' (10.1.0.0/24)", "omit the IP"],
    ),
    (
        Connect(endpoint_id="c9", network="blue", host="h1", ip="10.1.0.0"),
        ErrorCode.IP_RESERVED,
        ["the network address", "'blue'"],
    ),
    (
        Connect(endpoint_id="c9", network="blue", host="h1", ip="10.1.0.1"),
        ErrorCode.IP_RESERVED,
        ["10.1.0.1", "the gateway"],
    ),
    (
        Connect(endpoint_id="c9", network="blue", host="h1", ip="10.1.0.255"),
        ErrorCode.IP_RESERVED,
        ["the broadcast address"],
    ),
    (
        Connect(endpoint_id="c9", network="blue", host="h1", ip="10.1.0.2"),
        ErrorCode.IP_TAKEN,
        ["10.1.0.2", "'c9'", "already used by 'c1'", "omit the IP to get a free one"],
    ),
    (
        Connect(endpoint_id="c9", network="red", host="h2"),
        ErrorCode.POOL_EXHAUSTED,
        ["'red' (10.2.0.0/30)", "no free address left for 'c9'", "larger network"],
    ),
    (
        Connect(endpoint_id="c9", network="blue", host="h1", mac="04:00:00:00:00"),
        ErrorCode.INVALID_MAC,
        ["'c9'", "not a MAC address"],
    ),
    (
        Connect(endpoint_id="c9", network="blue", host="h1", mac="01:00:5e:00:00:01"),
        ErrorCode.INVALID_MAC,
        ["multicast"],
    ),
    (
        Connect(endpoint_id="c9", network="blue", host="h1", mac="02:6d:0a:01:00:09"),
        ErrorCode.INVALID_MAC,
        ["prefix 02:6d", "omit the MAC"],
    ),
    (
        Connect(endpoint_id="c9", network="blue", host="h1", mac="04:00:00:00:00:01"),
        ErrorCode.MAC_TAKEN,
        ["04:00:00:00:00:01", "already used by 'c1'", "'blue'"],
    ),
    (
        Connect(endpoint_id="c1", network="blue", host="h1", ip="10.1.0.9"),
        ErrorCode.ALREADY_CONNECTED,
        ["'c1' is already connected to network 'blue' on host 'h1' with IP 10.1.0.2", "disconnect it first"],
    ),
    (
        Connect(endpoint_id="c1", network="red", host="h2"),
        ErrorCode.HOST_MISMATCH,
        ["'c1' runs on host 'h1'", "not 'h2'", "connect it on 'h1', or move it first"],
    ),
    (
        Connect(endpoint_id="c9", network="blue", host="bad host"),
        ErrorCode.INVALID_FIELD,
        ["host of endpoint 'c9'", "without spaces"],
    ),
    (Connect(endpoint_id="", network="blue", host="h1"), ErrorCode.INVALID_FIELD, ["endpoint id ''"]),
    (
        Connect(endpoint_id="c9", network="blue", host="h1", qos=Qos(rate_kbit=1000)),
        ErrorCode.INVALID_FIELD,
        ["QoS of endpoint 'c9'", "without burst_bytes"],
    ),
    (
        Connect(endpoint_id="c9", network="blue", host="h1", qos=Qos(-1, 0, 0)),
        ErrorCode.INVALID_FIELD,
        ["rate_kbit of endpoint 'c9'"],
    ),
    (
        Disconnect(endpoint_id="c9", network="blue"),
        ErrorCode.UNKNOWN_ENDPOINT,
        ["'c9' is not connected to network 'blue'"],
    ),
    (
        Disconnect(endpoint_id="c1", network="red"),
        ErrorCode.UNKNOWN_ENDPOINT,
        ["'c1' is not connected to network 'red'", "it is in 'blue'"],
    ),
    (MoveEndpoint(endpoint_id="c9", host="h2"), ErrorCode.UNKNOWN_ENDPOINT, ["'c9' is not connected to any network"]),
    (SetQos(endpoint_id="c9", network="blue", qos=Qos()), ErrorCode.UNKNOWN_ENDPOINT, ["'c9'"]),
    (UpdateNetwork(name="blue", mtu=100_000), ErrorCode.INVALID_FIELD, ["MTU of network 'blue'"]),
    (UpdateNetwork(name="blue", labels={"": "x"}), ErrorCode.INVALID_FIELD, ["labels of network 'blue'"]),
    (RemovePolicy(policy_id="nope"), ErrorCode.UNKNOWN_POLICY, ["'nope' does not exist", "known: no-blue-to-red"]),
    (
        AddPolicy(kind=PolicyKind.DENY_ONE_WAY, network="blue", peer="red"),
        ErrorCode.DUPLICATE_POLICY,
        ["already exists as 'no-blue-to-red'"],
    ),
    (
        AddPolicy(kind=PolicyKind.ISOLATE_WITHIN, network="blue", policy_id="no-blue-to-red"),
        ErrorCode.DUPLICATE_POLICY,
        ["id"],
    ),
    (
        AddPolicy(kind=PolicyKind.DENY_BOTH, network="blue"),
        ErrorCode.INVALID_POLICY,
        ["deny-both", "needs a peer network"],
    ),
    (
        AddPolicy(kind=PolicyKind.DENY_ALL, network="blue", peer="red"),
        ErrorCode.INVALID_POLICY,
        ["one network", "drop peer 'red'"],
    ),
    (
        AddPolicy(kind=PolicyKind.DENY_BOTH, network="blue", peer="blue"),
        ErrorCode.INVALID_POLICY,
        ["to itself", "isolate-within"],
    ),
    (
        AddPolicy(kind="allow-all", network="blue"),
        ErrorCode.INVALID_POLICY,
        ["'allow-all' is unknown", "isolate-within"],
    ),
    (AddPolicy(kind=PolicyKind.DENY_BOTH, network="blue", peer="green"), ErrorCode.UNKNOWN_NETWORK, ["'green'"]),
]


#: refusals that concern a flat network: run on the state above plus network "lan"
LAN_CASES = [
    (
        CreateNetwork(name="x", tenant="other", subnet="10.50.0.128/25", mode="flat"),
        ErrorCode.SUBNET_OVERLAP,
        ["10.50.0.128/25", "'x'", "flat network 'lan'", "tenant 'acme'", "disjoint", "need mode vxlan"],
    ),
    (
        Connect(endpoint_id="f2", network="lan", host="h1"),
        ErrorCode.POOL_EXHAUSTED,
        ["'lan'", "ip_range 10.50.0.0/30", "explicit ip"],
    ),
    (
        UpdateNetwork(name="lan", egress_kbit=10),
        ErrorCode.INVALID_FIELD,
        ["egress_kbit of network 'lan'", "flat"],
    ),
    (
        AddPolicy(kind=PolicyKind.ISOLATE_WITHIN, network="lan"),
        ErrorCode.INVALID_POLICY,
        ["'lan'", "flat (macvlan)", "macvlan_mode=private"],
    ),
    (
        AddPolicy(kind=PolicyKind.DENY_BOTH, network="blue", peer="lan"),
        ErrorCode.INVALID_POLICY,
        ["'lan'", "flat (macvlan)"],
    ),
]


@pytest.fixture
def lan_state(state: NetworkState) -> NetworkState:
    for i, cmd in enumerate([
        CreateNetwork(name="lan", tenant="acme", subnet="10.50.0.0/24", mode="flat",
                      options={"ip_range": "10.50.0.0/30"}),
        # lan's ip_range 10.50.0.0/30 holds .2 and .3 (.0 is the subnet's network address, .1 its gateway)
        Connect(endpoint_id="f1", network="lan", host="h1"),
        Connect(endpoint_id="f1b", network="lan", host="h2"),
    ], 50):
        assert not isinstance(state.execute(cmd, i), CommandError), cmd
    return state


@pytest.mark.parametrize(("command", "code", "words"), LAN_CASES, ids=lambda x: getattr(x, "name", None))
def test_flat_network_refusals_name_the_network_and_the_fix(lan_state, command, code, words):
    test_rejected_command_has_a_clear_message_and_changes_nothing(lan_state, command, code, words)


@pytest.mark.parametrize(("command", "code", "words"), CASES, ids=lambda x: getattr(x, "name", None))
def test_rejected_command_has_a_clear_message_and_changes_nothing(state, command, code, words):
    before = content(state)
    result = state.execute(command, 100)
    assert isinstance(result, CommandError), result
    assert result.code == code, result.message
    for word in words:
        assert word in result.message, f"{word!r} not in {result.message!r}"
    assert content(state) == before
    assert state.last_index == 100


def test_every_error_code_is_exercised():
    covered = {code for _, code, _ in CASES} | {
        ErrorCode.BAD_COMMAND,  # test_state_machine: undecodable log entries
        ErrorCode.STALE_INDEX,  # below
        ErrorCode.HOST_STALE,  # below
        ErrorCode.VNI_EXHAUSTED,  # below
        ErrorCode.UNKNOWN_SERVICE,  # test_state_services
    }
    assert covered == set(ErrorCode)


def test_stale_index_is_refused_and_changes_nothing(state):
    before = state.snapshot()
    result = state.execute(Connect(endpoint_id="c9", network="blue", host="h1"), 3)
    assert result.code == ErrorCode.STALE_INDEX
    assert "log index 3 is not after the last applied index 5" in result.message
    assert state.snapshot() == before


def test_stale_host_refuses_new_endpoints_until_cleared(state):
    state.execute(MarkHostStale(host="h1"), 6)
    result = state.execute(Connect(endpoint_id="c9", network="blue", host="h1"), 7)
    assert result.code == ErrorCode.HOST_STALE
    assert "host 'h1' is marked stale" in result.message and "clear the mark" in result.message
    result = state.execute(MoveEndpoint(endpoint_id="c2", host="h1"), 8)
    assert result.code == ErrorCode.HOST_STALE and "before moving 'c2' there" in result.message
    state.execute(MarkHostStale(host="h1", stale=False), 9)
    assert not isinstance(state.execute(Connect(endpoint_id="c9", network="blue", host="h1"), 10), CommandError)


def test_vni_exhaustion_names_the_network(state, monkeypatch):
    # filling 16M VNIs for real takes a 16M-network state; exhaust the vector directly instead
    vnis = state._vnis
    monkeypatch.setattr(vnis, "count", vnis.size)
    result = state.execute(CreateNetwork(name="x", tenant="acme", subnet="10.9.0.0/24"), 6)
    assert result.code == ErrorCode.VNI_EXHAUSTED
    assert "no free VNI is left for network 'x'" in result.message

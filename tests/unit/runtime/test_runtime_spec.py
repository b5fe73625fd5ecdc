"""parse_spec: labels and seed-002 environment → typed connect requests, or a SpecError that says the fix."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshd.runtime import ContainerInfo, Source, SpecError, parse_spec
from meshd.state import Connect, Qos, default_burst_bytes

CID = "3f2a" + "0" * 60


def info(labels: dict[str, str] | None = None, env: dict[str, str] | None = None, mode: str = "none") -> ContainerInfo:
    return ContainerInfo(CID, "web", 4242, True, labels=labels or {}, env=env or {}, status="running",
                         network_mode=mode)  # fmt: skip


def error_of(labels: dict[str, str] | None = None, env: dict[str, str] | None = None, mode: str = "none") -> SpecError:
    with pytest.raises(SpecError) as exc:
        parse_spec(info(labels, env, mode))
    assert exc.value.container == f"web ({CID[:12]})"
    assert str(exc.value).startswith(f"container web ({CID[:12]}): ")
    return exc.value


# --- containers meshd leaves alone ---------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "env"),
    [
        ({}, {}),
        ({"com.example": "x", "meshd.lab.prefix": "lab1", "meshd.lab.host": "h1"}, {"PATH": "/bin"}),
        ({}, {"TYPE": "production"}),  # an unrelated TYPE variable
        ({}, {"IP": "10.0.0.1", "RATE": "5"}),  # seed variables without TYPE
    ],
)
def test_containers_without_meshd_requests_are_unmanaged(labels: dict[str, str], env: dict[str, str]) -> None:
    spec = parse_spec(info(labels, env))
    assert spec.source is Source.NONE and spec.requests == () and not spec.managed
    assert (spec.container_id, spec.container_name, spec.pid) == (CID, "web", 4242)


# --- labels -------------------------------------------------------------------------------


def test_one_network_with_every_label() -> None:
    spec = parse_spec(info({"meshd.network": "red", "meshd.ip": "10.1.0.5", "meshd.mac": "02:6D:0A:01:00:05",
                            "meshd.rate_kbit": "500", "meshd.burst_bytes": "8000",
                            "meshd.latency_ms": "25"}))
    (req,) = spec.requests
    assert spec.source is Source.LABELS and spec.networks == ("red",)
    assert (req.container_id, req.container_name, req.pid, req.network) == (CID, "web", 4242, "red")
    assert (req.ip, req.prefix_len, req.mac) == ("10.1.0.5", None, "02:6d:0a:01:00:05")
    assert req.qos == Qos(500, 8000, 25)
    assert req.to_connect("h1") == Connect(endpoint_id=CID, network="red", host="h1", ip="10.1.0.5",
                                           mac="02:6d:0a:01:00:05", qos=Qos(500, 8000, 25), name="web")


def test_bare_network_label_lets_the_state_allocate() -> None:
    (req,) = parse_spec(info({"meshd.network": " red "})).requests
    assert (req.network, req.ip, req.mac, req.qos) == ("red", None, None, Qos())


def test_several_networks_with_shared_qos_and_per_network_overrides() -> None:
    spec = parse_spec(info({"meshd.network": "red, blue,a.b", "meshd.rate_kbit": "1000",
                            "meshd.ip.blue": "10.2.0.9", "meshd.rate_kbit.a.b": "64",
                            "meshd.mac.red": "02:00:00:00:00:01"}))
    red, blue, ab = spec.requests
    assert spec.networks == ("red", "blue", "a.b")
    assert (red.ip, red.mac, red.rate_kbit) == (None, "02:00:00:00:00:01", 1000)
    assert (blue.ip, blue.mac, blue.rate_kbit) == ("10.2.0.9", None, 1000)
    assert (ab.ip, ab.rate_kbit) == (None, 64)


def test_rate_alone_gets_default_burst_and_latency() -> None:
    (req,) = parse_spec(info({"meshd.network": "red", "meshd.rate_kbit": "100000"})).requests
    assert req.qos == Qos(100000, default_burst_bytes(100000), 50)
    assert default_burst_bytes(500) == 32768  # floor
    assert default_burst_bytes(100_000_000) == 125_000_000  # 10 ms at 100 Gbit/s


def test_ip_label_with_prefix_is_kept() -> None:
    (req,) = parse_spec(info({"meshd.network": "red", "meshd.ip": "10.1.0.5/16"})).requests
    assert (req.ip, req.prefix_len) == ("10.1.0.5", 16)


@pytest.mark.parametrize(
    ("labels", "key", "value", "words"),
    [
        ({"meshd.network": ""}, "meshd.network", "", "invalid network name"),
        ({"meshd.network": "red,,blue"}, "meshd.network", "red,,blue", "invalid network name"),
        ({"meshd.network": "-red"}, "meshd.network", "-red", "invalid network name"),
        ({"meshd.network": "red,red"}, "meshd.network", "red,red", "twice"),
        ({"meshd.network": "red", "meshd.ip": "10.1.0.256"}, "meshd.ip", "10.1.0.256", "not an IPv4 address"),
        ({"meshd.network": "red", "meshd.ip": "fd00::5"}, "meshd.ip", "fd00::5", "not an IPv4 address"),
        ({"meshd.network": "red", "meshd.ip": "224.0.0.5"}, "meshd.ip", "224.0.0.5", "not a unicast host"),
        ({"meshd.network": "red", "meshd.ip": "127.0.0.1"}, "meshd.ip", "127.0.0.1", "not a unicast host"),
        ({"meshd.network": "red", "meshd.ip": "10.1.0.0/24"}, "meshd.ip", "10.1.0.0/24", "network or broadcast"),
        ({"meshd.network": "red", "meshd.ip": "10.1.0.255/24"}, "meshd.ip", "10.1.0.255/24", "network or broadcast"),
        ({"meshd.network": "red", "meshd.mac": "02:6d:0a:01:00"}, "meshd.mac", "02:6d:0a:01:00", "not a MAC"),
        ({"meshd.network": "red", "meshd.mac": "01:00:5e:00:00:01"}, "meshd.mac", "01:00:5e:00:00:01", "multicast"),
        ({"meshd.network": "red", "meshd.mac": "00:00:00:00:00:00"}, "meshd.mac", "00:00:00:00:00:00", "zero MAC"),
        ({"meshd.network": "red", "meshd.rate_kbit": "fast"}, "meshd.rate_kbit", "fast", "whole number of kbit/s"),
        ({"meshd.network": "red", "meshd.rate_kbit": "0"}, "meshd.rate_kbit", "0", "in 1..100000000"),
        ({"meshd.network": "red", "meshd.rate_kbit": "-5"}, "meshd.rate_kbit", "-5", "whole number"),
        ({"meshd.network": "red", "meshd.rate_kbit": "100000001"}, "meshd.rate_kbit", "100000001", "1..100000000"),
        ({"meshd.network": "red", "meshd.rate_kbit": "1", "meshd.burst_bytes": "4294967296"},
         "meshd.burst_bytes", "4294967296", "whole number of bytes"),
        ({"meshd.network": "red", "meshd.rate_kbit": "1", "meshd.latency_ms": "60001"},
         "meshd.latency_ms", "60001", "whole number of ms"),
        ({"meshd.network": "red", "meshd.burst_bytes": "9000"}, "meshd.burst_bytes", "9000",
         "set without meshd.rate_kbit"),
        ({"meshd.network": "red", "meshd.latency_ms": "9"}, "meshd.latency_ms", "9", "set without meshd.rate_kbit"),
        ({"meshd.ip": "10.1.0.5"}, "meshd.ip", "10.1.0.5", "meshd.network is missing"),
        ({"meshd.netwrok": "red"}, "meshd.netwrok", "red", "not a meshd label"),
        ({"meshd.network": "red", "meshd.rate": "5"}, "meshd.rate", "5", "not a meshd label"),
        ({"meshd.network": "red", "meshd.latency": "5"}, "meshd.latency", "5", "not a meshd label"),
        ({"meshd.network": "red", "meshd.network.blue": "x"}, "meshd.network.blue", "x", "not a meshd label"),
        ({"meshd.network": "red", "meshd.ip.blue": "10.2.0.9"}, "meshd.ip.blue", "10.2.0.9",
         "names network 'blue', which is not in meshd.network=red"),
        ({"meshd.network": "red,blue", "meshd.ip": "10.1.0.5"}, "meshd.ip", "10.1.0.5",
         "would apply to all of meshd.network=red,blue"),
        ({"meshd.network": "red,blue", "meshd.mac": "02:00:00:00:00:01"}, "meshd.mac", "02:00:00:00:00:01",
         "would apply to all"),
    ],
)  # fmt: skip
def test_bad_labels_name_the_label_and_the_fix(labels: dict[str, str], key: str, value: str, words: str) -> None:
    err = error_of(labels)
    assert (err.key, err.value) == (key, value)
    assert words in err.problem and err.fix
    assert f"{err.problem}: {err.fix}" in str(err)


def test_typo_hints_name_the_intended_label() -> None:
    assert "did you mean meshd.rate_kbit?" in error_of({"meshd.network": "red", "meshd.rate": "5"}).fix
    assert "did you mean meshd.network?" in error_of({"meshd.networks": "red"}).fix
    assert "meshd.network=red,blue" in error_of({"meshd.network": "red", "meshd.network.blue": "x"}).fix


@pytest.mark.parametrize("mode", ["host", "container:abc123"])
def test_shared_namespace_containers_are_refused(mode: str) -> None:
    err = error_of({"meshd.network": "red"}, mode=mode)
    assert err.key == "meshd.network" and f"--network {mode}" in err.problem and "--network none" in err.fix
    err = error_of(env={"TYPE": "vlan", "VLAN": "red"}, mode=mode)
    assert err.key == "env TYPE"
    assert not parse_spec(info(mode="host")).managed  # unmanaged: nothing to refuse


@pytest.mark.parametrize("mode", ["none", "bridge", "default", "mynet"])
def test_own_namespace_modes_are_accepted(mode: str) -> None:
    assert parse_spec(info({"meshd.network": "red"}, mode=mode)).managed


# --- seed-002 environment -----------------------------------------------------------------


def test_seed_vlan_example() -> None:
    """Seed 002 §6.1: docker run -e TYPE=vlan -e VLAN=test1 …"""
    spec = parse_spec(info(env={"TYPE": "vlan", "VLAN": "test1"}))
    (req,) = spec.requests
    assert spec.source is Source.ENV and req.source is Source.ENV
    assert (req.network, req.seed_type, req.ip, req.gateway, req.qos) == ("test1", "vlan", None, None, Qos())


def test_seed_flat_example_with_rate() -> None:
    """Seed 002 §6.1.5: TYPE=Flat HOSTIF=eth0 IP=192.168.0.100/24 GW=192.168.0.1 RATE=500 (+ meshd's NETWORK)."""
    env = {"TYPE": "Flat", "HOSTIF": "eth0", "IP": "192.168.0.100/24", "GW": "192.168.0.1", "RATE": "500",
           "NETWORK": "lan", "DISCOVER": "true", "PORT": "8000"}  # fmt: skip
    (req,) = parse_spec(info(env=env)).requests
    assert (req.network, req.seed_type) == ("lan", "flat")
    assert (req.ip, req.prefix_len, req.gateway) == ("192.168.0.100", 24, "192.168.0.1")
    assert req.qos == Qos(500, default_burst_bytes(500), 50)


@pytest.mark.parametrize(("burst_key"), ["BURST", "BRUST"])
def test_seed_qos_units_and_burst_spellings(burst_key: str) -> None:
    env = {"TYPE": "VLAN", "VLANID": "t2", "RATE": "2000", burst_key: "16000", "LATENCY": "80"}
    (req,) = parse_spec(info(env=env)).requests
    assert (req.network, req.rate_kbit, req.burst_bytes, req.latency_ms) == ("t2", 2000, 16000, 80)


def test_labels_win_over_environment() -> None:
    spec = parse_spec(info({"meshd.network": "red"}, {"TYPE": "vlan", "VLAN": "test1", "IP": "bogus"}))
    assert spec.source is Source.LABELS and spec.networks == ("red",)


def test_dhcp_type_takes_no_address() -> None:
    (req,) = parse_spec(info(env={"TYPE": "dhcp", "HOSTIF": "eth0", "NETWORK": "lan"})).requests
    assert (req.seed_type, req.ip) == ("dhcp", None)


@pytest.mark.parametrize(
    ("env", "key", "words"),
    [
        ({"TYPE": "vlna", "VLAN": "t1"}, "env TYPE", "not a seed-002 network type"),
        ({"TYPE": "bridge", "HOSTIF": "eth0"}, "env TYPE", "not a seed-002 network type"),
        ({"TYPE": "vlan"}, "env TYPE", "names no meshd network"),
        ({"TYPE": "flat", "IP": "10.0.0.5/24"}, "env TYPE", "names no meshd network"),
        ({"TYPE": "vlan", "VLAN": "a", "VLANID": "b"}, "env VLANID", "disagrees with VLAN='a'"),
        ({"TYPE": "vlan", "VLAN": "a,b"}, "env VLAN", "lists several networks"),
        ({"TYPE": "vlan", "VLAN": "bad name"}, "env VLAN", "invalid network name"),
        ({"TYPE": "flat", "NETWORK": "lan"}, "env IP", "TYPE=flat uses a static address"),
        ({"TYPE": "dhcp", "NETWORK": "lan", "IP": "10.0.0.5"}, "env IP", "takes its address from DHCP"),
        ({"TYPE": "vlan", "VLAN": "t", "IP": "10.0.0.5/24", "GW": "10.0.1.1"}, "env GW", "not another address"),
        ({"TYPE": "vlan", "VLAN": "t", "IP": "10.0.0.5/24", "GW": "10.0.0.5"}, "env GW", "not another address"),
        ({"TYPE": "vlan", "VLAN": "t", "GW": "10.0.0.1/24"}, "env GW", "has a prefix length"),
        ({"TYPE": "vlan", "VLAN": "t", "GW": "gateway"}, "env GW", "not an IPv4 address"),
        ({"TYPE": "vlan", "VLAN": "t", "RATE": "500kbit"}, "env RATE", "whole number of kbit/s"),
        ({"TYPE": "vlan", "VLAN": "t", "BURST": "100"}, "env BURST", "set without env RATE"),
        ({"TYPE": "vlan", "VLAN": "t", "RATE": "5", "BURST": "1", "BRUST": "2"}, "env BRUST", "disagrees"),
        ({"TYPE": "vlan", "VLAN": "t", "LATENCY": "x", "RATE": "5"}, "env LATENCY", "whole number of ms"),
    ],
)  # fmt: skip
def test_bad_environment_names_the_variable_and_the_fix(env: dict[str, str], key: str, words: str) -> None:
    err = error_of(env=env)
    assert err.key == key and words in err.problem and err.fix


def test_gateway_without_prefix_is_only_checked_for_form() -> None:
    (req,) = parse_spec(info(env={"TYPE": "vlan", "VLAN": "t", "IP": "10.0.0.5", "GW": "10.9.9.1"})).requests
    assert (req.ip, req.prefix_len, req.gateway) == ("10.0.0.5", None, "10.9.9.1")


# --- anything a container can carry -------------------------------------------------------

_KEYS = st.sampled_from(
    ["meshd.network", "meshd.ip", "meshd.mac", "meshd.rate_kbit", "meshd.burst_bytes", "meshd.latency_ms",
     "meshd.ip.red", "meshd.rate_kbit.blue", "meshd.netwrok", "meshd.lab.x", "meshd.", "meshd..", "other"]
)  # fmt: skip
_ENV_KEYS = st.sampled_from(["TYPE", "IP", "GW", "VLAN", "VLANID", "NETWORK", "RATE", "BURST", "BRUST", "LATENCY",
                             "HOSTIF"])  # fmt: skip
_VALUES = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["red", "red,blue", "vlan", "flat", "dhcp", "10.1.0.5", "10.1.0.5/24", "10.1.0.1", "500",
                     "0", "02:00:00:00:00:01", " ", ",", "1e3", "٣"]),
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(_KEYS, _VALUES, max_size=6), st.dictionaries(_ENV_KEYS, _VALUES, max_size=7),
       st.sampled_from(["none", "host", "bridge"]))  # fmt: skip
def test_any_labels_give_a_spec_or_a_spec_error(labels: dict[str, str], env: dict[str, str], mode: str) -> None:
    try:
        spec = parse_spec(info(labels, env, mode))
    except SpecError as err:
        assert err.key and err.problem and err.fix and str(err).startswith("container web (")
        return
    for req in spec.requests:
        assert req.container_id == CID and req.pid == 4242
        if req.rate_kbit:
            assert req.burst_bytes > 0 and req.latency_ms > 0
        else:
            assert req.qos == Qos()
        req.to_connect("h1")  # a well-formed state command


# --- services (issue 17) ---------------------------------------------------------------------


def test_service_labels_and_seed_discover() -> None:
    from meshd.runtime import ServiceRequest

    spec = parse_spec(info({"meshd.network": "blue", "meshd.service": "Web", "meshd.port": "80",
                            "meshd.check": "tcp", "meshd.ttl": "9"}))
    assert spec.service == ServiceRequest("web", 80, "tcp", 9)
    assert parse_spec(info({"meshd.service": "api", "meshd.port": "81"})).service == ServiceRequest("api", 81)
    env = {"TYPE": "vlan", "VLAN": "t1", "DISCOVER": "true", "PORT": "8000"}
    assert parse_spec(info(env=env)).service == ServiceRequest("web", 8000)  # the container's name
    assert parse_spec(info(env={**env, "DISCOVER": "db"})).service == ServiceRequest("db", 8000)
    assert parse_spec(info(env={**env, "DISCOVER": "false"})).service is None


@pytest.mark.parametrize(
    ("labels", "env", "words"),
    [
        ({"meshd.service": "web"}, {}, "names a service but no port"),
        ({"meshd.service": "we_b", "meshd.port": "80"}, {}, "is not a DNS label"),
        ({"meshd.service": "web", "meshd.port": "0"}, {}, "1..65535"),
        ({"meshd.service": "web", "meshd.port": "80", "meshd.check": "http"}, {}, "is not a health check"),
        ({"meshd.port": "80"}, {}, "meshd.service is missing"),
        ({}, {"DISCOVER": "true"}, "no port"),
    ],
)
def test_bad_service_specs_name_the_fix(labels: dict[str, str], env: dict[str, str], words: str) -> None:
    assert words in str(error_of(labels, env))

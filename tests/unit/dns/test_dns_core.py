"""The resolver core: names, services, SRV, PTR, tenant isolation, health, malformed input."""

from __future__ import annotations

from dnslib import QTYPE, RCODE, DNSRecord
from hypothesis import given, settings
from hypothesis import strategies as st_

from meshd import state as st
from meshd.dns import answer, build_view


def _state() -> st.NetworkState:
    s = st.replay([
        st.CreateNetwork(name="blue", tenant="acme", subnet="10.1.0.0/24"),
        st.CreateNetwork(name="green", tenant="acme", subnet="10.3.0.0/24"),
        st.CreateNetwork(name="red", tenant="evil", subnet="10.2.0.0/24"),
        st.Connect(endpoint_id="aa01", network="blue", host="h1", name="web1"),
        st.Connect(endpoint_id="aa02", network="blue", host="h2", name="web_2"),
        st.Connect(endpoint_id="aa03", network="green", host="h1", name="db"),
        st.Connect(endpoint_id="bb01", network="red", host="h1", name="web1"),
        st.Connect(endpoint_id="bb02", network="red", host="h1", name="secret"),
    ])  # fmt: skip
    for cmd in (
        st.PublishService(name="web", network="blue", endpoint_id="aa01", port=80, ttl_s=3),
        st.PublishService(name="web", network="blue", endpoint_id="aa02", port=8080, weight=5),
        st.PublishService(name="web", network="red", endpoint_id="bb01", port=81),
        st.PublishService(name="vault", network="red", endpoint_id="bb02", port=82),
    ):
        assert not isinstance(s.execute(cmd, s.last_index + 1), st.CommandError)
    return s


LIVE = frozenset({"h1", "h2"})


def _ask(view: object, name: str, qtype: str = "A", turn: int = 0) -> DNSRecord:
    out = answer(view, DNSRecord.question(name, qtype).pack(), turn=turn)  # type: ignore[arg-type]
    assert out.reply is not None
    return DNSRecord.parse(out.reply)


def _view(network: str = "blue", live: frozenset[str] = LIVE, forward: bool = False) -> object:
    return build_view(_state(), network, live, domain="meshd", ttl_s=5, forward=forward)


def _ips(r: DNSRecord) -> list[str]:
    return [str(rr.rdata) for rr in r.rr if rr.rtype == QTYPE.A]


def test_container_names_in_own_tenant() -> None:
    v = _view()
    assert _ips(_ask(v, "web1.meshd")) == ["10.1.0.2"]
    assert _ips(_ask(v, "web1.blue.meshd.")) == ["10.1.0.2"]
    assert _ips(_ask(v, "web-2.meshd")) == ["10.1.0.3"]  # '_' is not a host-name character
    assert _ips(_ask(v, "db.meshd")) == ["10.3.0.2"]  # another network of the same tenant
    assert _ips(_ask(v, "DB.Green.Meshd")) == ["10.3.0.2"]


def test_another_tenants_names_are_nxdomain() -> None:
    v = _view()
    for name in ("secret.meshd", "secret.red.meshd", "vault.meshd", "_vault._tcp.meshd", "web1.red.meshd"):
        assert _ask(v, name).header.rcode == RCODE.NXDOMAIN, name
    r = _ask(v, "2.0.2.10.in-addr.arpa", "PTR")  # evil's web1
    assert r.header.rcode == RCODE.NXDOMAIN
    # the other tenant sees its own records under the same names
    red = _view("red")
    assert _ips(_ask(red, "web1.meshd")) == ["10.2.0.2"]
    assert sorted(_ips(_ask(red, "web.meshd"))) == ["10.2.0.2"]


def test_services_rotate_and_srv_carries_ports() -> None:
    v = _view()
    first = _ips(_ask(v, "web.meshd", turn=0))
    second = _ips(_ask(v, "web.meshd", turn=1))
    assert sorted(first) == ["10.1.0.2", "10.1.0.3"] and first != second
    r = _ask(v, "_web._tcp.meshd", "SRV")
    srv = sorted((rr.rdata.port, rr.rdata.weight, str(rr.rdata.target)) for rr in r.rr)
    assert srv == [(80, 1, "web1.blue.meshd."), (8080, 5, "web-2.blue.meshd.")]
    assert sorted(str(rr.rdata) for rr in r.ar) == ["10.1.0.2", "10.1.0.3"]
    assert [rr.ttl for rr in _ask(v, "web.blue.meshd").rr if str(rr.rdata) == "10.1.0.2"] == [3]


def test_ptr() -> None:
    r = _ask(_view(), "3.0.1.10.in-addr.arpa", "PTR")
    assert [str(rr.rdata) for rr in r.rr] == ["web-2.blue.meshd."]


def test_unhealthy_and_failed_host_entries_are_left_out() -> None:
    s = _state()
    s.execute(st.SetServiceHealth(name="web", network="blue", endpoint_id="aa01", healthy=False), s.last_index + 1)
    v = build_view(s, "blue", LIVE, domain="meshd", ttl_s=5, forward=False)
    assert _ips(_ask(v, "web.meshd")) == ["10.1.0.3"]
    v = build_view(s, "blue", frozenset({"h1"}), domain="meshd", ttl_s=5, forward=False)
    assert _ask(v, "web.meshd").header.rcode == RCODE.NXDOMAIN  # no healthy, live entry: gone
    assert _ask(v, "web-2.meshd").header.rcode == RCODE.NXDOMAIN


def test_outside_names_forward_only_when_allowed() -> None:
    q = DNSRecord.question("example.org", "A").pack()
    assert answer(_view(forward=True), q).forward
    out = answer(_view(forward=False), q)
    assert not out.forward and DNSRecord.parse(out.reply).header.rcode == RCODE.REFUSED
    bare = answer(_view(forward=True), DNSRecord.question("nosuch", "A").pack())
    assert not bare.forward and DNSRecord.parse(bare.reply).header.rcode == RCODE.NXDOMAIN
    assert answer(_view(forward=True), DNSRecord.question("1.1.168.192.in-addr.arpa", "PTR").pack()).forward


def test_malformed_input() -> None:
    v = _view()
    assert answer(v, b"").reply is None
    assert answer(v, b"\x00" * 5).reply is None
    out = answer(v, b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xff\xff")  # a label running off the end
    assert out.kind == "formerr" and out.reply is not None and out.reply[:2] == b"\x12\x34"
    response = DNSRecord.question("web.meshd").reply().pack()
    assert answer(v, response).reply is None  # never answer a response


@settings(max_examples=300, deadline=None)
@given(st_.binary(max_size=600))
def test_garbage_never_raises(data: bytes) -> None:
    out = answer(_view(), data)
    assert out.reply is None or len(out.reply) <= 4096

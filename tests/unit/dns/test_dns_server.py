"""The DNS server on loopback: answers, forwarding with a bound, malformed packets never stop it."""

from __future__ import annotations

import socket

import trio
from dnslib import RCODE, RR, DNSRecord

from meshd import state as st
from meshd.dns import DnsServer, build_view, open_socket, resolv_conf


def _view_of(forward: bool):
    s = st.replay([
        st.CreateNetwork(name="blue", tenant="acme", subnet="10.1.0.0/24"),
        st.Connect(endpoint_id="aa01", network="blue", host="h1", name="web1"),
    ])  # fmt: skip
    view = build_view(s, "blue", {"h1"}, domain="meshd", ttl_s=5, forward=forward)
    return lambda network: view


async def _query(port: int, data: bytes, timeout_s: float = 2.0) -> bytes | None:
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        await sock.sendto(data, ("127.0.0.1", port))
        with trio.move_on_after(timeout_s):
            return await sock.recv(4096)
    return None


async def _serve(nursery: trio.Nursery, server: DnsServer) -> int:
    raw = open_socket(None, "127.0.0.1", 0)
    port = raw.getsockname()[1]
    await nursery.start(server.serve, raw, "blue")
    return port


async def test_answers_and_survives_garbage() -> None:
    server = DnsServer(_view_of(False))
    async with trio.open_nursery() as nursery:
        port = await _serve(nursery, server)
        for junk in (b"", b"\xff" * 3, b"\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c", b"x" * 4000):
            await _query(port, junk, timeout_s=0.05)
        reply = await _query(port, DNSRecord.question("web1.meshd").pack())
        assert reply is not None
        assert [str(rr.rdata) for rr in DNSRecord.parse(reply).rr] == ["10.1.0.2"]
        assert server.status().counts["answered"] == 1
        assert server.status().counts["formerr"] >= 1
        nursery.cancel_scope.cancel()


async def test_forward_relays_the_upstream_answer_and_times_out() -> None:
    upstream = open_socket(None, "127.0.0.1", 0)
    up_port = upstream.getsockname()[1]
    tup = trio.socket.from_stdlib_socket(upstream)

    async def fake_resolver() -> None:
        while True:
            data, peer = await tup.recvfrom(4096)
            q = DNSRecord.parse(data)
            if str(q.q.qname).startswith("slow"):
                continue  # never answers: the server must give SERVFAIL after its timeout
            r = q.reply()
            r.add_answer(*RR.fromZone(f"{q.q.qname} 60 A 192.0.2.9"))
            await tup.sendto(r.pack(), peer)

    server = DnsServer(_view_of(True), forwarders=["127.0.0.1"], forward_timeout_s=0.3, max_forwards=4,
                       forward_port=up_port)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(fake_resolver)
            port = await _serve(nursery, server)
            reply = await _query(port, DNSRecord.question("example.org").pack())
            assert reply is not None and [str(rr.rdata) for rr in DNSRecord.parse(reply).rr] == ["192.0.2.9"]
            reply = await _query(port, DNSRecord.question("slow.example.org").pack())
            assert reply is not None and DNSRecord.parse(reply).header.rcode == RCODE.SERVFAIL
            await trio.sleep(0.05)
            assert server.status().forwards_in_flight == 0
            nursery.cancel_scope.cancel()
    finally:
        tup.close()


def test_resolv_conf_points_at_the_gateway() -> None:
    text = resolv_conf("10.1.0.1", "meshd")
    assert "nameserver 10.1.0.1\n" in text and "search meshd\n" in text

"""The web view's HTTP app (meshd.web) with a fake cluster source, over real loopback sockets:
routes, bad requests, 404/405, limits, the event stream and its bounded queues."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import h11
import pytest
import trio

from meshd import advisor
from meshd.web import AdviseQuery, EventHub, WebLimits, WebServer, parse_advise, static_files

CLUSTER = {"host": "h1", "hosts": [{"name": "h1", "state": "alive"}], "networks": [], "endpoints": [],
           "policies": [], "tunnels": [], "events": []}


class FakeSource:
    def __init__(self) -> None:
        self.cluster_map: dict[str, Any] = dict(CLUSTER)
        self.fits = True

    def cluster(self) -> dict[str, Any]:
        return self.cluster_map

    def rates(self) -> dict[str, Any]:
        return {"host": "h1", "endpoints": [{"endpoint_id": "e1", "network": "n", "rx_bps": 1.0, "tx_bps": 2.0}]}

    def advise(self, query: AdviseQuery) -> dict[str, Any]:
        if not self.fits:
            raise advisor.NoModelFits("no network model fits: both ruled out")
        advice = advisor.choose_mode(query.weights)
        return {**advice.as_map(), "command": advisor.create_command(advice.mode, query.tenant, query.subnet)}


@pytest.fixture
async def server() -> AsyncIterator[WebServer]:
    limits = WebLimits(max_connections=4, max_event_clients=2, max_request_bytes=2048, request_timeout_s=0.5,
                       send_timeout_s=2, event_queue=4, keepalive_s=0.3, snapshot_interval_s=0.01)
    srv = WebServer(FakeSource(), "127.0.0.1", 0, limits=limits, rates_interval_s=0.1, hosts=("Meshd.Example.org",))
    async with trio.open_nursery() as nursery:
        await nursery.start(srv.run)
        yield srv
        nursery.cancel_scope.cancel()


async def exchange(srv: WebServer, raw: bytes) -> bytes:
    """Send ``raw``, read until the server closes (or 2 s)."""
    stream = await trio.open_tcp_stream("127.0.0.1", srv.port)
    await stream.send_all(raw)
    out = b""
    with trio.move_on_after(2):
        while chunk := await stream.receive_some(65536):
            out += chunk
    await stream.aclose()
    return out


async def get(srv: WebServer, target: str, method: str = "GET", host: str = "127.0.0.1:9478"
              ) -> tuple[h11.Response, bytes]:
    """One request through an h11 client connection: (response, body)."""
    client = h11.Connection(h11.CLIENT)
    stream = await trio.open_tcp_stream("127.0.0.1", srv.port)
    await stream.send_all(client.send(h11.Request(method=method, target=target, headers=[("host", host)])))
    await stream.send_all(client.send(h11.EndOfMessage()))
    response, body = None, b""
    with trio.fail_after(5):
        while True:
            event = client.next_event()
            if event is h11.NEED_DATA:
                client.receive_data(await stream.receive_some(65536))
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
    await stream.aclose()
    assert response is not None
    return response, body


def header(response: h11.Response, name: bytes) -> bytes | None:
    return dict(response.headers).get(name)


async def test_page_static_files_and_cluster_json(server):
    response, body = await get(server, "/")
    assert response.status_code == 200 and b"<title>meshd</title>" in body
    assert header(response, b"content-type") == b"text/html; charset=utf-8"
    assert b"default-src 'self'" in header(response, b"content-security-policy")
    for name in ("app.js", "topology.js", "style.css"):
        response, body = await get(server, f"/static/{name}")
        assert response.status_code == 200 and body
    response, body = await get(server, "/api/cluster")
    assert response.status_code == 200 and json.loads(body) == CLUSTER
    assert header(response, b"cache-control") == b"no-store"


def test_static_files_come_from_the_installed_package():
    assert set(static_files()) >= {"index.html", "app.js", "topology.js", "style.css"}


async def test_only_ip_addresses_localhost_and_configured_names_are_answered(server):
    """A DNS-rebinding page reaches the view under its own name: refused, whatever the path."""
    for host in ("127.0.0.1:9478", "127.0.0.1", "[::1]:9478", "192.0.2.11", "localhost:9478", "LOCALHOST",
                 "meshd.example.org:443", "meshd.example.org"):
        response, _ = await get(server, "/api/cluster", host=host)
        assert response.status_code == 200, host
    for host in ("evil.example", "evil.example:9478", "127.0.0.1.evil.example", "localhost.evil.example"):
        for target in ("/", "/api/cluster", "/api/events"):
            response, body = await get(server, target, host=host)
            error = json.loads(body)["error"]
            assert response.status_code == 421 and "add the name to api.web_hosts" in error, (host, target)
    assert server.counters["421"] == 12


async def test_unknown_paths_are_404_and_other_methods_405(server):
    response, body = await get(server, "/static/../../etc/passwd")
    assert response.status_code == 404 and "nothing here" in json.loads(body)["error"]
    for method in ("POST", "PUT", "DELETE", "HEAD"):
        response, body = await get(server, "/api/cluster", method=method)
        assert response.status_code == 405 and header(response, b"allow") == b"GET"


async def test_keep_alive_serves_several_requests_on_one_connection(server):
    raw = b"GET /api/cluster HTTP/1.1\r\nhost: localhost\r\n\r\n" * 3
    out = await exchange(server, raw)
    assert out.count(b"HTTP/1.1 200") == 3


async def test_garbage_oversized_headers_and_bodies_are_refused(server):
    assert (await exchange(server, b"\x00\x01 garbage\r\n\r\n")).startswith(b"HTTP/1.1 400")
    huge = b"GET / HTTP/1.1\r\nhost: localhost\r\nx-pad: " + b"a" * 5000 + b"\r\n\r\n"
    assert (await exchange(server, huge)).startswith(b"HTTP/1.1 431")
    # a body is never read: answered, then the connection is closed
    out = await exchange(server, b"POST /api/cluster HTTP/1.1\r\nhost: localhost\r\ncontent-length: 100000\r\n\r\nabc")
    assert out.startswith(b"HTTP/1.1 405") and b"connection: close" in out.lower()


async def test_a_slow_or_silent_client_is_dropped_after_the_request_timeout(server):
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    await stream.send_all(b"GET / HTT")
    with trio.fail_after(3):
        out = b""
        while chunk := await stream.receive_some(4096):
            out += chunk
    assert out.startswith(b"HTTP/1.1 408")
    assert server.counters["timeout"] >= 1
    await stream.aclose()


async def test_connections_over_the_limit_get_503_and_the_server_keeps_serving(server):
    idle = [await trio.open_tcp_stream("127.0.0.1", server.port) for _ in range(4)]
    await trio.sleep(0.05)
    out = await exchange(server, b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 503")
    for s in idle:
        await s.aclose()
    await trio.sleep(0.05)
    response, _ = await get(server, "/api/cluster")
    assert response.status_code == 200


async def test_advise_answers_refuses_bad_needs_and_reports_no_fit(server):
    response, body = await get(server, "/api/advise?security=10&scale=0&throughput=0&extensibility=2&tenant=a"
                                       "&subnet=10.1.0.7/24")
    answer = json.loads(body)
    assert response.status_code == 200 and answer["mode"] == "vxlan"
    assert answer["command"] == "meshd network create NAME 10.1.0.0/24 --tenant a --mode vxlan"
    for query, fragment in (("security=6&scale=0&throughput=7", "extensibility is missing"),
                            ("security=11&scale=0&throughput=7&extensibility=2", "security='11'"),
                            ("security=6&scale=0&throughput=7&extensibility=2&subnet=nope", "not an IPv4 CIDR"),
                            ("security=" + "9" * 5000 + "&scale=0&throughput=7&extensibility=2", "whole number")):
        response, body = await get(server, "/api/advise?" + query)
        assert response.status_code in (400, 431), query
        if response.status_code == 400:
            assert fragment in json.loads(body)["error"]
    server.source.fits = False
    response, body = await get(server, "/api/advise?security=1&scale=1&throughput=1&extensibility=1")
    assert response.status_code == 409 and "no network model fits" in json.loads(body)["error"]


def test_parse_advise_reads_the_four_needs():
    q = parse_advise("security=6&scale=0&throughput=7&extensibility=2&l2_prefix=24")
    assert q.weights.values() == (6, 0, 7, 2) and q.l2_prefix == 24 and q.tenant is None


async def read_events(stream: trio.SocketStream, until: bytes, timeout_s: float = 3) -> bytes:
    out = b""
    with trio.fail_after(timeout_s):
        while until not in out:
            out += await stream.receive_some(65536)
    return out


async def test_event_stream_sends_a_snapshot_then_changes_events_and_rates(server):
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    await stream.send_all(b"GET /api/events HTTP/1.1\r\nhost: localhost\r\n\r\n")
    first = await read_events(stream, b"event: cluster")
    assert b"text/event-stream" in first
    server.source.cluster_map = {**CLUSTER, "host": "changed"}
    server.event({"time": 1.0, "kind": "network", "text": "network-created network=blue"})
    server.changed()
    out = await read_events(stream, b'"host":"changed"')
    out += await read_events(stream, b"event: rates")
    assert b"network-created network=blue" in out
    await stream.aclose()


async def test_event_streams_over_the_limit_get_503(server):
    streams = []
    for _ in range(2):
        s = await trio.open_tcp_stream("127.0.0.1", server.port)
        await s.send_all(b"GET /api/events HTTP/1.1\r\nhost: localhost\r\n\r\n")
        await read_events(s, b"event: cluster")
        streams.append(s)
    response, _ = await get(server, "/api/events")
    assert response.status_code == 503
    for s in streams:
        await s.aclose()


def test_a_slow_client_queue_drops_the_oldest_and_gets_a_resync_marker():
    hub = EventHub(queue_max=3)
    client = hub.join()
    for i in range(10):
        hub.publish("event", f"event: event\ndata: {i}\n\n".encode())
    hub.publish("cluster", b"event: cluster\ndata: 1\n\n")
    hub.publish("cluster", b"event: cluster\ndata: 2\n\n")
    taken = client.take()
    assert taken[0].startswith(b"event: resync")
    assert taken[1:] == [b"event: event\ndata: 9\n\n", b"event: cluster\ndata: 2\n\n"]  # the newest snapshot only
    assert hub.dropped == 9 and client.take() == []

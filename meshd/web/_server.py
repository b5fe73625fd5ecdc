"""The web view's HTTP/1.1 server: h11 over trio sockets, read-only, bounded.

Theory of operation
-------------------
One trio task per connection drives an ``h11.Connection`` as h11's
``examples/trio-server.py`` does: bytes in, events out, ``send_failed()``
when a send is cancelled; it holds no view logic.  Routes (all ``GET``;
any other method is answered 405):

===================  ==========================================================
``/``                the page (``static/index.html``)
``/static/NAME``     the page's script, styles (package data, read once)
``/api/cluster``     the whole cluster as this host's replica and members see it
``/api/advise``      the advisor (:class:`AdviseQuery`), within the cluster's constraints
``/api/events``      server-sent events: ``cluster`` snapshots, ``rates``, ``event``
===================  ==========================================================

Bounds (:class:`WebLimits`), so that no client can grow the agent's memory
or stall it: at most ``max_connections`` connections (more are answered 503
and closed) and ``max_event_clients`` of them streaming events; a request's
line and headers at most ``max_request_bytes`` (431); a request must arrive
within ``request_timeout_s`` (an idle keep-alive connection is closed then);
every send must finish within ``send_timeout_s``; a request with a body is
answered and the connection closed; an event client's queue is bounded (see
:mod:`._hub`).

Live updates: :meth:`WebServer.changed` marks the cluster changed; one task
builds at most one snapshot per ``snapshot_interval_s`` and queues it for
every event client.  :meth:`WebServer.event` queues one event of the
agent's stream; rates go out every ``rates_interval_s`` while anyone listens.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, Protocol

import h11
import trio

from meshd import __version__, advisor

from ._hub import EventHub, sse
from ._query import AdviseQuery, BadQuery, parse_advise

log = logging.getLogger("meshd.web")

_RECEIVE_BYTES = 4096
#: closing: how long and how much of a client's unread request to read before the socket is closed
_LINGER_S, _LINGER_BYTES = 0.5, 256 * 1024
_CONTENT_TYPES = {"html": "text/html; charset=utf-8", "js": "text/javascript; charset=utf-8",
                  "css": "text/css; charset=utf-8", "svg": "image/svg+xml"}
_SECURITY_HEADERS = [
    (b"cache-control", b"no-store"), (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                                 b"connect-src 'self'; frame-ancestors 'none'; form-action 'none'"),
]


class ClusterSource(Protocol):
    """What the web view reads; the agent implements it (``meshd/agent/_web.py``), tests fake it."""

    def cluster(self) -> Mapping[str, Any]:
        """The ``/api/cluster`` map (docs/web.md)."""

    def rates(self) -> Mapping[str, Any]:
        """The ``rates`` event: this host's endpoints' rates."""

    def advise(self, query: AdviseQuery) -> Mapping[str, Any]:
        """The advisor's answer.  Raises :class:`meshd.advisor.NoModelFits`."""


@dataclass(frozen=True, kw_only=True)
class WebLimits:
    """How much any client can make the web view hold or wait for (module docstring)."""

    max_connections: int = 32
    max_event_clients: int = 8
    max_request_bytes: int = 8192
    request_timeout_s: float = 10.0
    send_timeout_s: float = 10.0
    max_requests_per_connection: int = 100
    #: server-sent events queued per client before the oldest is dropped (and a resync sent)
    event_queue: int = 64
    #: a comment line on an idle event stream this often (proxies close silent streams)
    keepalive_s: float = 15.0
    #: at most one cluster snapshot per this long, however many changes
    snapshot_interval_s: float = 0.2


def static_files() -> dict[str, tuple[bytes, str]]:
    """``{name: (content, content type)}`` of the page's files, read from the installed package."""
    out = {}
    for item in resources.files("meshd.web").joinpath("static").iterdir():
        suffix = item.name.rsplit(".", 1)[-1]
        if item.is_file() and suffix in _CONTENT_TYPES:
            out[item.name] = (item.read_bytes(), _CONTENT_TYPES[suffix])
    return out


class WebServer:
    """The web view on ``address:port``: ``await nursery.start(server.run)``."""

    def __init__(self, source: ClusterSource, address: str, port: int, *, limits: WebLimits | None = None,
                 rates_interval_s: float = 2.0, hosts: tuple[str, ...] = ()) -> None:
        self.source = source
        #: host names answered besides IP addresses and localhost (``api.web_hosts``)
        self.hosts = frozenset(h.lower() for h in hosts) | {"localhost"}
        self.address = address
        self.port = port
        self.limits = limits or WebLimits()
        self.rates_interval_s = rates_interval_s
        self.hub = EventHub(self.limits.event_queue)
        self.files = static_files()
        #: requests by outcome (``200``, ``404``, ``busy``, ``timeout``, ...)
        self.counters: Counter[str] = Counter()
        self.connections = 0
        self._changed = trio.Event()

    def statistics(self) -> dict[str, int]:
        return {**self.counters, "connections": self.connections, "event_clients": len(self.hub),
                "events_dropped": self.hub.dropped}

    # --- what the agent calls (never blocks) ---------------------------------------------

    def changed(self) -> None:
        """The cluster changed: event clients get a new snapshot (coalesced)."""
        self._changed.set()

    def event(self, item: Mapping[str, Any]) -> None:
        """One event of the agent's stream (``time``, ``kind``, ``text``) for the event clients."""
        if len(self.hub):
            self.hub.publish("event", sse("event", dict(item)))

    # --- serving -------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(self.port, host=self.address)
        self.port = listeners[0].socket.getsockname()[1]
        log.info("web view listening address=%s port=%d", self.address, self.port)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._snapshots)
            nursery.start_soon(self._rates)
            nursery.start_soon(trio.serve_listeners, self._serve, listeners)
            task_status.started()

    async def _snapshots(self) -> None:
        while True:
            await self._changed.wait()
            self._changed = trio.Event()
            if len(self.hub):
                message = self._snapshot_message()
                if message is not None:
                    self.hub.publish("cluster", message)
            await trio.sleep(self.limits.snapshot_interval_s)

    async def _rates(self) -> None:
        while True:
            await trio.sleep(self.rates_interval_s)
            if len(self.hub):
                try:
                    self.hub.publish("rates", sse("rates", dict(self.source.rates())))
                except Exception:
                    log.exception("web view: reading the rates failed")

    def _snapshot_message(self) -> bytes | None:
        try:
            return sse("cluster", dict(self.source.cluster()))
        except Exception:
            log.exception("web view: building the cluster snapshot failed")
            return None

    async def _serve(self, stream: trio.SocketStream) -> None:
        try:
            if self.connections >= self.limits.max_connections:
                self.counters["busy"] += 1
                with trio.move_on_after(1):
                    await stream.send_all(_raw_response(503, b"too many connections to the web view; try again\n"))
                return
            self.connections += 1
            try:
                await _Connection(self, stream).serve()
            finally:
                self.connections -= 1
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.counters["hung_up"] += 1
        except trio.TooSlowError:
            self.counters["send_timeout"] += 1
        except Exception:  # a bug must cost one connection, never the agent
            self.counters["500"] += 1
            log.exception("web view: serving a connection failed")
        finally:
            await _close(stream)


class _Connection:
    """One client connection: requests in, responses out, through one ``h11.Connection``."""

    def __init__(self, server: WebServer, stream: trio.SocketStream) -> None:
        self.server = server
        self.limits = server.limits
        self.stream = stream
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=server.limits.max_request_bytes)

    async def serve(self) -> None:
        for _ in range(self.limits.max_requests_per_connection):
            try:
                with trio.move_on_after(self.limits.request_timeout_s) as scope:
                    request = await self._next_request()
            except h11.RemoteProtocolError as exc:
                self.server.counters[str(exc.error_status_hint)] += 1
                await self._error(exc.error_status_hint, f"bad request: {exc}")
                return
            if scope.cancelled_caught:
                self.server.counters["timeout"] += 1
                if self.conn.their_state is h11.SEND_BODY or self.conn.trailing_data[0]:
                    await self._error(408, "the request did not arrive in time")
                return
            if request is None:
                return
            keep_open = await self._route(request)
            if not keep_open or self.conn.our_state is not h11.DONE or self.conn.their_state is not h11.DONE:
                return  # a request with a body, or HTTP/1.0, or an event stream: close
            self.conn.start_next_cycle()

    async def _next_request(self) -> h11.Request | None:
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                self.conn.receive_data(await self.stream.receive_some(_RECEIVE_BYTES))
            elif isinstance(event, h11.Request):
                self.conn.next_event()  # EndOfMessage at once when there is no body; a body is never read
                return event
            else:
                return None  # ConnectionClosed (or PAUSED: the client sent more than one request)

    async def _route(self, request: h11.Request) -> bool:
        try:
            return await self._dispatch(request)
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError, h11.LocalProtocolError):
            raise
        except Exception:
            log.exception("web view: answering %s failed", request.target[:200].decode("ascii", "replace"))
            await self._error(500, "internal error: see the agent's log")
            return False

    async def _dispatch(self, request: h11.Request) -> bool:
        target = request.target.decode("ascii", "replace")
        path, _, query = target.partition("?")
        host = _host_name(request)
        if host is not None and host not in self.server.hosts and not _is_ip(host):
            return await self._send(421, {"error": f"this web view does not answer to host {host[:100]!r}: reach it "
                                                   "by IP address or localhost, or add the name to api.web_hosts"})
        if request.method != b"GET":
            method = request.method.decode("ascii", "replace")
            return await self._send(405, {"error": f"the web view is read-only: {method} is not allowed, only GET"},
                                    extra=[(b"allow", b"GET")])
        if path == "/":
            path = "/static/index.html"
        if path.startswith("/static/") and path[len("/static/"):] in self.server.files:
            body, content_type = self.server.files[path[len("/static/"):]]
            return await self._send_bytes(200, body, content_type)
        if path == "/api/cluster":
            return await self._send(200, self.server.source.cluster())
        if path == "/api/advise":
            return await self._advise(query)
        if path == "/api/events":
            return await self._events()
        return await self._send(404, {"error": f"nothing here: {path[:200]}",
                                      "see": ["/", "/api/cluster", "/api/advise", "/api/events"]})

    async def _advise(self, query: str) -> bool:
        try:
            parsed = parse_advise(query)
        except BadQuery as exc:
            return await self._send(400, {"error": str(exc)})
        try:
            return await self._send(200, self.server.source.advise(parsed))
        except advisor.NoModelFits as exc:
            return await self._send(409, {"error": str(exc)})

    async def _events(self) -> bool:
        server = self.server
        if len(server.hub) >= self.limits.max_event_clients:
            return await self._send(503, {"error": f"at most {self.limits.max_event_clients} event streams at once"})
        server.counters["200"] += 1
        await self._send_event(h11.Response(status_code=200, headers=[
            (b"content-type", b"text/event-stream; charset=utf-8"), *_SECURITY_HEADERS]))
        client = server.hub.join()
        try:
            first = server._snapshot_message()
            await self._send_event(h11.Data(b"retry: 2000\n\n" + (first or b"")))
            while True:
                with trio.move_on_after(self.limits.keepalive_s):
                    await client.wait()
                chunk = b"".join(client.take()) or b": keepalive\n\n"
                await self._send_event(h11.Data(chunk))
        finally:
            server.hub.leave(client)

    async def _send(self, status: int, body: Mapping[str, Any], extra: list[tuple[bytes, bytes]] | None = None
                    ) -> bool:
        data = json.dumps(body, separators=(",", ":"), default=str).encode()
        return await self._send_bytes(status, data, "application/json", extra)

    async def _send_bytes(self, status: int, body: bytes, content_type: str,
                          extra: list[tuple[bytes, bytes]] | None = None) -> bool:
        self.server.counters[str(status)] += 1
        headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()),
                   (b"server", f"meshd/{__version__}".encode()), *_SECURITY_HEADERS, *(extra or [])]
        if self.conn.their_state is not h11.DONE or status >= 500:
            headers.append((b"connection", b"close"))  # its body is not read: no next request on this connection
        await self._send_event(h11.Response(status_code=status, headers=headers))
        await self._send_event(h11.Data(body))
        await self._send_event(h11.EndOfMessage())
        return True

    async def _send_event(self, event: h11.Event) -> None:
        data = self.conn.send(event)
        if not data:
            return
        try:
            with trio.fail_after(self.limits.send_timeout_s):
                await self.stream.send_all(data)
        except BaseException:
            self.conn.send_failed()
            raise

    async def _error(self, status: int, text: str) -> None:
        if self.conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        try:
            await self._send(status, {"error": text})
        except (h11.LocalProtocolError, trio.TooSlowError):
            pass


def _host_name(request: h11.Request) -> str | None:
    """The name in the request's ``Host`` header, lower case, without port or brackets; None without one."""
    value = next((v for k, v in request.headers if k == b"host"), None)
    if value is None:
        return None
    host = value.decode("ascii", "replace").strip().lower()
    if host.startswith("["):  # [v6]:port
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def _close(stream: trio.SocketStream) -> None:
    """Close after the response is out: half-close, then read (bounded) what the client still sends,
    so that unread request bytes do not make the kernel reset the connection before the client
    has read the response."""
    try:
        with trio.move_on_after(_LINGER_S):
            await stream.send_eof()
            drained = 0
            while drained < _LINGER_BYTES and (chunk := await stream.receive_some(_RECEIVE_BYTES)):
                drained += len(chunk)
    except (trio.BrokenResourceError, trio.ClosedResourceError, trio.BusyResourceError):
        pass
    finally:
        await trio.aclose_forcefully(stream)


def _raw_response(status: int, body: bytes) -> bytes:
    """A whole response without a connection state (to a connection refused as busy)."""
    reason = {503: b"Service Unavailable"}.get(status, b"Error")
    return (b"HTTP/1.1 %d %s\r\ncontent-type: text/plain\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s"
            % (status, reason, len(body), body))

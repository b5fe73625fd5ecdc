"""Prometheus metrics: component status snapshots exposed as text over HTTP.

Theory of operation
-------------------
Components do not update metric objects; each has ``status()`` or
``statistics()`` returning a frozen dataclass (STYLE §9).  A
:class:`StatusCollector` reads those at scrape time and turns every numeric
field into a sample named ``meshd_<source>_<field>``; a ``dict`` field of
numbers becomes one sample per key with a ``key`` label (e.g. refusals per
peer address).  Latency histograms (reconcile, attach) are ordinary
``prometheus_client.Histogram`` objects registered beside it.

:class:`MetricsServer` answers ``GET /metrics`` with the text exposition
format, as a trio task (no extra thread).  Requests are small and served one
at a time; anything but ``GET /metrics`` gets 404.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Callable, Iterator, Mapping

import trio
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger("meshd.metrics")

_MAX_REQUEST_BYTES = 8192


class StatusCollector(Collector):
    """Samples every numeric field of each source's status dataclass (or dict)."""

    def __init__(self, sources: Mapping[str, Callable[[], Any]]) -> None:
        self.sources = dict(sources)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for source, read in self.sources.items():
            try:
                status = read()
            except Exception:  # a broken source must not break the scrape
                log.exception("metrics source failed source=%s", source)
                continue
            yield from _families(f"meshd_{source}", _as_mapping(status))


def _as_mapping(status: Any) -> Mapping[str, Any]:
    if dataclasses.is_dataclass(status) and not isinstance(status, type):
        return {f.name: getattr(status, f.name) for f in dataclasses.fields(status)}
    return status if isinstance(status, Mapping) else {}


def _families(prefix: str, values: Mapping[str, Any]) -> Iterator[GaugeMetricFamily]:
    """Numbers (and bools) become samples; nested statuses recurse; maps of numbers get a key label."""
    for name, value in values.items():
        metric = f"{prefix}_{name}"
        if isinstance(value, (bool, int, float)):
            yield GaugeMetricFamily(metric, f"{prefix} {name}", value=float(value))
        elif _is_status(value):
            yield from _families(metric, _as_mapping(value))
        elif isinstance(value, Mapping) and value and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value.values()):
            family = GaugeMetricFamily(metric, f"{prefix} {name} by key", labels=["key"])
            for key, v in value.items():
                family.add_metric([str(key)], float(v))
            yield family


def _is_status(value: Any) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


#: latency buckets, seconds: 1 ms .. 10 s
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def latency_histograms(registry: CollectorRegistry) -> dict[str, Histogram]:
    """The agent's latency histograms: ``reconcile`` (one pass) and ``attach``
    (a connect committed -> its interface up, for connects received on the
    container's own host)."""
    return {
        "reconcile": Histogram("meshd_reconcile_pass_seconds", "duration of one reconcile pass",
                               buckets=_BUCKETS, registry=registry),
        "attach": Histogram("meshd_attach_seconds", "connect committed to interface up",
                            buckets=_BUCKETS, registry=registry),
    }


def make_registry(sources: Mapping[str, Callable[[], Any]]) -> CollectorRegistry:
    """A registry with a :class:`StatusCollector` over ``sources``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(sources))
    return registry


class MetricsServer:
    """``GET /metrics`` over HTTP/1.0 on ``address:port``, as a trio task."""

    def __init__(self, registry: CollectorRegistry, address: str, port: int) -> None:
        self.registry = registry
        self.address = address
        self.port = port

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(self.port, host=self.address)
        self.port = listeners[0].socket.getsockname()[1]
        log.info("metrics listening address=%s port=%d", self.address, self.port)
        task_status.started()
        await trio.serve_listeners(self._serve, listeners)

    async def _serve(self, stream: trio.SocketStream) -> None:
        try:
            with trio.move_on_after(5):
                request = b""
                while b"\r\n\r\n" not in request and len(request) < _MAX_REQUEST_BYTES:
                    chunk = await stream.receive_some(4096)
                    if not chunk:
                        break
                    request += chunk
                first = request.split(b"\r\n", 1)[0].split()
                if first[:2] == [b"GET", b"/metrics"]:
                    body = generate_latest(self.registry)
                    await _respond(stream, b"200 OK", body, b"text/plain; version=0.0.4; charset=utf-8")
                else:
                    await _respond(stream, b"404 Not Found", b"only GET /metrics is served here\n", b"text/plain")
        except trio.BrokenResourceError:
            pass  # the scraper hung up; nothing to answer
        finally:
            await stream.aclose()


async def _respond(stream: trio.SocketStream, status: bytes, body: bytes, content_type: bytes) -> None:
    head = b"HTTP/1.0 " + status + b"\r\nContent-Type: " + content_type + \
        b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n"
    await stream.send_all(head + body)

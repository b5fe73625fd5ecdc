"""Metrics: status dataclasses become Prometheus samples, served over real HTTP."""

import trio

from meshd.metrics import MetricsServer, latency_histograms, make_registry
from meshd.transport import ZmqHost


async def _get(port, path):
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(f"GET {path} HTTP/1.0\r\n\r\n".encode())
    data = b""
    while chunk := await stream.receive_some(65536):
        data += chunk
    return data.decode()


async def test_status_fields_are_exposed_and_404_otherwise(nursery):
    host = ZmqHost(None)
    host.refusals.refuse("192.0.2.99", "tcp://x", "test")
    broken = {"ok": 1}
    registry = make_registry({"transport": host.status, "broken": lambda: 1 / 0, "plain": lambda: broken})
    latency = latency_histograms(registry)
    latency["attach"].observe(0.004)
    latency["reconcile"].observe(0.02)
    server = MetricsServer(registry, "127.0.0.1", 0)
    await nursery.start(server.run)
    text = await _get(server.port, "/metrics")
    assert text.startswith("HTTP/1.0 200 OK")
    assert "meshd_transport_security_refused 1.0" in text
    assert 'meshd_transport_security_refused_by_address{key="192.0.2.99"} 1.0' in text
    assert "meshd_plain_ok 1.0" in text
    assert 'meshd_attach_seconds_bucket{le="0.005"} 1.0' in text
    assert 'meshd_reconcile_pass_seconds_bucket{le="0.025"} 1.0' in text
    assert (await _get(server.port, "/")).startswith("HTTP/1.0 404")
    host.close()

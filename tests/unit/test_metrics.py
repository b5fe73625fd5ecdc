"""Metrics: every component's status becomes a documented metric that follows the Prometheus
conventions (promtool agrees), served over real HTTP; disabled metrics still record latencies."""

from __future__ import annotations

import dataclasses
import os
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import trio
import zmq

import consensus
from consensus._storage import Storage
from consensus._transport import MemoryNetwork
from meshd import state as st
from meshd import wire
from meshd.gossip import GossipConfig, GossipCore
from meshd.gossip._driver import AgentStatus
from meshd.metrics import CATALOGUE, ENDPOINT_LABELS, AgentMetrics, MetricsServer, metric_names
from meshd.reconcile import ReconcilerStatus
from meshd.transport import MeshStats, ZmqHost

GUIDE = (Path(__file__).parents[2] / "docs" / "operators-guide.md").read_text()
CID = "a47f5346b4efe9b4dd6b9d5a4db82c9c288f0a7e0bc0da51294d5902ab00b034"


def promtool_or_skip() -> str:
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing (apt prometheus; tools/setup.sh installs it)", pytrace=False)
        pytest.skip("needs promtool: apt install prometheus (tools/setup.sh installs it)")
    return path


def promtool_check(text: str) -> subprocess.CompletedProcess:
    return subprocess.run([promtool_or_skip(), "check", "metrics"], input=text, capture_output=True, text=True)


async def _raft_leader(nursery, tmp_path) -> tuple[consensus.RaftNode, st.NetworkState]:
    """A real one-voter Raft node over the in-memory transport, with the real network state."""
    state = st.NetworkState()
    node = consensus.RaftNode("h1", config=consensus.RaftConfig.local(), transport=MemoryNetwork().transport("h1"),
                              storage=Storage.open(tmp_path / "raft"), state_machine=state, bootstrap=["h1"],
                              rng=random.Random(1), io_in_thread=False)
    await nursery.start(node.run)
    await node.campaign()
    await node.propose(wire.encode(st.CreateNetwork(name="blue", tenant="t1", subnet="10.1.0.0/24")))
    return node, state


async def _refused_plaintext_client(host: ZmqHost) -> None:
    """A real plaintext DEALER dials a real CURVE listener: the monitor counts it as `plaintext`."""
    from meshd.transport import ClusterKeys, new_secret

    server = host.listen(zmq.ROUTER, "tcp://127.0.0.1:0", server_keys=ClusterKeys.from_secret(new_secret()).server)
    endpoint = server.zmq_socket.getsockopt_string(zmq.LAST_ENDPOINT)
    ctx = zmq.Context()
    try:
        # the monitor may see a client hang up mid-handshake (counted as hung_up) when the machine is
        # loaded: a new client dials again until one plaintext greeting is seen
        with trio.fail_after(60):
            while "plaintext" not in host.status().security.refused_by_reason:
                client = ctx.socket(zmq.DEALER)
                client.setsockopt(zmq.LINGER, 0)
                client.connect(endpoint)
                client.send(b"hello")
                with trio.move_on_after(3):
                    while "plaintext" not in host.status().security.refused_by_reason:
                        await trio.sleep(0.02)
                client.close()
    finally:
        ctx.destroy(linger=0)


@pytest.fixture
async def sources(nursery, tmp_path):
    host = ZmqHost(None)
    await nursery.start(host.run)
    await _refused_plaintext_client(host)
    raft, state = await _raft_leader(nursery, tmp_path)
    core = GossipCore(name="h1", addr="tcp://192.0.2.11:7946", config=GossipConfig.local(),
                      rng=random.Random(1), now=0.0)
    yield {
        "transport": host.status,
        "gossip": lambda: AgentStatus(core.status(), MeshStats(10, 900, 1, 12, 1000, 2, 3, 2)),
        "raft": raft.status,
        "state": state.status,
        "reconcile": lambda: dataclasses.asdict(ReconcilerStatus(
            passes=7, additions_applied=3, passes_skipped=5, ops_applied=40, errors_total=1,
            last_errors=("mb-1: File exists",), last_pass_ms=21.5, mtu_checks=4, mtu_failures=2, mtu_problems=1)),
        "commit": lambda: {"committed": 2, "refused_locally": 3, "rejected": 1},
        "scheduler_server": lambda: {"requests": 9, "published_requests": 1, "events_published": 4},
        "scheduler_service": lambda: {"committed": 2, "rejected": 1, "queries": 6, "error_wrong_type": 1},
        "control_service": lambda: {"queries": 3},
        "endpoints": lambda: [{"container": "web", "container_id": CID, "network": "blue", "tenant": "t1",
                               "rx_bytes": 1500, "tx_bytes": 98}],
    }
    host.close()


async def test_every_catalogued_metric_is_exposed_from_real_statuses(sources):
    metrics = AgentMetrics(sources)
    text = metrics.exposition().decode()
    for name, kind in metric_names().items():
        assert f"# TYPE {name} {kind}" in text, name
    assert re.search(r'meshd_transport_connections_refused_total\{reason="plaintext"\} [1-9][0-9]*\.0', text)
    assert "meshd_raft_is_leader 1.0" in text and "meshd_raft_has_leader 1.0" in text
    assert "meshd_state_networks 1.0" in text
    assert 'meshd_gossip_members{state="alive"} 1.0' in text
    assert "meshd_reconcile_last_pass_duration_seconds 0.0215" in text
    assert "meshd_reconcile_last_errors 1.0" in text and "meshd_reconcile_mtu_problems 1.0" in text
    assert 'meshd_commit_requests_total{outcome="refused_locally"} 3.0' in text
    assert 'meshd_api_requests_total{outcome="error_wrong_type",socket="scheduler"} 1.0' in text
    assert 'meshd_api_frames_received_total{socket="router"} 9.0' in text
    assert (f'meshd_endpoint_receive_bytes_total{{container="web",container_id="{CID}",network="blue",'
            f'tenant="t1"}} 1500.0') in text


async def test_promtool_accepts_the_exposition(sources):
    metrics = AgentMetrics(sources)
    metrics.attach_seconds.observe(0.004)
    result = promtool_check(metrics.exposition().decode())
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_catches_what_the_old_names_did_wrong():
    """The check can fail: the names of the first exposition are refused."""
    old = ("# HELP meshd_reconcile_last_pass_ms x\n# TYPE meshd_reconcile_last_pass_ms gauge\n"
           "meshd_reconcile_last_pass_ms 1\n")
    assert promtool_check(old).returncode != 0


def test_names_follow_the_conventions():
    for name, kind in metric_names().items():
        assert name.startswith("meshd_") and "__" not in name, name
        assert name.endswith("_total") == (kind == "counter"), name
        assert not re.search(r"_(ms|us|kb|kbit|bps)(_|$)", name), name
        parts = name.split("_")
        assert parts[1] != parts[2], f"{name} repeats its prefix"
    assert ENDPOINT_LABELS == ("container", "container_id", "network", "tenant")


def test_every_metric_is_documented_in_the_operators_guide():
    documented = dict(re.findall(r"^\| `(meshd_\w+)` \| (counter|gauge|histogram) \|", GUIDE, re.M))
    assert documented == metric_names()
    for metric in CATALOGUE:
        row = next(line for line in GUIDE.splitlines() if line.startswith(f"| `{metric.name}"))
        for label in metric.labels:
            assert f"`{label}`" in row, (metric.name, label)


def test_disabled_metrics_still_record_and_a_broken_source_only_loses_its_own(caplog):
    """api.metrics_port = 0 serves nothing, but the agent observes latencies all the same."""
    metrics = AgentMetrics({"state": st.NetworkState().status, "raft": lambda: 1 / 0})
    metrics.reconcile_seconds.observe(0.02)
    metrics.attach_seconds.observe(0.5)
    for _ in range(2):
        text = metrics.exposition().decode()
    assert "meshd_reconcile_pass_duration_seconds_count 1.0" in text
    assert 'meshd_endpoint_attach_duration_seconds_bucket{le="0.5"} 1.0' in text
    assert "meshd_state_networks 0.0" in text and not re.search("^meshd_raft_term ", text, re.M)
    assert sum("source=raft" in r.getMessage() for r in caplog.records) == 1  # logged once, not per scrape


async def _get(port, path):
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(f"GET {path} HTTP/1.0\r\n\r\n".encode())
    data = b""
    while chunk := await stream.receive_some(65536):
        data += chunk
    return data.decode()


async def test_served_over_http_and_404_otherwise(nursery):
    metrics = AgentMetrics({"state": st.NetworkState().status})
    server = MetricsServer(metrics.registry, "127.0.0.1", 0)
    await nursery.start(server.run)
    text = await _get(server.port, "/metrics")
    assert text.startswith("HTTP/1.0 200 OK") and "meshd_state_networks 0.0" in text
    assert (await _get(server.port, "/")).startswith("HTTP/1.0 404")

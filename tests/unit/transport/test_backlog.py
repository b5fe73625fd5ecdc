"""A listener's kernel accept queue holds a whole cluster's connections (real ZeroMQ over loopback)."""

from __future__ import annotations

import subprocess

import pytest
import zmq

from meshd.transport import TransportConfig, bound_endpoint

pytestmark = pytest.mark.timeout(60)


def _somaxconn() -> int:
    with open("/proc/sys/net/core/somaxconn") as f:
        return int(f.read())


async def test_a_listener_queues_more_connections_than_zeromqs_default_backlog(hosts):
    """ZeroMQ's default backlog (100) overflowed when 150 hosts dialled a busy one at once; the
    kernel's listen queue (ss's Send-Q of a listening socket) is now transport.listen_backlog."""
    host = await hosts()
    sock = host.listen(zmq.ROUTER, "tcp://127.0.0.1:0")
    port = bound_endpoint(sock).rsplit(":", 1)[1]
    out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    [line] = out.splitlines()
    send_q = int(line.split()[2])  # a listener's Send-Q is its backlog
    assert send_q == min(TransportConfig().listen_backlog, _somaxconn()) > 100, line

"""A host holds more ZeroMQ sockets than ZeroMQ's default limit (1,023): one DEALER per peer in two meshes."""

import resource

import pytest
import zmq

from meshd.transport import TransportConfig, ZmqHost

WANTED = 1_100  # above ZeroMQ's default ZMQ_MAX_SOCKETS (1,023), where a lab of ~500 hosts fails


@pytest.fixture
def enough_descriptors():
    """Each socket holds a descriptor: raise the soft limit for the test (restored after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * WANTED + 200
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {need}: raise it (ulimit -Hn) to run this test")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_host_dials_more_peers_than_zeromqs_default_socket_limit(enough_descriptors):
    host = ZmqHost(None)
    socks = []
    try:
        assert host.ctx.get(zmq.MAX_SOCKETS) == TransportConfig().max_sockets
        for _ in range(WANTED):
            socks.append(host.dial(zmq.DEALER, "inproc://nobody-listens"))
        assert len(socks) == WANTED
    finally:
        for s in socks:
            s.close()
        host.ctx.destroy(linger=0)


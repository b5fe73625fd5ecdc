"""A host holds more ZeroMQ sockets than ZeroMQ's default limit (1,023): one DEALER per peer in two meshes."""

import resource

import pytest
import zmq

from meshd.transport import TransportConfig, ZmqHost

WANTED = 1_100  # above ZeroMQ's default ZMQ_MAX_SOCKETS (1,023), where a lab of ~500 hosts fails


@pytest.fixture
def enough_descriptors():
    """Each socket holds a descriptor: raise the limits for the test (root may raise the hard one too;
    both restored after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * WANTED + 200
    new_hard = hard if hard == resource.RLIM_INFINITY else max(hard, need)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need), new_hard))
    except (ValueError, OSError) as exc:  # not root, and the hard limit is below what the test needs
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {need} and this user may not raise it ({exc}): "
                    "run as root, or raise it (ulimit -Hn)")
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


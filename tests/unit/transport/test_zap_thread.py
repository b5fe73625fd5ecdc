"""Admission does not wait for the event loop: ZAP answers from its own thread.

A CURVE handshake completes only once ZAP has answered. When the handler ran on
the trio loop, a loop running late held every new connection for as long, and
libzmq abandoned handshakes after 30 s (docs/scale.md). Here the listening
host's loop is blocked outright while a peer dials it.
"""

import threading
import time

import pytest
import trio
import zmq

from meshd.transport import ClusterKeys, Mesh, ZmqHost, new_secret

pytestmark = pytest.mark.timeout(60)


def _block_the_loop_until(done, limit_s: float = 3.0) -> float | None:
    """Busy-wait without awaiting (so no trio task of this test's hosts runs) until ``done()``;
    the seconds it took, or None after ``limit_s``."""
    start = time.monotonic()
    while time.monotonic() - start < limit_s:
        if done():
            return time.monotonic() - start
        time.sleep(0.005)
    return None


def _sent(dealer: zmq.Socket) -> bool:
    try:
        dealer.send_multipart((b"client", b"hello"), zmq.NOBLOCK)  # IMMEDIATE: fails until admitted
    except zmq.Again:
        return False
    return True


async def test_a_peer_is_admitted_and_its_frames_queued_while_the_loop_is_blocked(hosts):
    server_host = await hosts()
    server = Mesh(server_host, "server", "tcp://127.0.0.1:0")
    server.open()
    client_host = await hosts()

    dealer = client_host.dial(zmq.DEALER, server.endpoint).zmq_socket
    assert _block_the_loop_until(lambda: _sent(dealer)) is not None, \
        "the dialler's connection did not come up while the listener's loop was blocked"
    assert server_host.status().security.admitted == 1

    assert await server.receive() == ("client", b"hello")
    assert server_host.status().security.admitted_by_domain == {"meshd": 1}


async def test_a_stranger_is_counted_as_refused_while_the_loop_is_blocked(hosts):
    """The listener's monitor is read by the same thread: libzmq's I/O thread blocks on a
    monitor nobody reads, so it must not wait for the loop either."""
    server_host = await hosts()
    server = Mesh(server_host, "server", "tcp://127.0.0.1:0")
    server.open()
    stranger = await hosts(new_secret())

    stranger.dial(zmq.DEALER, server.endpoint)
    assert _block_the_loop_until(lambda: server_host.status().security.refused >= 1) is not None
    stats = server_host.status().security
    assert stats.refused_by_reason == {"wrong_server_key": stats.refused}
    assert server_host.status().handshake_failures >= 1


def _zap_threads() -> int:
    return sum(t.name == "meshd-zap" for t in threading.enumerate())


async def test_a_stopped_host_leaves_no_zap_thread_and_a_new_one_binds_again():
    before = _zap_threads()
    for _ in range(3):
        host = ZmqHost(ClusterKeys.from_secret(new_secret()))
        async with trio.open_nursery() as nursery:
            await nursery.start(host.run)
            assert _zap_threads() == before + 1
            nursery.cancel_scope.cancel()
        assert host.ctx.closed
        assert _zap_threads() == before

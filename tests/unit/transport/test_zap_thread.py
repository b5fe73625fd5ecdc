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


async def test_listeners_enforce_zap_so_a_missing_handler_refuses_instead_of_admitting(hosts):
    """libzmq admits every CURVE client of a listener whose context has no ZAP handler bound
    (ZAP_ENFORCE_DOMAIN 0, its default): a raw socket pair here shows it, so the option our
    listeners set is what keeps a handler that died from opening the cluster."""
    host = await hosts()
    listener = host.listen(zmq.ROUTER, "tcp://127.0.0.1:0")
    assert listener.zmq_socket.getsockopt(zmq.ZAP_ENFORCE_DOMAIN) == 1

    ctx = zmq.Context()  # no handler bound in this context
    try:
        server_pub, server_sec = zmq.curve_keypair()
        client_pub, client_sec = zmq.curve_keypair()
        admitted = {}
        for enforce in (0, 1):
            server = ctx.socket(zmq.ROUTER)
            server.setsockopt(zmq.LINGER, 0)
            server.setsockopt(zmq.CURVE_SERVER, 1)
            server.setsockopt(zmq.CURVE_SECRETKEY, server_sec)
            server.setsockopt(zmq.ZAP_DOMAIN, b"meshd")
            server.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, enforce)
            port = server.bind_to_random_port("tcp://127.0.0.1")
            client = ctx.socket(zmq.DEALER)
            client.setsockopt(zmq.LINGER, 0)
            client.setsockopt(zmq.IMMEDIATE, 1)
            client.setsockopt(zmq.CURVE_SERVERKEY, server_pub)
            client.setsockopt(zmq.CURVE_PUBLICKEY, client_pub)
            client.setsockopt(zmq.CURVE_SECRETKEY, client_sec)
            client.connect(f"tcp://127.0.0.1:{port}")
            admitted[enforce] = _block_the_loop_until(lambda c=client: _sent(c), limit_s=1.5) is not None
            server.close()
            client.close()
    finally:
        ctx.destroy(linger=0)
    assert admitted == {0: True, 1: False}


async def test_a_failed_zap_thread_stops_its_host_loudly(monkeypatch):
    def broken(self, zap, control):
        raise ValueError("boom")

    monkeypatch.setattr("meshd.transport._zap.ZapHandler._serve", broken)
    host = ZmqHost(ClusterKeys.from_secret(new_secret()))
    with pytest.raises(BaseException) as err:  # trio wraps it in an ExceptionGroup
        async with trio.open_nursery() as nursery:
            await nursery.start(host.run)
            await trio.sleep(5)
    assert "the ZAP handler thread failed (ValueError('boom'))" in repr(err.value.exceptions[0]
                                                                           if hasattr(err.value, "exceptions")
                                                                           else err.value)
    assert host.ctx.closed


def test_the_agent_command_reports_a_failed_zap_thread_in_one_line():
    """trio nests the host's nursery group in the agent's: `meshd agent` prints the leaf's message
    (tried by hand: "meshd: error: the ZAP handler thread failed (ValueError('boom')): ...")."""
    from meshd.cli_agent import _first_leaf
    from meshd.transport import ZapHandlerFailed

    failed = ZapHandlerFailed("the ZAP handler thread failed (ValueError('boom'))")
    nested = ExceptionGroup("agent", [ExceptionGroup("host", [failed]), RuntimeError("later")])
    assert _first_leaf(nested) is failed

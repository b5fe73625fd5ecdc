"""TrioSocket: ordering, no loss, cancellation safety, clean close (real ZeroMQ over loopback TCP)."""

import random

import pytest
import trio
import zmq

from meshd.transport import bound_endpoint

pytestmark = pytest.mark.timeout(120)  # a lost wake-up must fail here, with stacks, not stall CI


async def _pair(hosts):
    a, b = await hosts(), await hosts()
    server = a.listen(zmq.ROUTER, "tcp://127.0.0.1:0")
    client = b.dial(zmq.DEALER, bound_endpoint(server))
    return server, client


async def test_100k_messages_in_order_without_loss(hosts):
    server, client = await _pair(hosts)
    count = 100_000
    received = []

    async def sender():
        for i in range(count):
            await client.send_multipart([i.to_bytes(4, "big")])

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sender)
        while len(received) < count:
            _, body = await server.recv_multipart()
            received.append(int.from_bytes(body, "big"))
    assert received == list(range(count))


async def test_cancelled_receive_loses_nothing(hosts):
    server, client = await _pair(hosts)
    count = 5_000
    rng = random.Random(7)
    received = []
    cancelled = 0

    async def sender():
        for i in range(count):
            await client.send_multipart([i.to_bytes(4, "big")])
            if i % 100 == 0:
                await trio.sleep(0.001)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sender)
        while len(received) < count:
            with trio.CancelScope() as scope:
                if rng.random() < 0.5:
                    scope.cancel()  # cancelled before or while waiting
                _, body = await server.recv_multipart()
                received.append(int.from_bytes(body, "big"))
            cancelled += scope.cancelled_caught
    assert received == list(range(count))
    assert cancelled > 100


async def test_cancelled_send_was_either_sent_or_not(hosts, secret):
    host = await hosts()
    # A dialer to nobody with IMMEDIATE: every send must wait, so a cancelled one sent nothing.
    lonely = host.dial(zmq.DEALER, "tcp://127.0.0.1:9")
    with trio.move_on_after(0.05) as scope:
        await lonely.send_multipart([b"never"])
    assert scope.cancelled_caught
    with pytest.raises(trio.WouldBlock):
        lonely.send_multipart_nowait([b"nothing queued either"])


async def test_concurrent_send_and_receive_on_one_socket(hosts):
    """One task receives while another sends on the same DEALER (the edge-trigger case)."""
    server, client = await _pair(hosts)
    rounds = 2_000

    async def echo():
        for _ in range(rounds):
            ident, body = await server.recv_multipart()
            await server.send_multipart([ident, body])

    got = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(echo)

        async def reader():
            for _ in range(rounds):
                got.append((await client.recv_multipart())[0])

        nursery.start_soon(reader)
        for i in range(rounds):
            await client.send_multipart([str(i).encode()])
    assert got == [str(i).encode() for i in range(rounds)]


async def test_close_wakes_a_blocked_receiver(hosts):
    server, _ = await _pair(hosts)

    async def closer():
        await trio.sleep(0.05)
        server.close()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(closer)
        with pytest.raises(trio.ClosedResourceError):
            await server.recv_multipart()
    with pytest.raises(trio.ClosedResourceError):
        server.send_multipart_nowait([b"x"])

"""Mesh: CURVE admission, dead peers, malformed frames — real ZeroMQ over loopback TCP."""

import msgpack
import pytest
import trio
import zmq

from meshd import wire
from meshd.transport import Mesh, PeerTransport, new_secret

pytestmark = pytest.mark.timeout(120)  # a lost wake-up must fail here, with stacks, not stall CI


@wire.message
class Probe(wire.Message, tag=127, kw_only=True):
    """A test-only message (tag 127, the end of the control range)."""

    seq: int
    sender: str

    def __post_init__(self):
        if self.seq < 0:
            raise ValueError("seq must be >= 0")


async def _mesh(hosts, name, secret=None, **kw):
    mesh = Mesh(await hosts(secret), name, "tcp://127.0.0.1:0", **kw)
    mesh.open()
    return mesh


async def test_right_secret_connects_wrong_secret_is_refused_and_counted(hosts):
    server = await _mesh(hosts, "server")
    member = await _mesh(hosts, "member")
    stranger = await _mesh(hosts, "stranger", secret=new_secret())

    assert await member.send(server.endpoint, b"hello", timeout_s=5)
    assert await server.receive() == ("member", b"hello")

    assert not await stranger.send(server.endpoint, b"let me in", timeout_s=1)
    security = server.host.status().security
    assert security.refused >= 1
    assert security.refused_by_address.get("127.0.0.1", 0) + security.refused_by_address.get("unknown", 0) >= 1
    with trio.move_on_after(0.2):
        await server.receive()
        raise AssertionError("a stranger's frame was delivered")


async def test_dead_peer_never_grows_memory(hosts):
    mesh = await _mesh(hosts, "sender")
    dead = "tcp://127.0.0.1:9"  # discard port: nothing listens
    payload = b"x" * 64
    rss_before = _rss_kib()
    for _ in range(1_000_000):
        mesh.send_nowait(dead, payload)
    rss_growth_kib = _rss_kib() - rss_before
    stats = mesh.statistics()
    assert stats.dropped_unconnected == 1_000_000 and stats.sent == 0
    # The bound: at most SNDHWM messages could be queued (1000 x 64 B); allow allocator noise.
    assert rss_growth_kib < 8 * 1024, f"RSS grew by {rss_growth_kib} KiB"


def _rss_kib():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


async def test_malformed_truncated_oversized_frames_are_dropped_and_counted(hosts):
    server = await _mesh(hosts, "server", max_payload_bytes=1024)
    raw = server.host.dial(zmq.DEALER, server.endpoint)  # a different host would behave alike
    good = wire.encode(Probe(seq=1, sender="raw"))
    bad_frames = [
        [b"one-part-only"],                                  # wrong part count
        [b"raw", b"a", b"b"],                                # too many parts
        [b"\xff\xfe", good],                                 # sender id not UTF-8
        [b"raw", b"x" * 2048],                               # oversized payload
    ]
    undecodable = [
        b"\xc1",                                             # not msgpack
        good[:-1],                                           # truncated
        msgpack.packb([9999, 1]),                            # unknown tag
        msgpack.packb([127, 1, "not-an-int", "raw"]),        # wrong field type
        msgpack.packb([127, 1, -5, "raw"]),                  # fails the message's validation
        msgpack.packb({"tag": 127}),                         # not an array
    ]
    with trio.fail_after(5):
        for frames in bad_frames:
            await raw.send_multipart(frames)
        for body in undecodable:
            await raw.send_multipart([b"raw", body])
        await raw.send_multipart([b"raw", good])
        sender, msg = await server.receive_message()
    assert (sender, msg) == ("raw", Probe(seq=1, sender="raw"))
    stats = server.statistics()
    assert stats.malformed == len(bad_frames)
    assert stats.undecodable == len(undecodable)


async def test_peer_transport_addresses_by_node_id(hosts):
    a, b = await _mesh(hosts, "n1"), await _mesh(hosts, "n2")
    ta, tb = PeerTransport(a), PeerTransport(b)
    ta.set_peers({"n2": b.endpoint})
    tb.set_peers({"n1": a.endpoint})
    with trio.fail_after(5):
        while True:  # the first frames may be dropped until the connection is up
            await ta.send("n2", b"append")
            with trio.move_on_after(0.05):
                assert await tb.receive() == ("n1", b"append")
                break
    await ta.send("unknown-node", b"dropped")
    assert a.statistics().dropped_unconnected >= 1


async def test_set_peers_dials_the_voters_now_so_their_first_frame_is_not_dropped(hosts):
    a, b = await _mesh(hosts, "n1"), await _mesh(hosts, "n2")
    ta = PeerTransport(a)
    ta.set_peers({"n2": b.endpoint}, connect=["n2"])
    assert a.statistics().peers == 1  # dialed at once, before anything is sent
    await trio.sleep(0.5)  # the TCP + CURVE handshake on loopback
    await ta.send("n2", b"vote")
    with trio.fail_after(5):
        assert await b.receive() == ("n1", b"vote")
    assert a.statistics().dropped_unconnected == 0


async def test_set_peers_dials_any_other_peer_when_a_frame_first_goes_to_it(hosts):
    a, b = await _mesh(hosts, "n1"), await _mesh(hosts, "n2")
    ta = PeerTransport(a)
    ta.set_peers({"n2": b.endpoint, "n3": "tcp://127.0.0.1:1"})
    assert a.statistics().peers == 0  # no connection to a learner nobody talks to
    await ta.send("n2", b"append")  # dials; this frame is dropped (not connected yet)
    assert a.statistics().peers == 1 and a.statistics().dropped_unconnected == 1
    with trio.fail_after(5):
        while True:
            await ta.send("n2", b"append again")  # Raft sends again
            with trio.move_on_after(0.1):
                assert await b.receive() == ("n1", b"append again")
                break
    ta.set_peers({"n3": "tcp://127.0.0.1:1"})  # n2 left: its connection is closed
    assert a.statistics().peers == 0


async def test_outboxes_are_bounded(hosts):
    mesh = await _mesh(hosts, "many", max_peers=4)
    for port in range(20000, 20010):
        mesh.send_nowait(f"tcp://127.0.0.1:{port}", b"x")
    assert mesh.statistics().peers == 4


async def test_receive_message_nowait_takes_what_is_queued_and_skips_what_does_not_decode(hosts):
    server = await _mesh(hosts, "server")
    member = await _mesh(hosts, "member")
    assert server.receive_message_nowait() is None  # nothing queued: no wait, no error
    assert await member.send(server.endpoint, wire.encode(Probe(seq=1, sender="member")), timeout_s=5)
    assert await member.send(server.endpoint, b"\xc1 not msgpack", timeout_s=5)
    assert await member.send(server.endpoint, wire.encode(Probe(seq=2, sender="member")), timeout_s=5)
    got: list[int] = []
    with trio.fail_after(5):
        while len(got) < 2:
            received = server.receive_message_nowait()
            if received is None:
                await trio.sleep(0.01)  # still in flight on loopback
                continue
            assert received[0] == "member"
            got.append(received[1].seq)
    assert got == [1, 2] and server.receive_message_nowait() is None
    assert server.statistics().undecodable == 1


async def test_a_send_waiting_for_a_peer_that_is_forgotten_meanwhile_is_dropped_not_raised(hosts):
    # gossip waits for a new member's connection (send with a grace period); if the member is
    # reaped meanwhile, gossip forgets its address, which closes that outbox under the waiting send
    mesh = await _mesh(hosts, "n1")
    nobody = "tcp://127.0.0.1:1"  # never connects: the send waits
    results: list[bool] = []

    async def wait_and_send() -> None:
        results.append(await mesh.send(nobody, b"join", timeout_s=5))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wait_and_send)
        await trio.sleep(0.2)
        mesh.forget(nobody)
    assert results == [False]
    assert mesh.statistics().dropped_unconnected == 1

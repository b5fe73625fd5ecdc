"""The transport across a real partition (two lab hosts, nftables cut at the underlay switch).

What the protocols above rely on: a frame sent to a peer behind a partition is
lost like a datagram, never delivered late in a burst after the heal (which is
what an unbounded TCP retransmission backoff did: the backlog landed ~12 s
after a 15 s cut, stale DEAD claims included), and the peer is reached again
soon after the heal (the delay is printed, not asserted).  An idle connection
outlives a few lost keepalive probes (with TCP_USER_TIMEOUT on the listener,
the kernel reset it after one), and one to a peer that is gone for good is
still freed by keepalive.
"""

from __future__ import annotations

import pytest
import trio

import netops
from meshd.transport import ClusterKeys, Mesh, TransportConfig, ZmqHost, new_secret

pytestmark = [pytest.mark.root, pytest.mark.timeout(120)]

CUT_S = 4.0  # longer than transport.tcp_user_timeout_ms, shorter than a test should idle


#: Keepalive in seconds, not tens: idle 1 s, a probe a second, five lost probes drop it.
FAST_KEEPALIVE = TransportConfig(tcp_keepalive_idle_s=1, tcp_keepalive_interval_s=1, tcp_keepalive_probes=5)


async def _mesh_in(lab, host_name: str, keys: ClusterKeys, nursery: trio.Nursery,
                   cfg: TransportConfig | None = None) -> Mesh:
    """A Mesh whose sockets (and ZeroMQ I/O thread) live in the lab host's netns."""
    h = lab.host(host_name)
    with netops.in_netns(f"/run/netns/{h.netns}"):
        host = ZmqHost(keys, cfg)
        await nursery.start(host.run)
        mesh = Mesh(host, h.name, f"tcp://{h.underlay_ip}:0")
        mesh.open()
    return mesh


async def test_frames_sent_into_a_partition_are_never_delivered_after_the_heal(make_lab):
    lab = make_lab(hosts=2)
    keys = ClusterKeys.from_secret(new_secret())
    received: list[bytes] = []
    async with trio.open_nursery() as nursery:
        a = await _mesh_in(lab, "h1", keys, nursery)
        b = await _mesh_in(lab, "h2", keys, nursery)
        assert await a.send(b.endpoint, b"hello", timeout_s=10)
        assert await b.receive() == ("h1", b"hello")

        async def drain() -> None:
            while True:
                received.append((await b.receive())[1])

        nursery.start_soon(drain)
        await trio.to_thread.run_sync(lab.cut, "h2")
        queued = 0
        with trio.move_on_after(CUT_S):
            for i in range(10**9):
                queued += a.send_nowait(b.endpoint, b"cut %d" % i)
                await trio.sleep(0.01)
        await trio.to_thread.run_sync(lab.heal, "h2")
        t_heal = trio.current_time()
        with trio.fail_after(30):
            for i in range(10**9):
                a.send_nowait(b.endpoint, b"after %d" % i)
                if any(p.startswith(b"after") for p in received):
                    break
                await trio.sleep(0.01)
        reconnect_s = trio.current_time() - t_heal
        await trio.sleep(3.0)  # an old-style backlog would land by now, even without new frames
        nursery.cancel_scope.cancel()
    late = [p for p in received if p.startswith(b"cut")]
    print(f"frames queued into the cut: {queued}; peer reached {reconnect_s:.2f} s after the heal")
    assert queued > 0, "the connection should have taken frames before TCP gave up on it"
    assert late == [], f"{len(late)} frames sent during the cut were delivered after the heal: {late[:3]}"


def _accepted(lab, host_name: str, mesh: Mesh) -> set[str]:
    """Peer addresses (ip:port) of the established connections to ``mesh``'s inbox."""
    port = mesh.endpoint.rsplit(":", 1)[1]
    out = lab.exec(host_name, "ss", "-Htn", "state", "established", f"( sport = :{port} )").stdout
    return {line.split()[-1] for line in out.splitlines() if line.strip()}


async def _connected_pair(lab, nursery: trio.Nursery) -> tuple[Mesh, Mesh]:
    """Meshes on h1 and h2 with fast keepalive, h1 connected to h2 by one frame that arrived."""
    keys = ClusterKeys.from_secret(new_secret())
    a = await _mesh_in(lab, "h1", keys, nursery, FAST_KEEPALIVE)
    b = await _mesh_in(lab, "h2", keys, nursery, FAST_KEEPALIVE)
    assert await a.send(b.endpoint, b"hello", timeout_s=10)
    assert await b.receive() == ("h1", b"hello")
    return a, b


async def test_an_idle_connection_outlives_lost_keepalive_probes(make_lab):
    lab = make_lab(hosts=2)
    async with trio.open_nursery() as nursery:
        a, b = await _connected_pair(lab, nursery)
        before = _accepted(lab, "h2", b)
        assert len(before) == 1, before
        await trio.sleep(0.5)  # h2's delayed ACK of "hello" gets through: h1 has nothing unacknowledged
        await trio.to_thread.run_sync(lab.cut, "h2")
        await trio.sleep(3.0)  # idle: h2's probes about 1, 2 and 3 s after "hello" are lost (5 are allowed)
        await trio.to_thread.run_sync(lab.heal, "h2")
        await trio.sleep(1.5)  # the next probe is answered
        after = _accepted(lab, "h2", b)
        assert after == before, f"the idle connection was reset by lost keepalive probes: {before} -> {after}"
        assert a.send_nowait(b.endpoint, b"still here")  # the same connection, no redial
        with trio.fail_after(5):
            assert await b.receive() == ("h1", b"still here")
        nursery.cancel_scope.cancel()


async def test_keepalive_frees_the_connection_of_a_peer_that_is_gone(make_lab):
    lab = make_lab(hosts=2)
    async with trio.open_nursery() as nursery:
        _, b = await _connected_pair(lab, nursery)
        assert len(_accepted(lab, "h2", b)) == 1
        await trio.to_thread.run_sync(lab.cut, "h2")  # h1 vanishes as far as h2 can tell: no RST ever
        t_cut = trio.current_time()
        with trio.fail_after(20):  # idle 1 s + 5 probes 1 s apart, then dropped
            while _accepted(lab, "h2", b):
                await trio.sleep(0.5)
        print(f"h2 dropped the dead peer's connection {trio.current_time() - t_cut:.1f} s after the cut")
        await trio.to_thread.run_sync(lab.heal, "h2")
        nursery.cancel_scope.cancel()

"""The data-plane probe's raw ICMP socket (real kernel, loopback of a fresh namespace)."""

from __future__ import annotations

import ctypes
import os
import subprocess
import threading
import time
import uuid

import trio

from meshd.agent._liveness import Gossip, HostState, Liveness, Transition
from meshd.agent._probe import DataPlaneProbe, echo_reply_ident, echo_request, open_socket


def test_the_probe_socket_receives_echo_replies_but_not_the_requests_other_hosts_send():
    """Another host's probes of this host (echo requests, answered by the kernel) do not reach the
    agent's socket; replies do, and are told apart by identifier."""
    ns = f"pr{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)

        async def main() -> list[bytes]:
            here, there = os.open("/proc/self/ns/net", os.O_RDONLY), os.open(f"/run/netns/{ns}", os.O_RDONLY)
            try:
                _setns(there)
                try:
                    probe, other = open_socket(), trio.socket.socket(
                        trio.socket.AF_INET, trio.socket.SOCK_RAW, trio.socket.IPPROTO_ICMP)
                finally:
                    _setns(here)
            finally:
                os.close(here)
                os.close(there)
            got: list[bytes] = []
            with probe, other:
                for seq in range(5):  # "another agent" probes this host: requests with its identifier
                    await other.sendto(echo_request(0x4242, seq), ("127.0.0.1", 0))
                with trio.move_on_after(1.0):
                    while True:
                        await trio.lowlevel.wait_readable(probe)
                        got.append(probe.recvfrom(2048)[0])
            return got

        got = trio.run(main)
        # without the filter the socket also reads the 5 requests (ICMP type 8)
        assert len(got) == 5, [p[20] for p in got]
        assert all(echo_reply_ident(p) == 0x4242 for p in got)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def test_a_late_event_loop_does_not_withdraw_a_host_whose_kernel_answers():
    """The probing agent's loop stalls (a CPU-starved host) for longer than probe_timeout_s,
    again and again, while a probed host's agent is down but its kernel answers: the host stays
    agent-down (a stall is not silence). A VTEP with no route is still found silent and failed."""
    ns = f"pr{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        seen: list[Transition] = []
        live = Liveness(timeout_s=0.5, grace_s=3600.0)
        probe = DataPlaneProbe(live, 0.2, seen.extend)

        async def main() -> None:
            async with trio.open_nursery() as nursery:
                await nursery.start(probe.run)
                for name, vtep in (("h2", "127.0.0.1"), ("h3", "192.0.2.250")):  # h3: unreachable
                    live.on_gossip(name, vtep, Gossip.ALIVE, trio.current_time())
                    live.on_gossip(name, vtep, Gossip.SUSPECT, trio.current_time())
                probe.wake()
                await trio.sleep(0.5)
                for name, vtep in (("h2", "127.0.0.1"), ("h3", "192.0.2.250")):
                    seen.extend(live.on_gossip(name, vtep, Gossip.DEAD, trio.current_time()))
                probe.wake()
                await trio.sleep(0.7)
                for _ in range(6):
                    time.sleep(1.2)  # noqa: ASYNC251 (the point: the whole loop stalls, answers wait in the socket)
                    await trio.sleep(0.05)
                nursery.cancel_scope.cancel()

        errors: list[BaseException] = []

        def in_namespace() -> None:
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
            try:
                _setns(fd)  # this thread only
                trio.run(main)
            except BaseException as e:  # re-raised in the test's thread
                errors.append(e)
            finally:
                os.close(fd)

        worker = threading.Thread(target=in_namespace)
        worker.start()
        worker.join(60)
        assert not errors, errors
        assert live.state("h2") is HostState.AGENT_DOWN, [(t.name, t.new.value, t.reason) for t in seen]
        assert live.state("h3") is HostState.FAILED and probe.answers > 0
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def _setns(fd: int) -> None:
    if ctypes.CDLL(None, use_errno=True).setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
        raise OSError(ctypes.get_errno(), "setns")

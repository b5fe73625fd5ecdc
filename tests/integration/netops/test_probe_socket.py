"""The data-plane probe's raw ICMP socket (real kernel, loopback of a fresh namespace)."""

from __future__ import annotations

import ctypes
import os
import subprocess
import uuid

import trio

from meshd.agent._probe import echo_reply_ident, echo_request, open_socket


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
                        got.append((await probe.recvfrom(2048))[0])
            return got

        got = trio.run(main)
        # without the filter the socket also reads the 5 requests (ICMP type 8)
        assert len(got) == 5, [p[20] for p in got]
        assert all(echo_reply_ident(p) == 0x4242 for p in got)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def _setns(fd: int) -> None:
    if ctypes.CDLL(None, use_errno=True).setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
        raise OSError(ctypes.get_errno(), "setns")

"""Ports for benchmark servers: distinct, free, and out of the kernel's ephemeral range."""

import socket
from pathlib import Path

from tools.bench._ports import free_ports


def test_ports_are_distinct_bindable_and_below_the_ephemeral_range():
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = free_ports(64)
    assert len(set(ports)) == 64
    assert all(10_000 <= p < low for p in ports), ports
    held = []
    try:
        for p in ports:  # each one can be bound by the server it is for
            s = socket.socket()
            held.append(s)
            s.bind(("127.0.0.1", p))
    finally:
        for s in held:
            s.close()

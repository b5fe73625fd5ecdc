"""The agent's DNS part: it never writes the resolv.conf of a process that shares the host's /etc."""

from __future__ import annotations

import os

from meshd.agent._dns import _write_resolv_conf


def test_a_process_in_the_hosts_mount_namespace_keeps_its_resolv_conf() -> None:
    before = open("/etc/resolv.conf").read() if os.path.exists("/etc/resolv.conf") else None
    assert _write_resolv_conf(os.getpid(), "nameserver 10.0.0.1\n") is False
    after = open("/etc/resolv.conf").read() if os.path.exists("/etc/resolv.conf") else None
    assert before == after

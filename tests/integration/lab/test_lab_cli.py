"""`python -m tools.lab`: the commands an operator types."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tools.lab import Lab, unique_prefix

pytestmark = pytest.mark.root


def lab_cli(prefix: str, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "tools.lab", "--prefix", prefix, *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_exec_runs_in_the_host_and_passes_the_exit_code(lab3: Lab) -> None:
    out = lab_cli(lab3.prefix, "exec", "h2", "--", "ip", "-4", "-o", "addr", "show", "dev", "eth0")
    assert out.returncode == 0 and "192.0.2.12/24" in out.stdout
    assert lab_cli(lab3.prefix, "exec", "h1", "--", "sh", "-c", "exit 7").returncode == 7
    missing = lab_cli(lab3.prefix, "exec", "h7", "--", "true")
    assert missing.returncode == 1
    assert missing.stderr.startswith(f"error: lab host {lab3.prefix}-h7 does not exist: create it with")


def test_status_and_list_show_the_lab(lab3: Lab) -> None:
    lab3.cut("h3")
    st = lab_cli(lab3.prefix, "status")
    assert st.returncode == 0
    for text in ("192.0.2.11/24", "192.0.2.12/24", "192.0.2.13/24", f"{lab3.prefix}-h3", "cut"):
        assert text in st.stdout
    assert lab3.prefix in lab_cli(lab3.prefix, "list").stdout.split()


@pytest.mark.docker
def test_demo_without_wait_shows_hosts_and_containers_then_cleans_up() -> None:
    prefix = unique_prefix()
    try:
        out = lab_cli(prefix, "demo", "--no-wait")
    finally:
        Lab(prefix).down()
    assert out.returncode == 0, out.stderr
    assert out.stdout.count(f"{prefix}-h") >= 6  # 3 netns + 3 container names
    assert f"{prefix}-h3-demo" in out.stdout
    assert "down: 4 netns, 3 containers" in out.stdout
    assert [ns for ns in os.listdir("/run/netns") if ns.startswith(prefix)] == []

"""nftables through libnftables from a process that holds more than FD_SETSIZE descriptors.

libnftables select()s on its netlink socket; glibc aborts the process when that descriptor is
1024 or more. An agent of ~150 hosts holds that many (ZeroMQ), and died of it in the 150-agent
join storm (docs/scale.md). netops runs libnftables in a helper process then."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

import netops
from netops import NetopsError, _nft
from tests.integration.netops.conftest import ns_name, sh

pytestmark = pytest.mark.root

MANY_FDS = """
import os, resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, ({limit}, {limit}))
held = [os.open("/dev/null", os.O_RDONLY) for _ in range({fds})]
import netops
from netops import _nft
netops.nft_run("add table inet manyfds; add chain inet manyfds c")
print(_nft.needs_helper(), "manyfds" in netops.nft_run("list tables"), max(held))
"""


def _in_fresh_netns(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["unshare", "--net", sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)


def test_a_process_past_fd_setsize_runs_nft_and_lives():
    out = _in_fresh_netns(MANY_FDS.format(limit=20000, fds=1100))
    assert out.returncode == 0, (out.returncode, out.stderr[-2000:])  # -6 (SIGABRT) before the helper
    assert "FD_SETSIZE" not in out.stderr
    helper, listed, top = out.stdout.split()
    assert helper == "True" and listed == "True" and int(top) >= 1100


def test_a_process_limited_to_fd_setsize_calls_libnftables_itself():
    out = _in_fresh_netns(MANY_FDS.format(limit=1024, fds=100))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[:2] == ["False", "True"]


@pytest.fixture
def helper(monkeypatch):
    """The helper path whatever this runner's RLIMIT_NOFILE."""
    monkeypatch.setattr(_nft, "needs_helper", lambda: True)


def test_the_helper_runs_in_the_calling_threads_netns_and_reports_nft_errors(make_ns, helper):
    path = make_ns()
    got: list[str] = []

    def in_thread() -> None:
        with netops.in_netns(path):
            netops.nft_run("add table inet threadns")
            got.append(netops.nft_run("list tables"))

    t = threading.Thread(target=in_thread)
    t.start()
    t.join()
    assert "threadns" in got[0]
    assert "threadns" in sh("ip", "netns", "exec", ns_name(path), "nft", "list", "tables").stdout
    assert "threadns" not in netops.nft_run("list tables")  # not in the test's own netns
    assert "threadns" in netops.nft_run("list tables", path)
    with pytest.raises(NetopsError, match="apply nft script 'add rule inet nosuch c drop'"):
        netops.nft_run("add rule inet nosuch c drop", path)


def test_a_helper_that_died_is_started_again_and_a_call_it_dropped_fails_clearly(helper):
    netops.nft_run("list tables")
    proc = _nft._HELPER._proc
    assert proc is not None
    proc.kill()
    proc.wait()
    assert "table" in netops.nft_run("add table inet again; list tables")  # a new helper
    assert _nft._HELPER._proc is not None and _nft._HELPER._proc.pid != proc.pid
    # one that takes the request and exits without an answer (killed mid-call)
    _nft._HELPER._proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.readline()"],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    with pytest.raises(NetopsError, match=r"the nft helper process exited \(0\); the next call starts a new one"):
        netops.nft_run("list tables")
    netops.nft_run("delete table inet again")


def test_the_helper_outlives_sigterm_and_exits_when_its_parent_does():
    """systemd sends SIGTERM to the whole service: the helper stays for the agent's shutdown and
    goes when the agent's end of the pipe closes."""
    code = ("import os, signal, time; from netops import _nft; _nft.needs_helper = lambda: True; "
            "_nft.run('list tables'); p = _nft._HELPER._proc; os.kill(p.pid, signal.SIGTERM); "
            "time.sleep(0.3); _nft.run('list tables'); print(p.pid, _nft._HELPER._proc.pid)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.split()
    assert first == second  # the same helper answered after the SIGTERM
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _running(first):
        time.sleep(0.05)
    assert not _running(first), "the helper outlived its parent"


def _running(pid: str) -> bool:
    """The process exists and is no zombie (an orphan's reaping is up to PID 1)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False

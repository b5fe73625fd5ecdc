"""A DHCP server on the lab's LAN: dnsmasq in the underlay namespace, for dhcp networks.

The underlay bridge (``br0`` in ``<prefix>-ul``) is the lab's LAN; the server
gets an address of its own subnet on that bridge (``10.78.0.2/24`` by
default: a second subnet on the same L2 segment, apart from the hosts'
192.0.2.0/24) and serves a range of it. It runs in the underlay namespace, so
it never sees the root namespace's interfaces, and ``Lab.down()`` ends it with
every other process of the lab. DNS is off (``--port=0``); the lease file and
the log are under the caller's ``workdir``.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tools.lab import _net
from tools.lab._sh import LabError, run


@dataclass(frozen=True)
class DhcpLease:
    """One line of dnsmasq's lease file."""

    expires: int  #: epoch seconds
    mac: str
    ip: str


@dataclass(frozen=True)
class DhcpServer:
    """A running dnsmasq; see the module docstring."""

    prefix: str
    address: str  #: the server's address on the LAN
    subnet: str
    router: str
    lease_s: int
    lease_file: Path
    log_file: Path
    process: subprocess.Popen

    def leases(self) -> dict[str, DhcpLease]:
        """The lease file now, by MAC."""
        try:
            lines = self.lease_file.read_text().splitlines()
        except FileNotFoundError:
            return {}
        out = {}
        for line in lines:
            parts = line.split()
            if len(parts) >= 3 and parts[0].isdigit():
                out[parts[1].lower()] = DhcpLease(int(parts[0]), parts[1].lower(), parts[2])
        return out

    def log(self) -> str:
        try:
            return self.log_file.read_text()
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(prefix: str, workdir: Path, *, subnet: str = "10.78.0.0/24", lease_s: int = 120,
          first: int = 100, last: int = 199) -> DhcpServer:
    """Start dnsmasq on the lab's LAN serving ``subnet`` (host offsets ``first``..``last``; the server is
    offset 2, the router it announces offset 1); returns once it listens.

    Raises:
        LabError: dnsmasq is missing, the lab has no underlay, or dnsmasq did not start.
    """
    if shutil.which("dnsmasq") is None:
        raise LabError("dnsmasq is not installed: run tools/setup.sh (apt package dnsmasq-base)")
    if lease_s < 120:
        raise LabError(f"lease_s={lease_s}: dnsmasq's shortest lease is 120 s")
    net = ipaddress.IPv4Network(subnet)
    address, router = str(net.network_address + 2), str(net.network_address + 1)
    ns = _net.underlay_ns(prefix)
    if ns not in _net.list_netns():
        raise LabError(f"lab {prefix} has no underlay namespace {ns}: run `python -m tools.lab up` first")
    workdir.mkdir(parents=True, exist_ok=True)
    lease_file, log_file = workdir / "dnsmasq.leases", workdir / "dnsmasq.log"
    log_file.unlink(missing_ok=True)
    run(["ip", "-n", ns, "addr", "replace", f"{address}/{net.prefixlen}", "dev", _net.BRIDGE], what=f"netns {ns}")
    argv = ["ip", "netns", "exec", ns, "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--port=0",
            f"--interface={_net.BRIDGE}", "--bind-interfaces", "--user=root", "--no-ping", "--dhcp-authoritative",
            f"--dhcp-range={net.network_address + first},{net.network_address + last},{net.netmask},{lease_s}",
            f"--dhcp-option=3,{router}", f"--dhcp-leasefile={lease_file}", "--log-dhcp",
            f"--log-facility={log_file}", f"--pid-file={workdir / 'dnsmasq.pid'}"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while "sockets bound" not in (log_file.read_text() if log_file.exists() else ""):
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise LabError(f"dnsmasq exited with {proc.returncode} in {ns}: {err.strip()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise LabError(f"dnsmasq did not start in {ns} within 10 s; see {log_file}")
        time.sleep(0.05)
    return DhcpServer(prefix, address, subnet, router, lease_s, lease_file, log_file, proc)

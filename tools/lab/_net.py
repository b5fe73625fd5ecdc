"""Network namespaces of the lab: the underlay and its hosts.

Layout for prefix P and N hosts::

    netns P-ul     bridge br0; ports h1..hN (no address: a plain L2 switch)
    netns P-h<i>   lo up; eth0 = 192.0.2.(10+i)/24, the peer of port h<i>

Both ends of every veth are created directly inside the lab's namespaces
(`ip -n P-ul link add h1 type veth peer name eth0 netns P-h1`), so the root
namespace never holds a lab link, and deleting the namespaces deletes the
links. No namespace gets a default route: the only route in a host is the
connected 192.0.2.0/24, so nothing in the lab can reach outside it.

Everything is found again by name (`P-ul`, `P-h<i>`), never by a state file,
so `down` works after a crash.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import signal
import time
from dataclasses import dataclass

from tools.lab._sh import LabError, run

UNDERLAY_NET = ipaddress.ip_network("192.0.2.0/24")
HOST_IP_OFFSET = 10  # h<i> gets 192.0.2.(10+i)
MAX_HOSTS = 244  # h<i> = 192.0.2.(10+i): .254 is the last host address of the /24
BRIDGE = "br0"
HOST_DEV = "eth0"
NETNS_DIR = "/run/netns"
KILL_GRACE_S = 2.0
IPV6_OFF = ("net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
# The kernel's neighbour (ARP) table is one table for all namespaces, limited by the root
# namespace's gc_thresh3 (1,024 by default): 40 lab hosts that all talk to each other fill it
# (40 x 39 underlay entries), and then every new neighbour fails with ENOBUFS. A full lab of
# MAX_HOSTS hosts that all talk to each other needs 244 x 243 = 59,292. Raised, never lowered.
NEIGH_GC_THRESH = {"net.ipv4.neigh.default.gc_thresh1": 1024, "net.ipv4.neigh.default.gc_thresh2": 32768,
                   "net.ipv4.neigh.default.gc_thresh3": 65536}
# Every packet between lab hosts (veth into the bridge and out again) waits in a CPU's input
# backlog until that CPU's softirq runs; a full backlog drops it (net.core.netdev_max_backlog,
# 1,000 by default, for the whole machine). A real LAN has no such shared queue: with 200 agents
# saturating both cores, softirq ran late and the kernel dropped ~21 million lab packets
# (/proc/net/softnet_stat), TCP retransmitted them and TCP_USER_TIMEOUT (1 s) cut the connections.
# Raised, never lowered.
NETDEV_MAX_BACKLOG = {"net.core.netdev_max_backlog": 65536}
BRIDGE_NF_OFF = tuple(f"net.bridge.bridge-nf-call-{t}=0" for t in ("iptables", "ip6tables", "arptables"))


@dataclass(frozen=True, slots=True)
class LabHost:
    """One lab host: a network namespace attached to the underlay bridge."""

    name: str  # "h1"
    netns: str  # "<prefix>-h1"
    underlay_ip: str  # "192.0.2.11"
    underlay_dev: str  # "eth0", inside netns


def underlay_ns(prefix: str) -> str:
    return f"{prefix}-ul"


def host_name(index: int) -> str:
    return f"h{index}"


def host_index(name: str) -> int:
    m = re.fullmatch(r"h([1-9][0-9]*)", name)
    if not m:
        raise LabError(f"lab host name {name!r} is not h<N>: use a name like h1 (see `python -m tools.lab status`)")
    return int(m.group(1))


def host_ip(index: int) -> str:
    return str(UNDERLAY_NET.network_address + HOST_IP_OFFSET + index)


def make_host(prefix: str, index: int) -> LabHost:
    return LabHost(host_name(index), f"{prefix}-{host_name(index)}", host_ip(index), HOST_DEV)


def list_netns() -> list[str]:
    """Names of all named network namespaces (`ip netns list`)."""
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


def lab_netns(prefix: str) -> list[str]:
    """This lab's namespaces: `<prefix>-ul` and `<prefix>-h<i>`, nothing else."""
    pattern = re.compile(rf"{re.escape(prefix)}-(ul|h[1-9][0-9]*)")
    return [ns for ns in list_netns() if pattern.fullmatch(ns)]


def owned_netns(prefix: str) -> list[str]:
    """Everything `down` deletes: the lab's own namespaces plus the tenant-router
    namespaces that meshd agents run in this lab create (`<prefix>-r<N>-...`,
    the router prefix tools/cluster gives host hN)."""
    routers = re.compile(rf"{re.escape(prefix)}-r[0-9]+-[a-z0-9-]+")
    return lab_netns(prefix) + [ns for ns in list_netns() if routers.fullmatch(ns)]


def lab_prefixes() -> list[str]:
    """Prefixes of every lab on this machine (found by their underlay netns)."""
    return sorted(m.group(1) for ns in list_netns() if (m := re.fullmatch(r"([a-z][a-z0-9]*)-ul", ns)))


def discover_hosts(prefix: str) -> list[LabHost]:
    """The hosts of this lab that exist now, in index order."""
    found = []
    for ns in lab_netns(prefix):
        name = ns[len(prefix) + 1 :]
        if name != "ul":
            found.append(make_host(prefix, host_index(name)))
    return sorted(found, key=lambda h: host_index(h.name))


def _ip(ns: str, *args: str, check: bool = True, what: str = "") -> str:
    return run(["ip", "-n", ns, *args], check=check, what=what or f"netns {ns}").stdout


def _links(ns: str) -> set[str]:
    out = _ip(ns, "-j", "link", "show")
    return {link["ifname"] for link in json.loads(out or "[]")}


def _ensure_netns(ns: str) -> None:
    if ns not in list_netns():
        run(["ip", "netns", "add", ns], what=f"netns {ns}")
    # IPv4-only lab: no IPv6 DAD, router solicitations or MLD reports on any
    # interface made here later, so packet counters see only real traffic.
    run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", *IPV6_OFF], what=f"netns {ns}")
    _ip(ns, "link", "set", "lo", "up")


def raise_machine_limits() -> None:
    """Make the machine-wide neighbour table big enough for a full mesh of lab hosts, and the CPUs'
    input backlogs long enough that the lab's LAN does not drop what a busy machine delivers late."""
    for key, want in {**NEIGH_GC_THRESH, **NETDEV_MAX_BACKLOG}.items():
        path = "/proc/sys/" + key.replace(".", "/")
        with open(path) as f:
            have = int(f.read())
        if have < want:
            with open(path, "w") as f:
                f.write(str(want))


def ensure_underlay(prefix: str) -> None:
    """Create the underlay netns and its bridge, if missing."""
    raise_machine_limits()
    ns = underlay_ns(prefix)
    _ensure_netns(ns)
    if BRIDGE not in _links(ns):
        _ip(ns, "link", "add", BRIDGE, "type", "bridge", "stp_state", "0", "forward_delay", "0")
    _ip(ns, "link", "set", BRIDGE, "up")
    # A plain L2 switch: bridged frames skip iptables even when br_netfilter is loaded.
    run(["ip", "netns", "exec", ns, "sysctl", "-q", "-e", *BRIDGE_NF_OFF], what=f"netns {ns}")


def ensure_host(prefix: str, index: int) -> LabHost:
    """Create host h<index> and wire it to the underlay, if missing."""
    if not 1 <= index <= MAX_HOSTS:
        raise LabError(f"lab host index {index} out of range: use 1..{MAX_HOSTS} hosts")
    host, ul = make_host(prefix, index), underlay_ns(prefix)
    _ensure_netns(host.netns)
    if host.name not in _links(ul):
        if HOST_DEV in _links(host.netns):  # half-made by a crashed run
            _ip(host.netns, "link", "del", HOST_DEV)
        _ip(ul, "link", "add", host.name, "type", "veth", "peer", "name", HOST_DEV, "netns", host.netns)
    _ip(ul, "link", "set", host.name, "master", BRIDGE, "up")
    _ip(host.netns, "addr", "replace", f"{host.underlay_ip}/{UNDERLAY_NET.prefixlen}", "dev", HOST_DEV)
    _ip(host.netns, "link", "set", HOST_DEV, "up")
    return host


def host_addresses(ns: str) -> list[str]:
    """IPv4 addresses (CIDR) on the underlay device of a host netns."""
    out = _ip(ns, "-j", "-4", "addr", "show", "dev", HOST_DEV, check=False)
    addrs = []
    for link in json.loads(out or "[]"):
        addrs += [f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", [])]
    return addrs


def host_is_up(ns: str) -> bool:
    out = _ip(ns, "-j", "link", "show", "dev", HOST_DEV, check=False)
    links = json.loads(out or "[]")
    return bool(links) and "UP" in links[0].get("flags", [])


def netns_pids(ns: str) -> list[int]:
    """Processes running inside a netns (e.g. daemons started with `exec`)."""
    out = run(["ip", "netns", "pids", ns], check=False).stdout
    return [int(p) for p in out.split() if p.isdigit()]


def _kill_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass  # it exited meanwhile


def stop_processes(namespaces: list[str]) -> int:
    """Terminate every process inside these namespaces (TERM, then KILL)."""
    pids = [p for ns in namespaces for p in netns_pids(ns)]
    _kill_all(pids, signal.SIGTERM)
    deadline = time.monotonic() + KILL_GRACE_S
    while time.monotonic() < deadline and any(os.path.exists(f"/proc/{p}") for p in pids):
        time.sleep(0.05)
    _kill_all([p for ns in namespaces for p in netns_pids(ns)], signal.SIGKILL)
    return len(pids)


def root_links(prefix: str) -> list[str]:
    """Links in the root netns whose name carries the lab prefix."""
    out = run(["ip", "-j", "link", "show"]).stdout
    return [link["ifname"] for link in json.loads(out or "[]") if link["ifname"].startswith(f"{prefix}-")]


def delete_all(prefix: str) -> list[str]:
    """Delete every namespace and root-netns link of this lab; returns what was deleted."""
    namespaces = owned_netns(prefix)
    stop_processes(namespaces)
    for ns in namespaces:
        run(["ip", "netns", "del", ns], check=False)
    links = root_links(prefix)
    for link in links:
        run(["ip", "link", "del", link], check=False)
    leftover = owned_netns(prefix)
    if leftover:
        raise LabError(f"could not delete netns {', '.join(leftover)}: remove them with `ip netns del NAME`")
    return namespaces + [f"link {name}" for name in links]

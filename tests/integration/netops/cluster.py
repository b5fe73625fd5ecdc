"""Test helper: the desired state of every lab host from one cluster-wide picture.

This is what the agent does from the replicated state: endpoints placed on
hosts become local endpoints on their host and remote endpoints (with the
host's VTEP) everywhere else; the flood list of a network is the live hosts
that have one of its endpoints.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field

import netops
from meshd.reconcile import HostDesired, LocalEndpoint, Network, Policy, RemoteEndpoint, reconcile_once


def mac_of(ip: str, vni: int) -> str:
    a, b, c, d = (int(x) for x in ip.split("."))
    return f"02:{vni & 0xFF:02x}:{a:02x}:{b:02x}:{c:02x}:{d:02x}"


@dataclass
class Placement:
    key: str
    host: object  # LabHost
    vni: int
    ip: str
    netns: str
    ifname: str = "eth0"
    qos: netops.Qos | None = None


@dataclass
class Cluster:
    hosts: list
    networks: list[Network]
    endpoints: list[Placement] = field(default_factory=list)
    policies: list[Policy] = field(default_factory=list)
    dead: set[str] = field(default_factory=set)  # host names out of the member set

    def desired(self, host) -> HostDesired:
        with netops.in_netns(f"/run/netns/{host.netns}"):
            u = netops.underlay_for(host.underlay_ip)
        live = [h for h in self.hosts if h.name not in self.dead]
        vteps: dict[int, frozenset[str]] = {}
        for n in self.networks:
            vteps[n.vni] = frozenset(e.host.underlay_ip for e in self.endpoints
                                     if e.vni == n.vni and e.host in live and e.host.name != host.name)
        local = tuple(LocalEndpoint(key=e.key, vni=e.vni, netns=e.netns, ip=e.ip, mac=mac_of(e.ip, e.vni),
                                    ifname=e.ifname, qos=e.qos)
                      for e in self.endpoints if e.host.name == host.name)
        remote = tuple(RemoteEndpoint(vni=e.vni, ip=e.ip, mac=mac_of(e.ip, e.vni), vtep=e.host.underlay_ip)
                       for e in self.endpoints if e.host.name != host.name)
        return HostDesired(underlay_ip=host.underlay_ip, underlay_dev=u.dev, underlay_mtu=u.mtu,
                           networks=tuple(self.networks), local=local, remote=remote, vteps=vteps,
                           policies=tuple(self.policies), router_prefix=f"{host.netns}-r-")

    def reconcile(self, host):
        d = self.desired(host)
        with netops.in_netns(f"/run/netns/{host.netns}"):
            return reconcile_once(d, check_mtu=False)

    def reconcile_all(self) -> int:
        """One pass on every live host; returns the number of operations; fails on errors."""
        total = 0
        for h in self.hosts:
            if h.name in self.dead:
                continue
            r = self.reconcile(h)
            assert r.failures == (), r.failures
            total += len(r.applied)
        return total


def in_ns(netns: str, *argv: str, timeout: float = 10) -> subprocess.CompletedProcess[str]:
    """Run a command in a netns given by path (/run/netns/x or /proc/pid/ns/net)."""
    return subprocess.run(["nsenter", f"--net={netns}", *argv], capture_output=True, text=True, timeout=timeout)


def can_ping(netns: str, ip: str, *extra: str) -> bool:
    """True when any of two echo requests is answered (one lost packet on a loaded CI box is not a verdict)."""
    wait = () if any(e.startswith("-W") for e in extra) else ("-W1",)
    return in_ns(netns, "ping", "-n", "-c2", "-i0.2", *wait, *extra, ip).returncode == 0


def reach(c: Cluster) -> dict[str, bool]:
    """Who reaches whom (ping), for the pairs the policies are about."""
    ns = {e.key: e.netns for e in c.endpoints}
    ip = {e.key: e.ip for e in c.endpoints}
    pairs = ["a1>a2", "a1>b2", "a1>b1", "b2>a1", "b1>b2", "a1>gw"]
    out = {}
    for pair in pairs:
        src, dst = pair.split(">")
        target = "10.10.0.1" if dst == "gw" else ip[dst]
        out[pair] = can_ping(ns[src], target, "-W0.5")
    return out


ALL = {"a1>a2": True, "a1>b2": True, "a1>b1": True, "b2>a1": True, "b1>b2": True, "a1>gw": True}


def drop_counts(host) -> dict[str, int]:
    """Packets dropped per rule comment in the host's meshd table (first rule: "tag")."""
    out: dict[str, int] = {}
    objects = netops.list_table("bridge", "meshd", f"/run/netns/{host.netns}")
    for obj in objects:
        rule = obj.get("rule")
        if not rule:
            continue
        comment = rule.get("comment", "")
        name = "tag" if comment.startswith("meshd rules=") else comment
        packets = sum(e["counter"]["packets"] for e in rule["expr"] if "counter" in e)
        out[name] = out.get(name, 0) + packets
    return out

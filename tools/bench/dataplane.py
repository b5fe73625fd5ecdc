"""Report section "dataplane": iperf3 through meshd's tenant network beside the alternatives.

    sudo .venv/bin/python -m tools.bench.dataplane [--reps 3] [--quick]

Two real ``meshd agent`` processes run in a two-host lab (``tools.cluster``);
one tenant network is created through the scheduler API and three Docker
containers (``--network none``) are connected to it: two on h1, one on h2.
iperf3 (TCP, 1 and 4 streams) runs between network namespaces with
``nsenter``, the same binary for every path:

* ``meshd``: container on h1 → container on h2 through meshd's VXLAN;
* ``meshd_local``: container → container on h1 through meshd's bridge;
* ``meshd_flat``: container → container on h1 on a meshd flat network
  (macvlan, bridge mode, on h1's underlay veth: the same packet path as
  ``docker_macvlan``, built by meshd);
* ``meshd_flat_x``: container on h1 → container on h2 on that flat network
  (macvlan → the lab's LAN bridge → macvlan, no encapsulation);
* ``meshd_routed``: container on h1 → container on h2 through a meshd
  network of mode ``routed`` (direct routing on the shared underlay segment,
  no encapsulation; MTU 1450 like the VXLAN network);
* ``plain_routed``: the routing anchor, built by hand with iproute2: on each
  host a namespace with a veth (MTU 1450), its own 10.72.x.0/24 and a default
  route via the host, and a host route to the other host's /24 via that
  host's underlay address (no nftables rules, no /32 routes);
* ``underlay``: h1 → h2 on the lab's underlay veth pair and bridge (the
  reference: every figure is also a ratio to it, from the same repetition);
* ``handbuilt``: a VXLAN + bridge + veth built by hand with iproute2 between
  the same two hosts (``tools.bench.netops.hand_built``);
* ``docker_bridge``: two containers on Docker's default bridge (one host);
* ``docker_macvlan``: two containers on a Docker macvlan network (bridge
  mode, one host; parent: one end of a veth pair made for the run).

Within a repetition every path runs once per stream count, interleaved.
"""

from __future__ import annotations

import contextlib
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tools.bench._docker_nets import BENCH_LABEL, macvlan_network, macvlan_parent, remove_leftovers
from tools.bench._figures import Budget, Plot, Section, section_main
from tools.bench.netops import IperfError, iperf

PREFIX = "bd"
WORKDIR = "bench-dataplane"
IPERF_S, QUICK_IPERF_S = 5.0, 2.0
STREAMS = (1, 4)
MACVLAN_PARENT = macvlan_parent(PREFIX)
MACVLAN_SUBNET = "10.214.0.0/24"
TENANT_SUBNET = "10.80.0.0/24"
FLAT_SUBNET = "10.82.0.0/24"
ROUTED_SUBNET = "10.81.0.0/24"
PATHS = {
    "meshd": "meshd VXLAN, container → container across two hosts",
    "meshd_local": "meshd bridge, container → container on one host",
    "meshd_routed": "meshd routed (direct routing), container → container across two hosts",
    "plain_routed": "plain routing between namespaces (iproute2), across two hosts",
    "meshd_flat": "meshd flat (macvlan, bridge mode), container → container on one host",
    "meshd_flat_x": "meshd flat (macvlan), container → container across two hosts",
    "underlay": "raw underlay, host → host",
    "handbuilt": "hand-built VXLAN + bridge (iproute2), across two hosts",
    "docker_bridge": "Docker default bridge, container → container on one host",
    "docker_macvlan": "Docker macvlan (bridge mode), container → container on one host",
}


def estimate_s(budget: Budget) -> float:
    secs = QUICK_IPERF_S if budget.quick else IPERF_S
    return 40 + budget.reps * len(PATHS) * len(STREAMS) * (secs + 2.5)


def _netns_of(pid: int) -> str:
    return f"/proc/{pid}/ns/net"


class Paths:
    """Builds every path once; ``targets[kind] = (client netns, server netns, server ip)``."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.targets: dict[str, tuple[str, str, str]] = {}
        self.setup: dict[str, Any] = {}

    def build(self, stack: contextlib.ExitStack) -> None:
        from tools.cluster import Cluster
        from tools.lab import Lab

        lab = stack.enter_context(Lab(PREFIX))
        lab.down()  # leftovers of an interrupted run
        lab.up(2)
        cluster = Cluster(lab, self.workdir / WORKDIR, profile="lan")
        stack.callback(cluster.cleanup_workdir)  # after the agents stopped (callbacks run last first)
        stack.enter_context(cluster)
        self._meshd(lab, cluster)
        self._underlay_and_handbuilt(lab, stack)
        self._docker(stack)

    def _meshd(self, lab: Any, cluster: Any) -> None:
        from meshd.api import MsgType

        cluster.start("h1")
        cluster.start("h2", join=["192.0.2.11"])
        cluster.wait_members("h1", 2, timeout_s=60)
        cluster.query("h1", MsgType.NETWORK_CREATE, name="bench", subnet=TENANT_SUBNET)
        cluster.query("h1", MsgType.NETWORK_CREATE, name="benchrt", subnet=ROUTED_SUBNET, mode="routed")
        c1, c2, c3 = lab.container("h1", "ipa"), lab.container("h2", "ipb"), lab.container("h1", "ipc")
        r1, r2 = lab.container("h1", "ipr1"), lab.container("h2", "ipr2")
        ips = {}
        for c, network in ((c1, "bench"), (c2, "bench"), (c3, "bench"), (r1, "benchrt"), (r2, "benchrt")):
            with cluster.scheduler(c.host) as api:
                ips[c.name] = api.request(MsgType.ENDPOINT_CONNECT, container_id=c.id, network=network,
                                          host=c.host)["ip"]
        def ok(src, ip) -> bool:
            return subprocess.run(["nsenter", "-t", str(src.pid), "-n", "ping", "-c1", "-W1", ip],
                                  capture_output=True).returncode == 0

        cluster.wait("meshd containers reach each other",
                     lambda: ok(c1, ips["ipb"]) and ok(c1, ips["ipc"]) and ok(r1, ips["ipr2"]), timeout_s=60)
        self.targets["meshd"] = (_netns_of(c1.pid), _netns_of(c2.pid), ips["ipb"])
        self.targets["meshd_local"] = (_netns_of(c1.pid), _netns_of(c3.pid), ips["ipc"])
        self.targets["meshd_routed"] = (_netns_of(r1.pid), _netns_of(r2.pid), ips["ipr2"])
        self.setup["meshd"] = {"subnet": TENANT_SUBNET, "mtu": 1450, "profile": "lan"}
        self.setup["meshd_routed"] = {"subnet": ROUTED_SUBNET, "mtu": 1450, "mode": "routed"}
        self._meshd_flat(lab, cluster, ok)

    def _meshd_flat(self, lab: Any, cluster: Any, ok: Any) -> None:
        from meshd.api import MsgType

        cluster.query("h1", MsgType.NETWORK_CREATE, name="benchflat", subnet=FLAT_SUBNET, mode="flat")
        f1, f2, f3 = lab.container("h1", "fla"), lab.container("h1", "flb"), lab.container("h2", "flc")
        ips = {}
        for c in (f1, f2, f3):
            with cluster.scheduler(c.host) as api:
                ips[c.name] = api.request(MsgType.ENDPOINT_CONNECT, container_id=c.id, network="benchflat",
                                          host=c.host)["ip"]
        cluster.wait("flat containers reach each other", lambda: ok(f1, ips["flb"]) and ok(f1, ips["flc"]),
                     timeout_s=60)
        self.targets["meshd_flat"] = (_netns_of(f1.pid), _netns_of(f2.pid), ips["flb"])
        self.targets["meshd_flat_x"] = (_netns_of(f1.pid), _netns_of(f3.pid), ips["flc"])
        net = next(n for n in cluster.query("h1", MsgType.NETWORK_LIST)["networks"] if n["name"] == "benchflat")
        self.setup["meshd_flat"] = {"subnet": FLAT_SUBNET, "mtu": net["mtu"],
                                    "parent": "each lab host's underlay veth"}

    def _underlay_and_handbuilt(self, lab: Any, stack: contextlib.ExitStack) -> None:
        from tools.bench.netops import Bench, hand_built

        b = Bench(lab, 0)
        stack.callback(b.cleanup)
        _c1, _c2, m1, m2, p1, p2 = b.make_ns(6)
        hand_built(b, m1, m2)
        plain_routed(b, p1, p2)
        h1, h2 = lab.hosts()
        self.targets["underlay"] = (f"/run/netns/{h1.netns}", f"/run/netns/{h2.netns}", h2.underlay_ip)
        self.targets["handbuilt"] = (m1, m2, "10.71.0.3")
        self.targets["plain_routed"] = (p1, p2, "10.72.2.2")

    def _docker(self, stack: contextlib.ExitStack) -> None:
        from tools.lab import IMAGE, ensure_image
        from tools.lab import docker_client as client

        cli = client()
        ensure_image(cli)
        _remove_docker_leftovers(cli)
        stack.callback(_remove_docker_leftovers, cli)
        macvlan = macvlan_network(cli, PREFIX, MACVLAN_SUBNET)
        for kind, network in (("docker_bridge", "bridge"), ("docker_macvlan", macvlan)):
            pair = [cli.containers.run(IMAGE, ["sleep", "3600"], name=f"{PREFIX}-{kind}-{i}", detach=True,
                                       network=network, labels={BENCH_LABEL: PREFIX}) for i in (1, 2)]
            for c in pair:
                c.reload()
            ip = pair[1].attrs["NetworkSettings"]["Networks"][network]["IPAddress"]
            self.targets[kind] = (_netns_of(pair[0].attrs["State"]["Pid"]),
                                  _netns_of(pair[1].attrs["State"]["Pid"]), ip)
        self.setup["docker_macvlan"] = {"parent": f"veth {MACVLAN_PARENT} (its peer unconnected)",
                                        "subnet": MACVLAN_SUBNET}


def plain_routed(b: Any, p1: str, p2: str) -> None:
    """The routing anchor: per host a namespace on a veth with its own /24, and a route to the other's."""
    for i, h, path, other in ((1, b.h1, p1, b.h2), (2, b.h2, p2, b.h1)):
        ns, cns = h.netns, path.rsplit("/", 1)[1]
        script = f"""link add hp0 type veth peer name eth0 netns {cns}
link set hp0 mtu 1450 up
addr add 10.72.{i}.1/24 dev hp0
route add 10.72.{3 - i}.0/24 via {other.underlay_ip} dev eth0
"""
        subprocess.run(["ip", "-n", ns, "-batch", "-"], input=script, text=True, check=True)
        subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1"], check=True)
        inside = f"""addr add 10.72.{i}.2/24 dev eth0
link set eth0 mtu 1450 up
route add default via 10.72.{i}.1
"""
        subprocess.run(["ip", "-n", cns, "-batch", "-"], input=inside, text=True, check=True)


def _remove_docker_leftovers(cli: Any) -> None:
    remove_leftovers(cli, PREFIX, (f"{PREFIX}-macvlan",))


@contextlib.contextmanager
def _paths(budget: Budget) -> Iterator[Paths]:
    with contextlib.ExitStack() as stack:
        paths = Paths(Path(budget.workdir))
        paths.build(stack)
        yield paths


def run(budget: Budget) -> Section:
    seconds = QUICK_IPERF_S if budget.quick else IPERF_S
    section = Section(
        "dataplane", "Data plane: iperf3 through meshd beside the underlay, a hand-built VXLAN, plain routing "
        "and Docker",
        method=__doc__.split("\n\n", 2)[2].strip() + (
            f"\n\nEach iperf3 run is TCP for {seconds:.0f} s after a 1 s omitted warm-up (`-O 1`); the figure "
            "is the receiver's rate. Ratios divide by the underlay run of the same repetition and stream "
            "count. All paths share the same two CPU cores, so a path's figure is bounded by the CPU cost "
            "of its packet path, which is what this compares."),
        setup={"iperf_s": seconds, "streams": list(STREAMS), "reps": budget.reps},
    )
    try:
        with _paths(budget) as paths:
            section.setup.update(paths.setup)
            for _rep in range(budget.reps):
                for streams in STREAMS:
                    _one_round(section, paths, streams, seconds)
    except Exception as exc:
        section.error = f"{type(exc).__name__}: {exc}"
    section.plots.append(_plot(section))
    return section


def _one_round(section: Section, paths: Paths, streams: int, seconds: float) -> None:
    rates: dict[str, float] = {}
    for kind, (cli, srv, ip) in paths.targets.items():
        rates[kind] = _iperf_or_nan(section, cli, srv, ip, streams, seconds)
        section.figure(f"dataplane.{kind}.p{streams}.gbps", f"{PATHS[kind]}, {streams} stream(s)", "Gbit/s",
                       anchor="" if kind == "underlay" else "raw underlay, same repetition",
                       ratio_to="" if kind == "underlay" else f"dataplane.underlay.p{streams}.gbps",
                       ).add(rates[kind])
    for kind, rate in rates.items():
        if kind != "underlay":
            section.figure(f"dataplane.{kind}.p{streams}.ratio", f"{PATHS[kind]}, {streams} stream(s) / underlay",
                           "ratio").add(rate / rates["underlay"])


def _iperf_or_nan(section: Section, cli: str, srv: str, ip: str, streams: int, seconds: float) -> float:
    for attempt in (1, 2):
        try:
            return iperf(cli, srv, ip, streams, seconds)
        except IperfError as exc:
            section.notes.append(f"attempt {attempt}: {exc}")
    return math.nan


def _plot(section: Section) -> Plot:
    lines: dict[str, list[list[Any]]] = {}
    for streams in STREAMS:
        xs, ys = [], []
        for kind in PATHS:
            f = section.get(f"dataplane.{kind}.p{streams}.gbps")
            if f is not None:
                xs.append(kind)
                ys.append(f.median)
        lines[f"{streams} stream(s)"] = [xs, ys]
    return Plot("dataplane_gbps", "iperf3 throughput by path (median)", "path", "Gbit/s", lines, kind="bar")


def main(argv: list[str] | None = None) -> int:
    return section_main(run, __doc__, f"{QUICK_IPERF_S:.0f} s iperf3 runs instead of {IPERF_S:.0f} s", argv)


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark of the per-host data plane (netops + reconcile): prints one JSON line.

    sudo .venv/bin/python -m tools.bench.netops                 # 1,000 endpoints, iperf3 5 s (~1-2 min)
    sudo .venv/bin/python -m tools.bench.netops --endpoints 200 --iperf-s 2

Runs in a private two-host lab (tools.lab, unique prefix, torn down at the
end). Containers are bare network namespaces (a Docker container's netns is
the same kernel object; starting 1,000 containers would measure Docker):

* ``attach_ms`` p50/p99, ``attach_first_ms`` / ``attach_last_ms`` (mean of
  the first/last 10) and their ratio: one endpoint = veth pair into the
  netns, address, MTU, default route, TBF, and its nft set element (ICC-off
  set), i.e. ``netops.apply([AttachEndpoint, NftScript])`` — goals p50 <= 5,
  p99 <= 20, last/first <= 1.5;
* ``detach_ms`` p50: delete the host veth and the set element;
* ``peer_join_ms`` / ``peer_loss_ms``: 10 tenants x 100 local endpoints;
  one remote host with one endpoint per tenant joins (flood entry, FDB self
  + master, neighbour: 40 ops) / leaves — the apply (goal <= 2); the
  planning of the whole host that found them is ``*_plan_ms``;
* ``rebuild_3000_ms``: 3,000 FDB/neighbour operations from scratch (<= 100);
* ``noop_pass_ms``: a full reconcile pass (dump, plan, nothing to apply) at
  1,000 endpoints (goal <= 200);
* ``iperf3``: container to container across the two lab hosts through the
  meshd tunnel, a hand-built VXLAN+bridge (iproute2 commands) and the raw
  underlay, 1 and 4 streams, same run; ``*_ratio`` = tunnel / underlay.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import netops
from meshd.reconcile import (
    NFT_FAMILY,
    NFT_TABLE,
    HostDesired,
    LocalEndpoint,
    Network,
    Policy,
    RemoteEndpoint,
    plan,
    reconcile_once,
)
from tools.lab import Lab, unique_prefix

VNI = 4000


def sh(*argv: str, check: bool = True) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=check).stdout


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Bench:
    def __init__(self, lab: Lab, n: int) -> None:
        self.lab, self.n = lab, n
        self.h1, self.h2 = lab.hosts()
        self.ns_prefix = f"{lab.prefix}-c"
        self.made: list[str] = []
        with netops.in_netns(self.host_path(self.h1)):
            self.u = netops.underlay_for(self.h1.underlay_ip)

    @staticmethod
    def host_path(h) -> str:
        return f"/run/netns/{h.netns}"

    def make_ns(self, count: int) -> list[str]:
        self.serial = getattr(self, "serial", 0)
        names = [f"{self.ns_prefix}{i}" for i in range(self.serial, self.serial + count)]
        self.serial += count
        script = "".join(f"netns add {n}\n" for n in names)
        subprocess.run(["ip", "-batch", "-"], input=script, text=True, check=True)
        self.made += names
        return [f"/run/netns/{n}" for n in names]

    def cleanup(self) -> None:
        script = "".join(f"netns del {n}\n" for n in self.made)
        subprocess.run(["ip", "-force", "-batch", "-"], input=script, text=True, capture_output=True)
        self.made = []

    def desired(self, local, remote=(), vteps=None, nets=None) -> HostDesired:
        nets = nets or (Network(vni=VNI, tenant="bench", subnet="10.200.0.0/16", gateway="10.200.0.1"),)
        return HostDesired(underlay_ip=self.h1.underlay_ip, underlay_dev=self.u.dev, underlay_mtu=self.u.mtu,
                           networks=tuple(nets), local=tuple(local), remote=tuple(remote), vteps=vteps or {},
                           policies=(Policy(kind="isolate", a=VNI),), router_prefix=f"{self.h1.netns}-r-")


def endpoint(i: int, path: str, vni: int = VNI, net: int = 200) -> LocalEndpoint:
    hi, lo = divmod(i + 2, 250)
    return LocalEndpoint(key=f"c{vni}-{i}", vni=vni, netns=path, ip=f"10.{net}.{hi}.{lo + 2}",
                         mac=f"02:00:{vni >> 8 & 0xFF:02x}:{vni & 0xFF:02x}:{hi:02x}:{lo + 2:02x}",
                         qos=netops.Qos(100_000))


def attach_detach(b: Bench) -> dict:
    paths = b.make_ns(b.n)
    with netops.in_netns(b.host_path(b.h1)):
        base = b.desired([])
        assert reconcile_once(base, check_mtu=False).failures == ()
        first = plan(b.desired([endpoint(0, paths[0])]), netops.dump_owned(base.router_prefix),
                     netops.dump_table(NFT_FAMILY, NFT_TABLE))
        assert netops.apply([o for o in first if not isinstance(o, netops.AttachEndpoint)]).errors == ()
        times = []
        for i, path in enumerate(paths):
            ep = endpoint(i, path)
            op = netops.AttachEndpoint(ep.host_if, netops.bridge_name(VNI), path, "eth0", ep.ip, 16, ep.mac,
                                       b.u.overlay_mtu, "10.200.0.1", ep.qos, f"bench {i}")
            elem = netops.NftScript(f'add element bridge meshd icc_off {{ "{ep.host_if}" . {ep.ip} }}')
            t = time.perf_counter()
            report = netops.apply([op, elem])
            times.append((time.perf_counter() - t) * 1000)
            report.raise_first()
        detach = []
        for i, path in enumerate(paths[: min(100, b.n)]):
            ep = endpoint(i, path)
            elem = netops.NftScript(f'delete element bridge meshd icc_off {{ "{ep.host_if}" . {ep.ip} }}')
            t = time.perf_counter()
            netops.apply([netops.DeleteLink(ep.host_if), elem]).raise_first()
            detach.append((time.perf_counter() - t) * 1000)
    b.cleanup()  # the containers go (and their veths with them) before the next scenario
    first10, last10 = statistics.mean(times[:10]), statistics.mean(times[-10:])
    return {"attach_ms_p50": round(pct(times, 0.5), 2), "attach_ms_p99": round(pct(times, 0.99), 2),
            "attach_first_ms": round(first10, 2), "attach_last_ms": round(last10, 2),
            "attach_last_over_first": round(last10 / first10, 2), "detach_ms_p50": round(pct(detach, 0.5), 2)}


def tenants_scenario(b: Bench) -> dict:
    """10 tenants x 100 endpoints on h1; a peer with one endpoint per tenant joins, then leaves."""
    nets = tuple(Network(vni=5000 + t, tenant=f"t{t}", subnet=f"10.{100 + t}.0.0/16") for t in range(10))
    paths = b.make_ns(1000)
    local = [endpoint(i % 100, paths[i], vni=5000 + i // 100, net=100 + i // 100) for i in range(1000)]
    peer = [RemoteEndpoint(vni=5000 + t, ip=f"10.{100 + t}.9.9", mac=f"02:99:00:00:00:{t:02x}", vtep="192.0.2.99")
            for t in range(10)]
    out = {}
    with netops.in_netns(b.host_path(b.h1)):
        sub = b.desired([], nets=nets)
        alone = _replace(sub, local=tuple(local), policies=())
        t = time.perf_counter()
        reconcile_once(alone, check_mtu=False)
        out["build_1000_endpoints_s"] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        noop = reconcile_once(alone, check_mtu=False)
        out["noop_pass_ms"] = round((time.perf_counter() - t) * 1000, 1)
        assert noop.applied == (), noop.applied[:3]
        joined = _replace(alone, remote=tuple(peer), vteps={n.vni: frozenset({"192.0.2.99"}) for n in nets})
        out["peer_join_plan_ms"], out["peer_join_ms"], out["peer_join_ops"] = _timed_delta(alone, joined)
        out["peer_loss_plan_ms"], out["peer_loss_ms"], _ = _timed_delta(joined, alone)
        t = time.perf_counter()
        netops.dump_owned(alone.router_prefix)
        out["dump_1000_ms"] = round((time.perf_counter() - t) * 1000, 1)
        t = time.perf_counter()
        netops.dump_table(NFT_FAMILY, NFT_TABLE)
        out["nft_dump_ms"] = round((time.perf_counter() - t) * 1000, 1)
        out["noop_pass_endpoints"] = len(local)
    return out


def _replace(d: HostDesired, **kw) -> HostDesired:
    import dataclasses

    return dataclasses.replace(d, **kw)


def _timed_delta(before: HostDesired, after: HostDesired) -> tuple[float, float, int]:
    """Plan from a dump taken before; time the plan and the apply of the difference separately."""
    actual = netops.dump_owned(before.router_prefix)
    nft = netops.dump_table(NFT_FAMILY, NFT_TABLE)
    t = time.perf_counter()
    ops = plan(after, actual, nft)
    t1 = time.perf_counter()
    netops.apply(ops, {name: link.index for name, link in actual.links.items()}).raise_first()
    t2 = time.perf_counter()
    return round((t1 - t) * 1000, 2), round((t2 - t1) * 1000, 2), len(ops)


def rebuild_3000(b: Bench) -> dict:
    """3,000 FDB/neighbour ops (10 tunnels x 75 remote endpoints x 4) applied from scratch."""
    ops: list[netops.Op] = []
    for t in range(10):
        vx = netops.vxlan_name(6000 + t)
        for e in range(75):
            mac, vtep = f"02:77:00:{t:02x}:00:{e:02x}", f"192.0.2.{100 + e % 50}"
            ops += [netops.FdbEntry(True, vx, mac, vtep), netops.FdbEntry(True, vx, mac, None),
                    netops.NeighEntry(True, vx, f"10.77.{t}.{e + 2}", mac),
                    netops.FdbEntry(True, vx, "00:00:00:00:00:00", vtep)]
    setup: list[netops.Op] = []
    for t in range(10):
        br, vx = netops.bridge_name(6000 + t), netops.vxlan_name(6000 + t)
        setup += [netops.EnsureBridge(br, 1450), netops.EnsureVxlan(vx, 6000 + t, b.h1.underlay_ip, b.u.dev, br, 1450)]
    with netops.in_netns(b.host_path(b.h1)):
        netops.apply(setup).raise_first()
        t0 = time.perf_counter()
        netops.apply(ops).raise_first()
        ms = (time.perf_counter() - t0) * 1000
        netops.apply([netops.DeleteLink(netops.vxlan_name(6000 + t)) for t in range(10)]
                     + [netops.DeleteLink(netops.bridge_name(6000 + t)) for t in range(10)]).raise_first()
    return {"rebuild_ops": len(ops), "rebuild_3000_ms": round(ms, 1)}


class IperfError(RuntimeError):
    """One iperf3 run produced no figure."""


def iperf(client_ns: str, server_ns: str, ip: str, streams: int, seconds: float) -> float:
    """Gbit/s received from ``client_ns`` to ``server_ns`` (netns paths) at ``ip``."""
    server = subprocess.Popen(["nsenter", f"--net={server_ns}", "iperf3", "-s", "-1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _attempt in range(50):  # until the server listens (up to ~5 s on a loaded machine)
            out = subprocess.run(["nsenter", f"--net={client_ns}", "iperf3", "-c", ip, "-P", str(streams),
                                  "-t", str(seconds), "-O", "1", "-J"], capture_output=True, text=True)
            if out.returncode == 0:
                break
            time.sleep(0.1)
        try:  # a run can end "successfully" with an error report and no totals
            return json.loads(out.stdout)["end"]["sum_received"]["bits_per_second"] / 1e9
        except (ValueError, KeyError) as exc:
            err = out.stdout[-300:] if isinstance(exc, ValueError) else json.loads(out.stdout).get("error", "")
            raise IperfError(
                f"iperf3 to {ip} ({streams} stream(s)) gave no result: {err} {out.stderr[-200:]}") from None
    finally:
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def throughput(b: Bench, seconds: float, rounds: int = 1) -> dict:
    """meshd tunnel vs hand-built VXLAN vs raw underlay, 1 and 4 streams, same run."""
    c1, c2, m1, m2 = b.make_ns(4)
    net = Network(vni=7000, tenant="tp", subnet="10.70.0.0/24")
    for h, path, ip, other in ((b.h1, c1, "10.70.0.2", b.h2), (b.h2, c2, "10.70.0.3", b.h1)):
        peer_ip = "10.70.0.3" if ip.endswith(".2") else "10.70.0.2"
        with netops.in_netns(b.host_path(h)):
            u = netops.underlay_for(h.underlay_ip)
            d = HostDesired(underlay_ip=h.underlay_ip, underlay_dev=u.dev, underlay_mtu=u.mtu, networks=(net,),
                            local=(LocalEndpoint(key=f"tp{ip}", vni=7000, netns=path, ip=ip, mac=_mac(ip)),),
                            remote=(RemoteEndpoint(vni=7000, ip=peer_ip, mac=_mac(peer_ip), vtep=other.underlay_ip),),
                            vteps={7000: frozenset({other.underlay_ip})}, router_prefix=f"{h.netns}-r-")
            assert reconcile_once(d, check_mtu=False).failures == ()
    hand_built(b, m1, m2)
    runs: dict[str, list[float]] = {}
    targets = {"meshd": (c1, c2, "10.70.0.3"), "handbuilt": (m1, m2, "10.71.0.3"),
               "underlay": (b.host_path(b.h1), b.host_path(b.h2), b.h2.underlay_ip)}
    for _ in range(rounds):  # interleaved, so load changes hit all three alike
        for streams in (1, 4):
            for kind, (cli, srv, ip) in targets.items():
                runs.setdefault(f"{kind}_gbps_{streams}", []).append(iperf(cli, srv, ip, streams, seconds))
    out = {k: round(statistics.median(v), 3) for k, v in runs.items()}
    for streams in (1, 4):
        for kind in ("meshd", "handbuilt"):
            out[f"{kind}_ratio_{streams}"] = round(out[f"{kind}_gbps_{streams}"] / out[f"underlay_gbps_{streams}"], 3)
    out["iperf_rounds"] = rounds
    return out


def _mac(ip: str) -> str:
    return "02:70:00:00:00:" + f"{int(ip.split('.')[-1]):02x}"


def hand_built(b: Bench, m1: str, m2: str) -> None:
    """The reference: VXLAN + bridge + veth by hand with iproute2, as a tutorial would."""
    for h, path, ip, other in ((b.h1, m1, "10.71.0.2", b.h2), (b.h2, m2, "10.71.0.3", b.h1)):
        ns, cns = h.netns, path.rsplit("/", 1)[1]
        script = f"""link add hbr type bridge
link set hbr up
link add hvx type vxlan id 7100 local {h.underlay_ip} dev eth0 dstport 4789 nolearning
link set hvx master hbr up
link add hv0 type veth peer name eth0 netns {cns}
link set hv0 master hbr up
"""
        subprocess.run(["ip", "-n", ns, "-batch", "-"], input=script, text=True, check=True)
        sh("ip", "-n", cns, "addr", "add", f"{ip}/24", "dev", "eth0")
        sh("ip", "-n", cns, "link", "set", "eth0", "mtu", "1450", "up")
        sh("bridge", "-n", ns, "fdb", "append", "00:00:00:00:00:00", "dev", "hvx", "dst", other.underlay_ip)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--endpoints", type=int, default=1000, help="endpoints attached one by one (default 1000)")
    parser.add_argument("--iperf-s", type=float, default=5.0, help="seconds per iperf3 run (0: skip)")
    parser.add_argument("--iperf-only", action="store_true", help="only the throughput comparison")
    parser.add_argument("--iperf-rounds", type=int, default=1, help="repeat the comparison; medians reported")
    args = parser.parse_args(argv)
    lab = Lab(unique_prefix("b"))
    lab.up(2)
    b = Bench(lab, args.endpoints)
    result: dict = {"bench": "netops", "endpoints": args.endpoints}
    try:
        if not args.iperf_only:
            result |= attach_detach(b)
            result |= rebuild_3000(b)
            result |= tenants_scenario(b)
        if args.iperf_s > 0:
            result |= throughput(b, args.iperf_s, args.iperf_rounds)
    finally:
        for h in lab.hosts():
            netops.remove_routers(f"{h.netns}-r-")
        b.cleanup()
        lab.down()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

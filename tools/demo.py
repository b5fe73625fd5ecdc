"""The meshd demo: three hosts on this machine, two tenants, containers, ping, `meshd top`.

    sudo .venv/bin/python -m tools.demo            # ends in the live status view of h1 (Ctrl-C ends)
    sudo .venv/bin/python -m tools.demo --once     # one status frame, then tear down (scripts, CI)
    sudo .venv/bin/python -m tools.demo --keep     # leave everything running; `down` removes it
    sudo .venv/bin/python -m tools.demo down

Steps: a 3-host lab (network namespaces on a 192.0.2.0/24 underlay); `meshd agent`
in each (h1 bootstraps, h2 and h3 join through h1); two tenant networks with the
same subnet (blue for tenant a, red for tenant b); a Docker container (--network
none) per host, connected through the scheduler API of *different* hosts; a ping
inside tenant a across hosts (answers) and one towards tenant b's address
(blocked); then `meshd top` of h1.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

from meshd.api import MsgType
from tools.cluster import Cluster
from tools.lab import Lab, ensure_image

PREFIX = "mdemo"
WORKDIR = Path("/tmp/meshd-demo")
console = Console()


def step(text: str) -> None:
    console.print(f"\n[bold cyan]==>[/] {text}")


def ping(container_id: str, ip: str) -> bool:
    r = subprocess.run(["docker", "exec", container_id, "ping", "-c", "2", "-W", "1", ip],
                       capture_output=True, text=True, timeout=30)
    return r.returncode == 0


def run(once: bool, keep: bool) -> int:
    lab = Lab(PREFIX)
    lab.down()  # a previous demo that was not torn down
    ensure_image()
    cluster = Cluster(lab, WORKDIR)
    try:
        step("3 hosts: network namespaces on one underlay bridge (192.0.2.0/24)")
        for h in lab.up(3):
            console.print(f"   {h.name}  {h.netns:10}  {h.underlay_ip}")
        step("meshd agent on each host: h1 bootstraps the cluster, h2 and h3 join through h1")
        cluster.start("h1")
        cluster.wait("h1 to lead", lambda: cluster.query("h1", MsgType.QUERY_STATUS)["raft"]["role"] == "leader")
        cluster.start("h2", join=["192.0.2.11"])
        cluster.start("h3", join=["192.0.2.11"])
        members = cluster.wait_members("h1", 3)
        console.print(f"   members seen by h1: {members}")
        voters = cluster.wait("3 Raft voters", lambda: len(
            v := cluster.query("h1", MsgType.QUERY_STATUS)["raft"]["voters"]) == 3 and v, timeout_s=30)
        console.print(f"   Raft voters (autopilot): {voters}")

        step("two tenants, same subnet: blue (tenant a) and red (tenant b), both 10.1.0.0/24")
        with cluster.scheduler("h2") as api:  # any host takes any request
            for name, tenant in (("blue", "a"), ("red", "b")):
                net = api.request(MsgType.NETWORK_CREATE, name=name, tenant=tenant, subnet="10.1.0.0/24")
                console.print(f"   {name}: vni {net['vni']}, gateway {net['gateway']}")

        step("a Docker container per host (--network none), connected through the scheduler API")
        # tenant b's container asks for 10.1.0.30: an address tenant a does not use
        plan = [("h1", "web", "blue", "h1", None), ("h2", "db", "blue", "h3", None),
                ("h3", "other", "red", "h2", "10.1.0.30")]
        eps = {}
        for host, name, network, via, ip in plan:
            c = lab.container(host, name)
            with cluster.scheduler(via) as api:
                ep = api.request(MsgType.ENDPOINT_CONNECT, container_id=c.id, network=network, host=host,
                                 bandwidth_kbit=100_000, burst_bytes=128 * 1024, latency_ms=50,
                                 **({"ip": ip} if ip else {}))
            eps[name] = (c, ep)
            console.print(f"   {name:6} on {host} in {network:5} -> {ep['ip']}  {ep['mac']}  "
                          f"(asked through {via}'s API)")
        web, db, other = eps["web"][0], eps["db"][1], eps["other"][1]
        cluster.wait("interfaces up", lambda: ping(web.id, db["ip"]), timeout_s=30)

        step("ping inside tenant a, h1 -> h2 (VXLAN, FDB and ARP programmed by meshd)")
        ok = ping(web.id, db["ip"])
        console.print(f"   web -> db {db['ip']}: " + ("[green]answers[/]" if ok else "[red]no answer[/]"))
        step("ping from tenant a to tenant b's address (different VNI: must not cross)")
        crossed = ping(web.id, other["ip"])
        console.print(f"   web -> other {other['ip']}: " + ("[red]ANSWERED[/]" if crossed else "[green]blocked[/]"))
        if not ok or crossed:
            console.print("[red]the demo's checks failed; agent logs are under " + str(WORKDIR) + "[/]")
            return 1

        step("meshd top on h1" + ("" if once or not sys.stdout.isatty() else "  (Ctrl-C to quit)"))
        time.sleep(1.5)  # one round of endpoint counters
        top = [sys.executable, "-m", "meshd", "top", "--run-dir", str(cluster.agents["h1"].run_dir)]
        if once or not sys.stdout.isatty():
            top.append("--once")
        subprocess.run(top)
        if keep:
            console.print(f"\nleft running; remove it with: {sys.executable} -m tools.demo down")
            cluster.agents.clear()  # keep the agents alive
        return 0
    finally:
        if not keep:
            step("tearing down")
            cluster.down()
            lab.down()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", choices=("run", "down"), default="run")
    parser.add_argument("--once", action="store_true", help="print one status frame instead of the live view")
    parser.add_argument("--keep", action="store_true", help="leave the lab and agents running")
    args = parser.parse_args()
    if args.command == "down":
        report = Lab(PREFIX).down()
        console.print(f"removed {len(report.removed_netns)} namespaces, {report.removed_containers} containers")
        return 0
    return run(args.once, args.keep)


if __name__ == "__main__":
    sys.exit(main())

"""Report section "attach": scheduler request → interface up, beside Docker's own start cost; agent scale.

    sudo .venv/bin/python -m tools.bench.attach [--reps 3] [--quick]

Two real ``meshd agent`` processes (profile ``lan``, the production timing)
run in a two-host lab (``tools.cluster``, lab prefix ``ba``); every request
is an ENDPOINT_CONNECT sent over CURVE to a host's ROUTER with the blocking
``SchedulerClient``, one at a time, and timed on the client from just before
the send to the reply:

* ``local``: 1,000 containers on h1, requested through h1, which answers
  once the interface is up. The containers are network-namespace sandboxes
  (``unshare --net sleep infinity`` started inside h1's namespace with
  ``nsenter``; the connect names them by ``pid``): starting 1,000 Docker
  containers would take minutes and Docker's own start cost would dominate.
  They are all started before the first request, so only meshd is timed.
  Every latency is kept in order; first-vs-last is the mean of the first 10
  over the mean of the last 10.
* ``docker``: real Docker containers (``--network none``, labelled for h1)
  attached the same way, named by container id (the agent resolves them
  through Docker); ``flat``: as many more, attached to a flat network
  (a macvlan on h1's underlay veth); ``dhcp``: as many more, attached to a
  dhcp network whose server is a real dnsmasq on the lab's LAN (lease time
  3,600 s), so each such attach includes the whole DHCP exchange
  (DISCOVER/OFFER/REQUEST/ACK inside the container's netns) before the
  commit; the three kinds alternate, one each in turn, the order rotated
  each turn.
* ``remote``: Docker containers labelled for h2, requested through h1 with
  ``host=h2``. h1 answers at commit (``commit`` figure); the interface is up
  when h2 publishes ENDPOINT_UP on its PUB socket, which a thread subscribed
  to h2 timestamps (``up`` figure, from the same send). Real containers are
  needed here: a sandbox's ``pid`` reaches only the receiving host, so h2
  could not find it (checked once per run, see the notes).
  Docker and remote requests alternate, one each in turn.
* ``docker_run``: the wall time of the Docker SDK's ``containers.run``
  (create + start, detached, the lab's busybox image, ``sleep 3600``) with
  ``--network none``, the default bridge, a user bridge network and a
  macvlan network; the kinds alternate, one each in turn, and each
  container is removed (untimed) after its turn. A kind's network cost is
  its p50 minus the p50 of ``none`` of the same repetition.

Scale: the h1 agent's VmRSS and CPU (utime + stime + cutime + cstime from
``/proc/<pid>/stat``, so tools it ran and waited for count too) over an idle
window, once before the repetition's first endpoint and once with the 1,000
sandboxes attached; and ``reconcile.last_pass_ms`` from QUERY_STATUS of the
first full reconcile pass after that window (an attach to a built network
applies only its veth; the full dump-plan-apply pass over all 1,000
endpoints is the periodic one, waited for).

One cluster serves every repetition: per repetition, fresh networks, fresh
containers and 1,000 new sandboxes; at its end the networks are deleted
(``force``), the sandboxes killed and the containers removed, and the next
repetition waits until h1's links are back to the count before the first.
A repetition runs, in order: the idle baseline, the ``docker_run`` round,
the Docker and remote attaches (in their own /24 network, deleted with its
containers afterwards, so h1 holds exactly the 1,000 sandboxes at the scale
measurement), the 1,000 sandboxes, the idle window at 1,000. Besides p50 and
p99 the local figures give the least-squares growth of the latency per 100
endpoints; a failed connect is counted (``attach.failed``), noted, and left
out of the latencies. ``--quick``: 200 sandboxes, 10 + 20 containers, 5 runs
per Docker network kind, 5 s idle windows.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tools.bench._docker_nets import BENCH_LABEL, macvlan_network, macvlan_parent, remove_leftovers
from tools.bench._figures import Budget, Plot, Section, percentile, section_main

PREFIX = "ba"
WORKDIR = "bench-attach"
MACVLAN_PARENT = macvlan_parent(PREFIX)
MACVLAN_SUBNET = "10.213.0.0/24"
DHCP_SUBNET = "10.214.0.0/24"  # dnsmasq on the lab's LAN serves offsets 10..250 of it
USER_BRIDGE, MACVLAN_NET = f"{PREFIX}-br", f"{PREFIX}-macvlan"
DOCKER_KINDS = ("none", "bridge", "user_bridge", "macvlan")
REQUEST_TIMEOUT_S = 30.0
SEED_ANCHOR = "seed 000: < 200 ms; Docker adds 18–110 ms"
FIRST_LAST = 10


def sizes(budget: Budget) -> dict[str, Any]:
    """How many of each, and the idle window, for this budget."""
    if budget.quick:
        return {"local": 200, "docker": 10, "remote": 20, "docker_run": 5, "idle_s": 5.0}
    return {"local": 1000, "docker": 50, "remote": 100, "docker_run": 20, "idle_s": 20.0}


def estimate_s(budget: Budget) -> float:
    """Setup, then per repetition: Docker runs, container starts, attaches, two idle windows, teardown."""
    n = sizes(budget)
    containers = 3 * n["docker"] + n["remote"]
    # measured on the shared 2-core VM: a docker run + remove ≈ 0.6 s, a lab container started and
    # removed (4 at a time) ≈ 0.35 s, a sandbox started and attached ≈ 0.07 s on average up to 1,000
    per_rep = (len(DOCKER_KINDS) * n["docker_run"] * 0.6 + containers * 0.35 + n["local"] * 0.07
               + 2 * n["idle_s"] + 20 + 15)  # + the wait for a periodic full pass
    return 60 + budget.reps * per_rep


# --- sandboxes (network namespaces held by a sleeping process) -------------------------------------------


class Sandboxes:
    """``unshare --net sleep infinity`` processes started inside a lab host's namespace."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, netns: str, count: int, timeout_s: float = 60.0) -> list[int]:
        """Start ``count`` sandboxes in ``netns`` and return their PIDs once each holds its own netns."""
        new = [subprocess.Popen(["nsenter", f"--net=/run/netns/{netns}", "--", "unshare", "--net",
                                 "sleep", "infinity"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL) for _ in range(count)]
        self.procs += new
        deadline = time.monotonic() + timeout_s
        for p in new:  # nsenter and unshare exec (no fork): the PID runs sleep once unshare is done
            while _comm(p.pid) != "sleep":
                if p.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"sandbox PID {p.pid} in {netns} did not start (exit {p.poll()}): "
                                       "is util-linux's unshare installed?")
                time.sleep(0.005)
        return [p.pid for p in new]

    def kill_all(self) -> None:
        for p in self.procs:
            p.kill()
        for p in self.procs:
            p.wait()
        self.procs = []


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


# --- the agent's footprint -----------------------------------------------------------------------------


def rss_mib(pid: int) -> float:
    """VmRSS of ``pid`` in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/{pid}/status has no VmRSS: is PID {pid} a running process?")


def cpu_ticks(pid: int) -> int:
    """utime + stime + cutime + cstime of ``pid`` (clock ticks)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "; fields[0] is field 3 (state)
    return sum(int(f) for f in fields[11:15])


def idle_cpu_pct(pid: int, window_s: float) -> float:
    """CPU % (of one core) used by ``pid`` and its waited-for children over ``window_s`` of idling."""
    hz = os.sysconf("SC_CLK_TCK")
    t0, c0 = time.monotonic(), cpu_ticks(pid)
    time.sleep(window_s)
    t1, c1 = time.monotonic(), cpu_ticks(pid)
    return 100.0 * (c1 - c0) / hz / (t1 - t0)


# --- timing pure logic ---------------------------------------------------------------------------------


def summarize(latencies_ms: list[float], edge: int = FIRST_LAST) -> dict[str, float]:
    """p50, p99, mean of the first ``edge`` and the last ``edge``, and their ratio."""
    if not latencies_ms:
        nan = float("nan")
        return {"p50": nan, "p99": nan, "first": nan, "last": nan, "last_over_first": nan}
    first = sum(latencies_ms[:edge]) / len(latencies_ms[:edge])
    last = sum(latencies_ms[-edge:]) / len(latencies_ms[-edge:])
    return {"p50": percentile(latencies_ms, 50), "p99": percentile(latencies_ms, 99), "first": first,
            "last": last, "last_over_first": last / first if first > 0 else float("nan")}


def slope_per_100(ys: list[float]) -> float:
    """Least-squares slope of ``ys`` against their index, per 100 indices (NaN for fewer than 2)."""
    n = len(ys)
    if n < 2:
        return float("nan")
    mx, my = (n - 1) / 2, sum(ys) / n
    sxx = sum((i - mx) ** 2 for i in range(n))
    return 100 * sum((i - mx) * (y - my) for i, y in enumerate(ys)) / sxx


def downsample(ys: list[float], limit: int = 2000) -> list[list[Any]]:
    """``[xs, ys]`` with at most ``limit`` points (every k-th, keeping the index as x)."""
    step = max(1, -(-len(ys) // limit))
    xs = list(range(0, len(ys), step))
    return [xs, [ys[i] for i in xs]]


# --- the cluster and Docker's networks -----------------------------------------------------------------


class UpWatcher(threading.Thread):
    """Subscribes to one host's PUB socket and timestamps every ENDPOINT_UP (perf_counter)."""

    def __init__(self, cluster: Any, host: str) -> None:
        super().__init__(name=f"up-watcher-{host}", daemon=True)
        self.cluster, self.host = cluster, host
        self.seen: dict[str, float] = {}
        self.ready, self.stopping = threading.Event(), threading.Event()
        self.error = ""

    def run(self) -> None:
        from meshd.api import MsgType

        try:
            with self.cluster.scheduler(self.host, timeout_s=REQUEST_TIMEOUT_S) as api:
                api.next_event(timeout_s=1.0)  # subscribes; then give the CURVE handshake time
                self.ready.set()
                while not self.stopping.is_set():
                    event = api.next_event(timeout_s=0.2)
                    if event is not None and event[0] == MsgType.EVENT_ENDPOINT_UP:
                        self.seen[event[1]["endpoint_id"]] = time.perf_counter()
        except Exception as exc:  # reported by wait_up as the reason nothing arrives
            self.error = f"{type(exc).__name__}: {exc}"
            self.ready.set()

    def wait_up(self, endpoint_id: str, timeout_s: float) -> float | None:
        deadline = time.monotonic() + timeout_s
        while endpoint_id not in self.seen and time.monotonic() < deadline and not self.error:
            time.sleep(0.001)
        return self.seen.get(endpoint_id)


def start_cluster(stack: contextlib.ExitStack, workdir: Path) -> tuple[Any, Any]:
    """The lab (2 hosts) and agents on h1 (bootstrap) and h2 (joined), torn down by ``stack``."""
    from meshd.api import MsgType
    from tools.cluster import Cluster
    from tools.lab import Lab

    lab = stack.enter_context(Lab(PREFIX))
    lab.down()  # leftovers of an interrupted run
    lab.up(2)
    cluster = Cluster(lab, workdir / WORKDIR, profile="lan")
    stack.callback(cluster.cleanup_workdir)  # after the agents stopped (callbacks run last first)
    stack.enter_context(cluster)
    cluster.start("h1")
    cluster.wait("h1 leads", lambda: cluster.query("h1", MsgType.QUERY_STATUS)["raft"]["role"] == "leader",
                 timeout_s=60)
    cluster.start("h2", join=["192.0.2.11"])
    cluster.wait_members("h1", 2, timeout_s=60)
    cluster.wait("h2 in Raft", lambda: "h2" in (lambda r: r["voters"] + r["learners"])(
        cluster.query("h1", MsgType.QUERY_STATUS)["raft"]), timeout_s=60)
    return lab, cluster


def docker_networks(stack: contextlib.ExitStack) -> Any:
    """A user bridge and a macvlan network (parent: one end of a veth pair); removed by ``stack``."""
    from tools.lab import docker_client as client
    from tools.lab import ensure_image

    cli = client()
    ensure_image(cli)
    remove_docker_leftovers(cli)
    stack.callback(remove_docker_leftovers, cli)
    cli.networks.create(USER_BRIDGE, driver="bridge", labels={BENCH_LABEL: PREFIX})
    macvlan_network(cli, PREFIX, MACVLAN_SUBNET)
    return cli


def remove_docker_leftovers(cli: Any) -> None:
    remove_leftovers(cli, PREFIX, (USER_BRIDGE, MACVLAN_NET))


def link_count(netns: str) -> int:
    out = subprocess.run(["ip", "-n", netns, "-o", "link"], capture_output=True, text=True, check=True)
    return len(out.stdout.splitlines())


# --- one repetition ------------------------------------------------------------------------------------


class Bench:
    """Everything one run needs: the cluster, Docker, the sandboxes and the h2 event watcher."""

    def __init__(self, stack: contextlib.ExitStack, budget: Budget, section: Section) -> None:
        self.n = sizes(budget)
        self.section = section
        self.lab, self.cluster = start_cluster(stack, Path(budget.workdir))
        self.cli = docker_networks(stack)
        self.sandboxes = Sandboxes()
        self.failures: dict[str, int] = {}  # failed connects per kind, this repetition
        stack.callback(self.sandboxes.kill_all)
        self.dhcp = self.lab.dhcp_server(Path(budget.workdir) / WORKDIR / "dnsmasq", subnet=DHCP_SUBNET,
                                         lease_s=3600, first=10, last=250)
        stack.callback(self.dhcp.stop)
        self.agent_pid = self.cluster.agents["h1"].proc.pid
        self.h1_links = link_count(self.lab.host("h1").netns)
        self.watcher = UpWatcher(self.cluster, "h2")
        self.watcher.start()
        stack.callback(self.watcher.stopping.set)
        self.watcher.ready.wait(30)
        time.sleep(1.0)  # the SUB socket's subscription reaches h2's PUB

    def connect(self, api: Any, **fields: Any) -> tuple[dict[str, Any], float]:
        """One ENDPOINT_CONNECT; returns (result, ms from send to reply).

        Raises:
          ApiRequestError, TimeoutError: as ``SchedulerClient.request``.
        """
        from meshd.api import MsgType

        t0 = time.perf_counter()
        result = api.request(MsgType.ENDPOINT_CONNECT, **fields)
        return result, (time.perf_counter() - t0) * 1000

    def try_connect(self, api: Any, kind: str, **fields: Any) -> tuple[dict[str, Any] | None, float]:
        """``connect``, but a failed request is counted (and its first few noted) instead of raised."""
        from meshd.api.client import ApiRequestError

        try:
            return self.connect(api, **fields)
        except (ApiRequestError, TimeoutError) as exc:
            self.failures[kind] = self.failures.get(kind, 0) + 1
            if self.failures[kind] <= 3:
                self.section.notes.append(f"{kind} connect of {fields['container_id'][:20]} failed: {exc}")
            return None, float("nan")

    def network(self, name: str, subnet: str, **fields: Any) -> None:
        from meshd.api import MsgType

        self.cluster.query("h1", MsgType.NETWORK_CREATE, name=name, subnet=subnet, **fields)

    def delete_network(self, name: str) -> None:
        from meshd.api import MsgType

        self.cluster.query("h1", MsgType.NETWORK_DELETE, name=name, force=True)

    def status(self) -> dict[str, Any]:
        from meshd.api import MsgType

        return self.cluster.query("h1", MsgType.QUERY_STATUS)

    def containers(self, host: str, names: list[str]) -> list[Any]:
        """Lab containers (``--network none``, labelled for ``host``), started four at a time."""
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            return list(pool.map(lambda name: self.lab.container(host, name), names))

    def remove_containers(self, containers: list[Any]) -> None:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda c: self.cli.containers.get(c.id).remove(force=True), containers))

    def wait_h1_clean(self, timeout_s: float = 180.0) -> None:
        netns = self.lab.host("h1").netns
        self.cluster.wait(f"{netns} back to {self.h1_links} links", lambda: link_count(netns) <= self.h1_links,
                          timeout_s=timeout_s, interval_s=0.5)


def docker_run_round(bench: Bench, rep: int) -> dict[str, list[float]]:
    """``containers.run`` wall times per network kind, kinds alternating (rotated each turn)."""
    from tools.lab import IMAGE

    network = {"none": {"network_mode": "none"}, "bridge": {}, "user_bridge": {"network": USER_BRIDGE},
               "macvlan": {"network": MACVLAN_NET}}
    times: dict[str, list[float]] = {k: [] for k in DOCKER_KINDS}
    for i in range(bench.n["docker_run"]):
        made = []
        for j in range(len(DOCKER_KINDS)):
            kind = DOCKER_KINDS[(i + j) % len(DOCKER_KINDS)]
            t0 = time.perf_counter()
            made.append(bench.cli.containers.run(IMAGE, ["sleep", "3600"], name=f"{PREFIX}-run-{rep}-{i}-{kind}",
                                                 detach=True, labels={BENCH_LABEL: PREFIX}, **network[kind]))
            times[kind].append((time.perf_counter() - t0) * 1000)
        for c in made:
            c.remove(force=True)
    return times


def docker_and_remote(bench: Bench, rep: int) -> dict[str, list[float]]:
    """Docker containers on h1 (a vxlan, a flat and a dhcp network) and on h2 (through h1), attached
    alternately."""
    net, flat, dhcp = f"ba-c{rep}", f"ba-f{rep}", f"ba-d{rep}"
    bench.network(net, f"10.212.{rep % 256}.0/24")
    bench.network(flat, f"10.213.{rep % 256}.0/24", mode="flat")
    bench.network(dhcp, DHCP_SUBNET, mode="dhcp", gateway=bench.dhcp.router)
    local = bench.containers("h1", [f"d{rep}-{i}" for i in range(bench.n["docker"])])
    flats = bench.containers("h1", [f"f{rep}-{i}" for i in range(bench.n["docker"])])
    leased = bench.containers("h1", [f"p{rep}-{i}" for i in range(bench.n["docker"])])
    remote = bench.containers("h2", [f"r{rep}-{i}" for i in range(bench.n["remote"])])
    out: dict[str, list[float]] = {"docker": [], "flat": [], "dhcp": [], "commit": [], "up": []}
    try:
        with bench.cluster.scheduler("h1", timeout_s=REQUEST_TIMEOUT_S) as api:
            for i in range(max(len(local), len(remote))):
                if i < len(local):
                    turn = (("docker", net, local[i]), ("flat", flat, flats[i]), ("dhcp", dhcp, leased[i]))
                    for kind, network, box in turn[i % 3:] + turn[:i % 3]:
                        ms = bench.try_connect(api, kind, container_id=box.id, network=network)[1]
                        if not math.isnan(ms):
                            out[kind].append(ms)
                if i < len(remote):
                    _remote_one(bench, api, remote[i].id, net, out)
    finally:
        bench.delete_network(net)
        bench.delete_network(flat)
        bench.delete_network(dhcp)
        bench.remove_containers(local + flats + leased + remote)
    return out


def _remote_one(bench: Bench, api: Any, container_id: str, net: str, out: dict[str, list[float]]) -> None:
    t0 = time.perf_counter()
    result, commit_ms = bench.try_connect(api, "remote", container_id=container_id, network=net, host="h2")
    if result is None:
        return
    up = bench.watcher.wait_up(result["endpoint_id"], REQUEST_TIMEOUT_S)
    out["commit"].append(commit_ms)
    if up is None:
        bench.section.notes.append(f"remote {container_id[:12]}: no ENDPOINT_UP from h2 within "
                                   f"{REQUEST_TIMEOUT_S:.0f}s {bench.watcher.error}".strip())
    else:
        out["up"].append((up - t0) * 1000)


def local_sandboxes(bench: Bench, rep: int) -> tuple[list[float], dict[str, float]]:
    """1,000 sandboxes on h1 attached one by one; then the agent's footprint with them attached."""
    net = f"ba-l{rep}"
    bench.network(net, f"10.{100 + rep % 100}.0.0/22")
    pids = bench.sandboxes.start(bench.lab.host("h1").netns, bench.n["local"])
    latencies: list[float] = []
    try:
        with bench.cluster.scheduler("h1", timeout_s=REQUEST_TIMEOUT_S) as api:
            for i, pid in enumerate(pids):
                ms = bench.try_connect(api, "local", container_id=f"ba-sb-{rep}-{i}", network=net, pid=pid)[1]
                if not math.isnan(ms):
                    latencies.append(ms)
        passes = bench.status()["reconcile"]["passes"]
        scale = footprint(bench)
        scale["reconcile_pass_ms"] = next_full_pass_ms(bench, passes)
    finally:
        bench.delete_network(net)
        bench.sandboxes.kill_all()
    return latencies, scale


def next_full_pass_ms(bench: Bench, passes: int, timeout_s: float = 45.0) -> float:
    """Duration of the first full reconcile pass (dump + plan + apply) after ``passes`` of them.

    Attaches use the no-dump path, so the full pass at this size is the periodic one
    (``dataplane.reconcile_interval_s``): wait for it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rec = bench.status()["reconcile"]
        if rec["passes"] > passes:
            return float(rec["last_pass_ms"])
        time.sleep(0.5)
    return math.nan


def footprint(bench: Bench) -> dict[str, float]:
    cpu = idle_cpu_pct(bench.agent_pid, bench.n["idle_s"])
    return {"rss_mib": rss_mib(bench.agent_pid), "cpu_pct": cpu}


def check_remote_sandbox(bench: Bench) -> None:
    """Once: does a pid-named sandbox on h2, requested through h1, come up? (Notes the answer.)"""
    net = "ba-probe"
    bench.network(net, "10.211.0.0/24")
    sandboxes = Sandboxes()
    try:
        pid = sandboxes.start(bench.lab.host("h2").netns, 1)[0]
        with bench.cluster.scheduler("h1", timeout_s=REQUEST_TIMEOUT_S) as api:
            result, _ = bench.connect(api, container_id="ba-probe-0", network=net, pid=pid, host="h2")
        up = bench.watcher.wait_up(result["endpoint_id"], 10.0)
        bench.section.notes.append(
            "A sandbox on h2 named by `pid` in a connect sent to h1 " + (
                "came up on h2." if up is not None else
                "was committed but never came up on h2 within 10 s: `pid` is used only by the receiving host "
                "(meshd/agent/_backend.py `resolve_container`) and is not replicated, so a non-Docker "
                "container can only be attached through its own host. The remote path is therefore "
                "measured with Docker containers."))
    finally:
        bench.delete_network(net)
        sandboxes.kill_all()


# --- figures -------------------------------------------------------------------------------------------


def record_rep(section: Section, rep: int, local: list[float], scale0: dict[str, float],
               scale: dict[str, float], other: dict[str, list[float]], runs: dict[str, list[float]]) -> None:
    s, count = summarize(local), f"{len(local):,}"
    f = section.figure
    f("attach.local.p50_ms", f"local: request → interface up, p50 over {count} sandboxes", "ms",
      goal=("<=", 15.0), anchor=SEED_ANCHOR).add(s["p50"])
    f("attach.local.p99_ms", f"local: p99 over {count} sandboxes", "ms", goal=("<=", 50.0)).add(s["p99"])
    f("attach.local.first10_ms", f"local: mean of the first {FIRST_LAST}", "ms").add(s["first"])
    f("attach.local.last10_ms", f"local: mean of the last {FIRST_LAST} (≈{count}th)", "ms").add(s["last"])
    f("attach.local.last_over_first", "local: last 10 / first 10", "ratio", goal=("<=", 1.5)).add(
        s["last_over_first"])
    f("attach.local.slope_ms_per_100", "local: latency growth per 100 endpoints (least squares)", "ms").add(
        slope_per_100(local))
    f("attach.docker.p50_ms", "local, real Docker containers: p50", "ms",
      ratio_to="attach.local.p50_ms").add(percentile(other["docker"], 50))
    f("attach.docker.p99_ms", "local, real Docker containers: p99", "ms").add(percentile(other["docker"], 99))
    f("attach.flat.p50_ms", "local, real Docker containers, flat network (macvlan): p50", "ms",
      anchor="the same containers on a vxlan network, alternating", ratio_to="attach.docker.p50_ms").add(
        percentile(other["flat"], 50))
    f("attach.flat.p99_ms", "local, real Docker containers, flat network: p99", "ms").add(
        percentile(other["flat"], 99))
    f("attach.dhcp.p50_ms", "local, real Docker containers, dhcp network (macvlan + lease from dnsmasq): p50",
      "ms", anchor="the same containers on a vxlan network, alternating", ratio_to="attach.docker.p50_ms").add(
        percentile(other["dhcp"], 50))
    f("attach.dhcp.p99_ms", "local, real Docker containers, dhcp network: p99", "ms").add(
        percentile(other["dhcp"], 99))
    f("attach.remote.commit_p50_ms", "other host: request on h1 → commit reply, p50", "ms").add(
        percentile(other["commit"], 50))
    f("attach.remote.up_p50_ms", "other host: request on h1 → ENDPOINT_UP from h2, p50", "ms",
      ratio_to="attach.docker.p50_ms").add(percentile(other["up"], 50))
    f("attach.remote.up_p99_ms", "other host: request on h1 → ENDPOINT_UP from h2, p99", "ms").add(
        percentile(other["up"], 99))
    f("attach.remote.first_up_ms", "other host: the network's first container on h2 (builds its tunnel)",
      "ms").add(other["up"][0] if other["up"] else float("nan"))
    none_p50 = percentile(runs["none"], 50)
    for kind in DOCKER_KINDS:
        p50 = percentile(runs[kind], 50)
        f(f"attach.docker_run.{kind}.p50_ms", f"`docker run -d` ({kind}), p50", "ms",
          anchor="" if kind == "none" else "docker run --network none, same repetition",
          ratio_to="" if kind == "none" else "attach.docker_run.none.p50_ms").add(p50)
        if kind != "none":
            f(f"attach.docker_run.{kind}.net_cost_ms", f"Docker's network cost ({kind}): p50 − p50(none)",
              "ms", anchor="seed report: Docker adds 18–110 ms").add(p50 - none_p50)
    f("scale.rss_mib.idle", "h1 agent RSS before the repetition's endpoints", "MiB").add(scale0["rss_mib"])
    f("scale.rss_mib.at_1000", f"h1 agent RSS with {count} endpoints", "MiB", ratio_to="scale.rss_mib.idle").add(
        scale["rss_mib"])
    f("scale.rss_kib_per_endpoint", "h1 agent RSS growth per endpoint", "KiB").add(
        (scale["rss_mib"] - scale0["rss_mib"]) * 1024 / max(1, len(local)))
    f("scale.cpu_pct.idle", "h1 agent CPU, idle, before the endpoints", "% of a core").add(scale0["cpu_pct"])
    f("scale.cpu_pct.at_1000", f"h1 agent CPU, idle, with {count} endpoints", "% of a core").add(scale["cpu_pct"])
    f("scale.reconcile_pass_ms", f"h1's periodic full reconcile pass with {count} endpoints", "ms").add(
        scale["reconcile_pass_ms"])


def plots(local_runs: list[list[float]], others: list[dict[str, list[float]]],
          runs: dict[str, list[float]]) -> list[Plot]:
    ups = [v for o in others for v in o["up"]]
    out = [Plot("attach_local_by_index", "Local attach latency by index (1,000 sandboxes on h1)",
                "index (n-th endpoint on the host)", "ms",
                {f"rep {i + 1}": downsample(ys) for i, ys in enumerate(local_runs)})]
    out.append(Plot("attach_cdf", "Attach latency CDF (all repetitions)", "", "ms",
                    {"local (sandboxes)": [[], [v for ys in local_runs for v in ys]],
                     "other host, up": [[], ups]}, kind="cdf"))
    out.append(Plot("docker_run_p50", "`docker run -d` wall time by network (p50, all repetitions)", "network",
                    "ms", {"p50": [list(DOCKER_KINDS), [percentile(runs[k], 50) for k in DOCKER_KINDS]]},
                    kind="bar"))
    lines = {}
    for i, o in enumerate(others):
        lines[f"Docker on h1, rep {i + 1}"] = downsample(o["docker"])
        lines[f"other host (up), rep {i + 1}"] = downsample(o["up"])
    out.append(Plot("attach_docker_remote_by_index", "Docker containers on h1 and on h2 (through h1) by index",
                    "index (alternating: Docker on h1, then one on h2)", "ms", lines, logy=True))
    return out


# --- run -----------------------------------------------------------------------------------------------


def _method() -> str:
    return __doc__.split("\n\n", 2)[2].strip()


def run(budget: Budget) -> Section:
    n = sizes(budget)
    section = Section("attach", "Attach end to end and the agent at 1,000 endpoints", method=_method(),
                      setup={**n, "reps": budget.reps, "hosts": 2, "profile": "lan", "lab_prefix": PREFIX,
                             "docker_sdk": True, "macvlan_parent": f"veth {MACVLAN_PARENT}",
                             "macvlan_subnet": MACVLAN_SUBNET, "dhcp_subnet": DHCP_SUBNET,
                             "dhcp_server": "dnsmasq on the lab LAN, lease 3600 s"})
    local_runs: list[list[float]] = []
    others: list[dict[str, list[float]]] = []
    all_runs: dict[str, list[float]] = {k: [] for k in DOCKER_KINDS}
    try:
        with contextlib.ExitStack() as stack:
            try:
                bench = Bench(stack, budget, section)
                check_remote_sandbox(bench)
                for rep in range(budget.reps):
                    _one_rep(bench, rep, local_runs, others, all_runs)
            except Exception:
                section.notes += log_tails(Path(budget.workdir) / WORKDIR)  # before cleanup removes them
                raise
    except Exception as exc:
        section.error = f"{type(exc).__name__}: {exc}"
    section.plots = plots(local_runs, others, all_runs)
    return section


def log_tails(workdir: Path, lines: int = 15) -> list[str]:
    """The last lines of every agent log under ``workdir`` (for the notes of a failed run)."""
    out = []
    for log in sorted(workdir.glob("h*/agent.log")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        out.append(f"{log.parent.name} agent log, last {len(tail)} lines:\n" + "\n".join(tail))
    return out


def _one_rep(bench: Bench, rep: int, local_runs: list[list[float]], others: list[dict[str, list[float]]],
             all_runs: dict[str, list[float]]) -> None:
    bench.wait_h1_clean()
    bench.failures = {}
    scale0 = footprint(bench)
    runs = docker_run_round(bench, rep)
    other = docker_and_remote(bench, rep)
    local, scale = local_sandboxes(bench, rep)
    record_rep(bench.section, rep, local, scale0, scale, other, runs)
    bench.section.figure("attach.failed", "connects that failed (all paths; see the notes)", "count").add(
        sum(bench.failures.values()))
    local_runs.append(local)
    others.append(other)
    for k in DOCKER_KINDS:
        all_runs[k].extend(runs[k])


def main(argv: list[str] | None = None) -> int:
    return section_main(run, __doc__, "200 sandboxes, fewer Docker containers, a 5 s idle window", argv)


if __name__ == "__main__":
    sys.exit(main())

"""Report section "alloc": address allocation through meshd's API beside etcd.

    sudo .venv/bin/python -m tools.bench.alloc [--reps 3] [--quick]

meshd side: three real ``meshd agent`` processes (``tools.cluster``) in a lab
of prefix ``bc``; one network with the largest subnet the state accepts (a
/8). One allocation is one ENDPOINT_CONNECT of a new container id with
``host`` set to a name that is no cluster member ("ghost-1", with
``host_expected``, so the API takes it as a host that joins later): the state
accepts it, the reply comes when the change is committed and applied, and no
kernel work follows (no agent runs the container, and a host with no live
VTEP gets no FDB entries). The client is pipelined: one CURVE DEALER (made
by :class:`~meshd.api.client.SchedulerClient` inside a lab host's netns)
keeps N requests in flight, and each reply starts the next request; it is
run against the leader's ROUTER and against a follower's (which forwards the
proposal to the leader).

etcd side: three ``etcd`` members on loopback (``tools.bench.raft.Etcd``):
plain puts through its JSON gateway (``raft._etcd_put_loop``, one HTTP
connection per client thread), and a compare-and-swap IP allocator as a
macvlan/etcd design stores it: one key per subnet holding the subnet's
bitmap (a /16: 8 KiB); allocate = range (value, mod_revision), set the first
free bit, txn(compare mod_revision == rev, then put the new bitmap), retry on
a conflict.

Per repetition every configuration runs once, interleaved (at 1, 16, 64
clients: meshd leader, meshd follower, etcd put, etcd CAS), then one
failover trial of each: kill -9 the leader, time until an allocation
(meshd) / a put (etcd) through a survivor succeeds; the killed member is
restarted and caught up before the next measurement.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import math
import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq

from meshd.api import RESPONSE_FLAG, ApiError, MsgType, pack, unpack
from meshd.api.client import ApiRequestError, SchedulerClient
from tools.bench import raft
from tools.bench._figures import Budget, Plot, Section, percentile, section_main
from tools.cluster import Cluster
from tools.lab import Lab

PREFIX = "bc"
HOSTS = ("h1", "h2", "h3")
CLIENTS = (1, 16, 64)
MEASURE_S, QUICK_MEASURE_S = 4.0, 1.5
NETWORK, SUBNET = "alloc", "10.0.0.0/8"  # MIN_PREFIX of meshd.state._validate: the largest pool
GHOST = "ghost-1"
ETCD_SUBNET_BITS = 16  # one /16 per bitmap: 8 KiB per value
#: meshd's Raft timed like etcd's defaults (100 ms heartbeat, election after 1-2 s), so failover compares alike
RAFT_ARGS = ("--set", "raft.tick_interval_s=0.1", "--set", "raft.election_ticks=10")
DRAIN_S = 15.0  # most a reply may take after the window before the run counts as stalled
FAILOVER_LIMIT_S = 60.0
MAX_PLOT_POINTS = 2000
CLIENT_SATURATED_PCT = 80.0  # a Python client thread (or a GIL-bound pool) near one core is the limit


@dataclass
class Run:
    """One measurement: latencies of the completed operations and what it cost."""

    wall_s: float = 0.0
    lat_s: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    retries: int = 0
    client_cpu_s: float = 0.0  # the whole bench process (all client threads, ZeroMQ I/O threads)
    client_thread_cpu_s: float = 0.0  # the thread that drives the pipeline (meshd only)
    server_cpu_s: float = 0.0
    leader_cpu_s: float = math.nan  # meshd: the Raft leader's process alone (where the bottleneck is)
    followers_cpu_s: float = math.nan  # meshd: both followers' processes together
    entry_cpu_s: float = math.nan  # meshd via a follower: the follower the client talks to, alone

    @property
    def per_s(self) -> float:
        return len(self.lat_s) / self.wall_s if self.wall_s else math.nan


def _proc_cpu_s(pids: list[int]) -> float:
    """CPU seconds (user + system) used so far by ``pids`` (from /proc; a gone pid counts 0)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def _costs(run: Run, pids: list[int]):
    """Fill ``run``'s wall time and client/server CPU over the ``with`` body."""
    cpu0, thr0, srv0, t0 = time.process_time(), time.thread_time(), _proc_cpu_s(pids), time.perf_counter()
    yield
    run.wall_s = time.perf_counter() - t0
    run.client_cpu_s = time.process_time() - cpu0
    run.client_thread_cpu_s = time.thread_time() - thr0
    run.server_cpu_s = _proc_cpu_s(pids) - srv0


# --- meshd ---------------------------------------------------------------------------------


def pipeline(sock: zmq.Socket, in_flight: int, seconds: float, next_fields: Callable[[], dict[str, Any]],
             run: Run) -> None:
    """Keep ``in_flight`` ENDPOINT_CONNECTs outstanding on ``sock`` for ``seconds``, then drain.

    Each reply (matched by ``request_id``) records its latency when ok, or
    its error code, and sends the next request while the window is open.
    """
    pending: dict[str, float] = {}

    def send() -> None:
        fields = next_fields()
        sock.send(pack(MsgType.ENDPOINT_CONNECT, fields))
        pending[fields["request_id"]] = time.perf_counter()

    deadline = time.perf_counter() + seconds
    for _ in range(in_flight):
        send()
    while pending:
        if not sock.poll(int(1000 * DRAIN_S)):
            run.errors[f"no reply within {DRAIN_S:.0f} s"] += len(pending)
            return
        while pending:
            try:
                frame = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            now = time.perf_counter()
            msg_type, body = unpack(frame, max_bytes=1 << 24)
            t0 = pending.pop(body.get("request_id", ""), None)
            if t0 is None or not msg_type & RESPONSE_FLAG:
                continue
            if body.get("ok"):
                run.lat_s.append(now - t0)
            else:
                err = body.get("error", {})
                run.errors[f"{err.get('code')}: {str(err.get('message'))[:120]}"] += 1
            if now < deadline:
                send()


class MeshdSide:
    """Three agents in lab ``bc``, one big network, and one API client per host (in its netns)."""

    def __init__(self, workdir: Path) -> None:
        self.lab = Lab(PREFIX)
        self.lab.down()  # leftovers of an interrupted run of this bench (our prefix only)
        self.cluster = Cluster(self.lab, workdir, extra_args=RAFT_ARGS)
        self._clients = contextlib.ExitStack()
        self.api: dict[str, SchedulerClient] = {}
        self._seq = 0
        #: one row per measurement: clients, endpoints in the state before it, per second, server CPU ms/alloc
        self.history: list[dict[str, Any]] = []

    def start(self) -> None:
        self.lab.up(len(HOSTS))
        self.cluster.start(HOSTS[0])
        self.cluster.wait("h1 leads", lambda: self._raft(HOSTS[0])["role"] == "leader", timeout_s=60)
        for h in HOSTS[1:]:
            self.cluster.start(h, join=[self.lab.host(HOSTS[0]).underlay_ip])
        self.cluster.wait("3 Raft voters", lambda: len(self._raft(HOSTS[0])["voters"]) == 3, timeout_s=90)
        self.cluster.query(HOSTS[0], MsgType.NETWORK_CREATE, name=NETWORK, subnet=SUBNET)
        for h in HOSTS:
            self.api[h] = self._clients.enter_context(self.cluster.scheduler(h, timeout_s=0.5))
            self.allocate_until_ok(h, 30.0)  # CURVE handshake done, network known everywhere

    def close(self) -> None:
        try:
            self._clients.close()
            self.cluster.down()
        finally:
            self.lab.down()
            self.cluster.cleanup_workdir()

    def _raft(self, host: str) -> dict[str, Any]:
        return self.cluster.query(host, MsgType.QUERY_STATUS)["raft"]

    def leader(self) -> str:
        alive = [h for h in HOSTS if h in self.cluster.agents]
        return self.cluster.wait("a meshd leader", lambda: next(
            (h for h in alive if self._raft(h)["role"] == "leader"), None), timeout_s=60)

    def endpoint_count(self) -> int:
        nets = self.cluster.query(self.leader(), MsgType.QUERY_NETWORKS)["networks"]
        return sum(n["used"] for n in nets if n["name"] == NETWORK)

    def pids(self) -> list[int]:
        return [a.proc.pid for a in self.cluster.agents.values()]

    def next_fields(self) -> dict[str, Any]:
        self._seq += 1
        cid = f"c{self._seq}"
        return {"request_id": cid, "container_id": cid, "network": NETWORK, "host": GHOST, "host_expected": True}

    def measure(self, host: str, in_flight: int, seconds: float) -> Run:
        """A pipelined run through ``host``'s ROUTER (the DEALER of its SchedulerClient)."""
        endpoints, run = self.endpoint_count(), Run()
        leader = self.leader()
        lead_pid = [self.cluster.agents[leader].proc.pid]
        others = [self.cluster.agents[h].proc.pid for h in HOSTS if h != leader and h in self.cluster.agents]
        entry = [self.cluster.agents[host].proc.pid] if host != leader else []
        lead0, others0, entry0 = _proc_cpu_s(lead_pid), _proc_cpu_s(others), _proc_cpu_s(entry)
        with _costs(run, self.pids()):
            pipeline(self.api[host]._dealer, in_flight, seconds, self.next_fields, run)
        run.leader_cpu_s, run.followers_cpu_s = _proc_cpu_s(lead_pid) - lead0, _proc_cpu_s(others) - others0
        if entry:
            run.entry_cpu_s = _proc_cpu_s(entry) - entry0
        self.history.append({"host": host, "clients": in_flight, "endpoints_before": endpoints,
                             "per_s": round(run.per_s, 1),
                             "server_cpu_ms": round(1000 * run.server_cpu_s / max(1, len(run.lat_s)), 2)})
        return run

    def allocate_until_ok(self, host: str, limit_s: float) -> float:
        """One allocation through ``host``, retried (same request_id) on UNAVAILABLE/TIMEOUT/no answer;
        returns the seconds it took."""
        fields = self.next_fields()
        t0 = time.perf_counter()
        while True:
            try:
                self.api[host].request(MsgType.ENDPOINT_CONNECT, **fields)
                return time.perf_counter() - t0
            except ApiRequestError as exc:
                if exc.code not in (ApiError.UNAVAILABLE, ApiError.TIMEOUT):
                    raise
            except TimeoutError:
                pass  # no answer within the short client timeout: retry with the same request_id
            if time.perf_counter() - t0 > limit_s:
                raise TimeoutError(f"no allocation through meshd host {host} within {limit_s:.0f} s; "
                                   f"agent logs: {[str(a.log) for a in self.cluster.agents.values()]}")

    def failover(self) -> float:
        """kill -9 the leader; seconds until an allocation through a survivor succeeds.
        The killed agent is restarted and caught up (a voter again) before this returns."""
        leader = self.leader()
        survivor = next(h for h in HOSTS if h != leader)
        self.allocate_until_ok(survivor, 10.0)
        t_kill = time.perf_counter()
        self.cluster.kill(leader)
        self.allocate_until_ok(survivor, FAILOVER_LIMIT_S)
        seconds = time.perf_counter() - t_kill
        self.cluster.start(leader)
        self.wait_caught_up(leader)
        return seconds

    def wait_caught_up(self, host: str) -> None:
        def ready() -> bool:
            r = self._raft(self.leader())
            follower = next((f for f in r["followers"] if f["id"] == host), None)
            return (len(r["voters"]) == 3 and host in r["voters"] and follower is not None
                    and follower["lag"] <= 10)
        self.cluster.wait(f"meshd {host} back as a caught-up voter", ready, timeout_s=120, interval_s=0.25)


# --- etcd ----------------------------------------------------------------------------------


def _b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def _post(conn: http.client.HTTPConnection, path: str, body: dict[str, Any]) -> dict[str, Any]:
    conn.request("POST", path, json.dumps(body))
    resp = conn.getresponse()
    data = resp.read()
    if resp.status != 200:
        raise OSError(f"etcd {path} answered HTTP {resp.status}: {data[:200]!r}")
    return json.loads(data or b"{}")


def first_free_bit(bitmap: bytes) -> int | None:
    """Index of the lowest zero bit (bit 0 = the MSB of byte 0), or None when all are set."""
    full = len(bitmap) - len(bitmap.lstrip(b"\xff"))
    if full == len(bitmap):
        return None
    byte = bitmap[full]
    return 8 * full + next(b for b in range(8) if not byte & (0x80 >> b))


def cas_allocate(conn: http.client.HTTPConnection, key: str) -> tuple[int, int]:
    """One address from the bitmap at ``key``: (bit index, conflicts retried)."""
    conflicts = 0
    while True:
        kv = _post(conn, "/v3/kv/range", {"key": key})["kvs"][0]
        bitmap = bytearray(base64.b64decode(kv["value"]))
        bit = first_free_bit(bytes(bitmap))
        if bit is None:
            raise RuntimeError(f"etcd bitmap {base64.b64decode(key).decode()} is full: use a larger subnet")
        bitmap[bit // 8] |= 0x80 >> (bit % 8)
        txn = {"compare": [{"key": key, "target": "MOD", "result": "EQUAL", "mod_revision": kv["mod_revision"]}],
               "success": [{"request_put": {"key": key, "value": _b64(bytes(bitmap))}}]}
        if _post(conn, "/v3/kv/txn", txn).get("succeeded"):
            return bit, conflicts
        conflicts += 1


def _cas_loop(address: str, key: str, deadline: float, run: Run) -> None:
    host, port = address[len("http://"):].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            _, conflicts = cas_allocate(conn, key)
            run.lat_s.append(time.perf_counter() - t0)  # list.append is atomic under the GIL
            run.retries += conflicts  # not atomic: read it as approximate (it is a small integer race)
    except (OSError, RuntimeError, ValueError, KeyError) as exc:
        run.errors[f"{type(exc).__name__}: {str(exc)[:120]}"] += 1
    finally:
        conn.close()


class EtcdSide:
    """Three etcd members (``tools.bench.raft.Etcd``) and the two client workloads."""

    def __init__(self, workdir: Path) -> None:
        self.etcd = raft.Etcd(workdir)
        self.workdir = workdir

    def start(self) -> None:
        if not shutil.which("etcd"):
            raise RuntimeError("etcd is not installed: apt-get install etcd-server")
        for i in self.etcd.ids:
            self.etcd.start(i)
        time.sleep(1.0)
        dead = [i for i, p in self.etcd.procs.items() if p.poll() is not None]
        if dead:
            raise RuntimeError(f"etcd member(s) {dead} exited at start: run `etcd --data-dir {self.workdir}/e1 ...` "
                               "by hand to see why (a port taken?)")
        self.etcd.leader()

    def close(self) -> None:
        try:
            self.etcd.stop_all()
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def pids(self) -> list[int]:
        return [p.pid for p in self.etcd.procs.values()]

    def put(self, clients: int, seconds: float) -> Run:
        leader, run = self.etcd.leader(), Run()
        with _costs(run, self.pids()), ThreadPoolExecutor(clients) as pool:
            deadline = time.perf_counter() + seconds
            for k in range(clients):
                pool.submit(raft._etcd_put_loop, self.etcd, leader, f"w{k}", deadline, run.lat_s)
        return run

    def cas(self, clients: int, seconds: float, subnet: str) -> Run:
        """The CAS allocator on a fresh /16 bitmap key ``/ipam/<subnet>``."""
        leader, run = self.etcd.leader(), Run()
        key = _b64(f"/ipam/{subnet}")
        self.etcd.call(leader, "/v3/kv/put", {"key": key, "value": _b64(bytes(1 << (ETCD_SUBNET_BITS - 3)))})
        with _costs(run, self.pids()), ThreadPoolExecutor(clients) as pool:
            deadline = time.perf_counter() + seconds
            for _ in range(clients):
                pool.submit(_cas_loop, self.etcd.client[leader], key, deadline, run)
        return run

    def failover(self) -> float:
        """kill -9 the leader; seconds until a put through a survivor succeeds (as raft.py's etcd_bench)."""
        leader = self.etcd.leader()
        survivor = next(i for i in self.etcd.ids if i != leader)
        t_kill = time.perf_counter()
        self.etcd.kill(leader)
        while not self.etcd.call(survivor, "/v3/kv/put", {"key": _b64("f"), "value": _b64("v")}):
            if time.perf_counter() - t_kill > FAILOVER_LIMIT_S:
                raise TimeoutError(f"no etcd put through {survivor} within {FAILOVER_LIMIT_S:.0f} s")
        seconds = time.perf_counter() - t_kill
        self.etcd.start(leader, state="existing")
        self._wait_member(leader)
        return seconds

    def _wait_member(self, member: str, timeout_s: float = 60.0) -> None:
        """Until ``member`` answers status and its raft index reached the leader's."""
        deadline = time.perf_counter() + timeout_s
        while time.perf_counter() < deadline:
            st = self.etcd.call(member, "/v3/maintenance/status", {}, timeout_s=1.0)
            lead = self.etcd.call(self.etcd.leader(), "/v3/maintenance/status", {}, timeout_s=1.0)
            if st and lead and int(st.get("raftIndex", 0)) >= int(lead.get("raftIndex", 0)) - 10:
                return
            time.sleep(0.1)
        raise TimeoutError(f"etcd member {member} did not catch up within {timeout_s:.0f} s after restart")


# --- the section ---------------------------------------------------------------------------


def estimate_s(budget: Budget) -> float:
    secs = QUICK_MEASURE_S if budget.quick else MEASURE_S
    per_rep = len(CLIENTS) * 4 * (secs + 0.5) + 12  # 4 configurations + drain; failover + catch-up, both
    return 20 + budget.reps * per_rep + 10  # lab, agents, 3 voters, etcd up; teardown


def _add_run(section: Section, key: str, label: str, run: Run, *, goal: tuple[str, float] | None = None,
             anchor: str = "", ratio_to: str = "") -> None:
    ms = [1000 * v for v in run.lat_s]
    cpu_pct = 100 * run.client_cpu_s / run.wall_s if run.wall_s else math.nan
    if cpu_pct >= CLIENT_SATURATED_PCT:
        section.notes.append(f"{label}: the bench client used {cpu_pct:.0f} % of a core: it may be the bottleneck")
    section.figure(f"{key}.per_s", f"{label}: per second", "1/s", goal=goal, anchor=anchor,
                   ratio_to=ratio_to).add(run.per_s)
    section.figure(f"{key}.p50_ms", f"{label}: latency p50", "ms").add(percentile(ms, 50))
    section.figure(f"{key}.p99_ms", f"{label}: latency p99", "ms").add(percentile(ms, 99))
    section.figure(f"{key}.client_cpu_pct", f"{label}: bench client CPU (100 = one core)", "%").add(cpu_pct)
    ops = max(1, len(run.lat_s))
    section.figure(f"{key}.server_cpu_ms", f"{label}: server CPU per operation, 3 members", "ms").add(
        1000 * run.server_cpu_s / ops)


def _measure_rep(section: Section, meshd: MeshdSide, etcd: EtcdSide, rep: int, secs: float,
                 samples: dict[str, list[float]]) -> None:
    for n in CLIENTS:
        leader = meshd.leader()
        follower = next(h for h in HOSTS if h != leader)
        for role, host in (("leader", leader), ("follower", follower)):
            run = meshd.measure(host, n, secs)
            goal = (">=", 5000.0) if n == 64 else None
            _add_run(section, f"alloc.meshd.{role}.{n}c", f"meshd via {role}, {n} in flight", run, goal=goal,
                     anchor="etcd put, same clients, same run", ratio_to=f"alloc.etcd.put.{n}c.per_s")
            ops = max(1, len(run.lat_s))
            section.figure(f"alloc.meshd.{role}.{n}c.leader_cpu_ms",
                           f"meshd via {role}, {n} in flight: the Raft leader's CPU per operation", "ms").add(
                1000 * run.leader_cpu_s / ops)
            if role == "leader":
                section.figure(f"alloc.meshd.{role}.{n}c.follower_cpu_ms",
                               f"meshd via {role}, {n} in flight: one follower's CPU per operation (mean of 2)",
                               "ms").add(1000 * run.followers_cpu_s / 2 / ops)
            else:  # the follower that takes the requests does the API work: apart from the other
                section.figure(f"alloc.meshd.{role}.{n}c.entry_cpu_ms",
                               f"meshd via {role}, {n} in flight: the follower taking the requests, CPU per "
                               "operation", "ms").add(1000 * run.entry_cpu_s / ops)
                section.figure(f"alloc.meshd.{role}.{n}c.other_follower_cpu_ms",
                               f"meshd via {role}, {n} in flight: the other follower's CPU per operation",
                               "ms").add(1000 * (run.followers_cpu_s - run.entry_cpu_s) / ops)
            section.figure(f"alloc.meshd.{role}.{n}c.client_thread_cpu_pct",
                           f"meshd via {role}, {n} in flight: pipeline thread CPU", "%").add(
                100 * run.client_thread_cpu_s / run.wall_s)
            _note_errors(section, f"rep {rep + 1} meshd {role} {n}c", run)
            samples[f"meshd {role}, {n}c"] = run.lat_s
        run = etcd.put(n, secs)
        _add_run(section, f"alloc.etcd.put.{n}c", f"etcd put, {n} clients", run)
        samples[f"etcd put, {n}c"] = run.lat_s
        run = etcd.cas(n, secs, f"10.{rep}.{n}.0/{ETCD_SUBNET_BITS}")
        _add_run(section, f"alloc.etcd.cas.{n}c", f"etcd CAS allocator, {n} clients", run,
                 anchor="etcd put, same clients", ratio_to=f"alloc.etcd.put.{n}c.per_s")
        section.figure(f"alloc.etcd.cas.{n}c.conflicts_per_alloc", f"etcd CAS, {n} clients: retries per allocation",
                       "").add(run.retries / max(1, len(run.lat_s)))
        _note_errors(section, f"rep {rep + 1} etcd cas {n}c", run)
        samples[f"etcd cas, {n}c"] = run.lat_s
    section.figure("alloc.meshd.64c.ratio_to_etcd_put", "meshd via leader, 64 in flight / etcd put, 64 clients",
                   "×", goal=(">=", 2.0)).add(
        _last(section, "alloc.meshd.leader.64c.per_s") / _last(section, "alloc.etcd.put.64c.per_s"))
    section.figure("alloc.meshd.64c.follower_to_leader", "meshd, 64 in flight: via a follower / via the leader",
                   "×", goal=(">=", 0.9)).add(
        _last(section, "alloc.meshd.follower.64c.per_s") / _last(section, "alloc.meshd.leader.64c.per_s"))


def _last(section: Section, key: str) -> float:
    """The latest value of figure ``key`` (added earlier in the same rep)."""
    fig = section.get(key)
    assert fig is not None, f"no figure {key}"
    return fig.values[-1]


def _note_errors(section: Section, what: str, run: Run) -> None:
    if run.errors:
        section.notes.append(f"{what}: errors {dict(run.errors)}")


def _failover_rep(section: Section, meshd: MeshdSide, etcd: EtcdSide, rep: int) -> None:
    for key, label, side in (("meshd", "meshd: kill -9 leader → allocation through a survivor", meshd),
                             ("etcd", "etcd: kill -9 leader → put through a survivor", etcd)):
        kw: dict[str, Any] = {"anchor": "etcd, same run", "ratio_to": "alloc.failover.etcd_s"} if key == "meshd" else {}
        try:
            value = side.failover()
        except Exception as exc:  # one failed trial is reported; the next repetition still runs
            section.notes.append(f"rep {rep + 1} {key} failover: {type(exc).__name__}: {exc}")
            value = math.nan
        section.figure(f"alloc.failover.{key}_s", label, "s", **kw).add(value)


def _plots(section: Section, samples: dict[str, list[float]], history: list[dict[str, Any]]) -> list[Plot]:
    cdf = Plot("alloc_latency_64", "Latency at 64 clients (last repetition)", "latency (ms)", "fraction",
               kind="cdf")
    for label, lat in samples.items():
        if label.endswith("64c") and lat:
            ms = sorted(1000 * v for v in lat)
            step = math.ceil(len(ms) / MAX_PLOT_POINTS)
            cdf.lines[label] = [[], ms[::step]]
    rate = Plot("alloc_rate", "Operations per second by clients in flight (median)", "clients", "per second",
                logy=True)
    for key, label in (("meshd.leader", "meshd via leader"), ("meshd.follower", "meshd via follower"),
                       ("etcd.put", "etcd put"), ("etcd.cas", "etcd CAS allocator")):
        ys = [(f.median if (f := section.get(f"alloc.{key}.{n}c.per_s")) else math.nan) for n in CLIENTS]
        rate.lines[label] = [list(CLIENTS), ys]
    growth = Plot("alloc_meshd_state_size", "meshd: server CPU per allocation by endpoints already in the state",
                  "endpoints in the state", "CPU ms per allocation (3 agents)")
    for n in CLIENTS:
        rows = sorted((r["endpoints_before"], r["server_cpu_ms"]) for r in history if r["clients"] == n)
        growth.lines[f"{n} in flight"] = [[x for x, _ in rows], [y for _, y in rows]]
    return [rate, cdf, growth]


def _section(budget: Budget, secs: float) -> Section:
    return Section(
        "alloc", "Allocation through meshd's API beside etcd",
        method=(
            "**meshd**: three real `meshd agent` processes in lab network namespaces (`tools.cluster`, local "
            "profile but Raft timed like etcd: 100 ms heartbeat, 1 s election), one network "
            f"`{SUBNET}` (the largest subnet the state accepts). An allocation is one ENDPOINT_CONNECT (ROUTER "
            f"30028, CURVE) of a new container id with `host=\"{GHOST}\"`, a name that is no cluster member "
            "(`host_expected`, a host that joins later): the state accepts it and allocates the next free address, "
            "the reply comes once the change is committed "
            "and applied, and no kernel work follows (no agent owns the container; a host without a live VTEP "
            "gets no FDB entries) — each applied entry still wakes every agent's reconcile loop, which recomputes "
            "its desired state, finds nothing new for its host and skips the kernel pass. The client is pipelined: "
            "one DEALER, made by `SchedulerClient` inside a lab host's "
            "netns, keeps N requests in flight (each reply sends the next) and times each request from send "
            "to reply; run against the leader's ROUTER and against a follower's (it forwards the proposal to "
            "the leader). Allocated endpoints are never disconnected, so meshd's state grows through the run "
            "(thousands of endpoints by the last repetition); `setup.meshd_runs` and the last plot give the "
            "count before each meshd measurement. **etcd** 3.4: three members on loopback "
            "(`tools.bench.raft.Etcd`, its default timing, fsync), JSON gateway over HTTP/1.1, one connection "
            "per client thread: plain puts "
            "(`raft._etcd_put_loop`, one key per client) and a compare-and-swap IP allocator storing one "
            f"bitmap per subnet (a /{ETCD_SUBNET_BITS}, 8 KiB, fresh per measurement): range (value + "
            "mod_revision), set the lowest free bit, txn(compare mod_revision == rev → put bitmap), retry on "
            "conflict; its latency includes the retries. Rates count every operation completed, divided by "
            f"the wall time until the last one finished (window {secs:g} s, then drain). Each repetition runs "
            "every configuration once, interleaved (1, 16, 64 clients: meshd leader, meshd follower, etcd "
            "put, etcd CAS), then one failover trial each: kill -9 the leader, time until an allocation "
            "(meshd; retried with the same request_id on UNAVAILABLE/TIMEOUT/no answer within 0.5 s) or a "
            "put (etcd) through a survivor succeeds; the killed member is restarted and waited for (meshd: "
            "a voter again, lag ≤ 10; etcd: raft index within 10 of the leader's). Client CPU is the bench "
            "process's CPU over the window (100 % = one core; the Python client saturates near 100 %); "
            "server CPU is the three members' user+system CPU per operation, and for meshd also split by "
            "process: via the leader, the leader and the mean of the two followers (the leader's one Python "
            "thread is where a saturated run stops); via a follower, the leader, the follower taking the "
            "requests (it does the API work and a follower's Raft work: the busiest process there) and the "
            "other follower. The issue-19 goal *via a follower ≥ 0.9× via the leader* is its own figure."),
        setup={"reps": budget.reps, "window_s": secs, "clients": list(CLIENTS), "meshd_subnet": SUBNET,
               "meshd_host_field": GHOST, "meshd_args": list(RAFT_ARGS), "lab_prefix": PREFIX,
               "etcd_bitmap_subnet": f"/{ETCD_SUBNET_BITS}", "etcd_version": _etcd_version(),
               "cpus": os.cpu_count()},
    )


def _etcd_version() -> str:
    import subprocess
    try:
        out = subprocess.run(["etcd", "--version"], capture_output=True, text=True, timeout=10).stdout
    except OSError:
        return "not installed"
    return out.splitlines()[0] if out else "unknown"


def run(budget: Budget) -> Section:
    secs = QUICK_MEASURE_S if budget.quick else MEASURE_S
    section = _section(budget, secs)
    workdir = Path(budget.workdir) / "bench-alloc"
    samples: dict[str, list[float]] = {}
    meshd = etcd = None
    try:
        meshd = MeshdSide(workdir / "meshd")
        etcd = EtcdSide(workdir / "etcd")
        meshd.start()
        etcd.start()
        for rep in range(budget.reps):
            section.notes.append(f"rep {rep + 1}: meshd state holds {meshd.endpoint_count()} endpoints at the start")
            _measure_rep(section, meshd, etcd, rep, secs, samples)
            _failover_rep(section, meshd, etcd, rep)
    except Exception as exc:  # a broken cluster is a finding: reported, and everything is still removed
        section.error = f"{type(exc).__name__}: {exc}"
    finally:
        _close(meshd, etcd)
        shutil.rmtree(workdir, ignore_errors=True)
    section.plots = _plots(section, samples, meshd.history if meshd else [])
    section.setup["meshd_runs"] = meshd.history if meshd else []
    return section


def _close(meshd: MeshdSide | None, etcd: EtcdSide | None) -> None:
    try:
        if etcd is not None:
            etcd.close()
    finally:
        if meshd is not None:
            meshd.close()


def main(argv: list[str] | None = None) -> int:
    return section_main(run, __doc__, f"{QUICK_MEASURE_S:g} s windows instead of {MEASURE_S:g} s", argv)


if __name__ == "__main__":
    sys.exit(main())

"""Raft benchmark: 3 node processes on loopback, ZeroMQ + CURVE, fsync per batch.

Usage::

    .venv/bin/python tools/bench/raft.py                 # full run, one JSON line
    .venv/bin/python tools/bench/raft.py --quick         # shorter, no 1M-key phase
    .venv/bin/python tools/bench/raft.py --etcd          # also etcd (apt: etcd-server), ratios
    .venv/bin/python tools/bench/raft.py node ...        # one node (used by the bench/tests)

Measures: throughput and p50/p99 commit latency for 1, 16 and 64 concurrent
clients (each waits for its write's result); leader kill -9 -> first
committed write through a survivor (median/max over trials); with 1M keys
applied: snapshot time and size, cold restart of all nodes to the first
commit, and the catch-up time of a new member (learner; InstallSnapshot).

Each node also serves a plain (loopback-only) ZeroMQ ROUTER for clients:
request ``[rid, op, arg]`` msgpack, reply ``[rid, ok, result]``; ops are
``put`` (arg: a command = msgpack list of [key, value] pairs; result: the
count), ``read`` (read barrier, then the local value of key ``arg``),
``status``, ``digest`` (hash of the local state) and ``snapshot``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import msgpack
import trio
import zmq

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from consensus import RaftConfig, RaftError, RaftNode, RoleChanged, Storage  # noqa: E402
from meshd.state import NetworkState  # noqa: E402
from meshd.transport import ClusterKeys, Mesh, PeerTransport, TrioSocket, ZmqHost  # noqa: E402
from tools.bench._ports import free_ports  # noqa: E402
from tools.bench._proc import die_with_parent  # noqa: E402


class KV:
    """Command: msgpack list of [key, value]; sets them all; result: how many."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def apply(self, index: int, command: bytes) -> bytes:
        pairs = msgpack.unpackb(command)
        for k, v in pairs:
            self.data[k] = v
        return str(len(pairs)).encode()

    def snapshot(self) -> bytes:
        return msgpack.packb(self.data)  # insertion order is the apply order: deterministic

    def restore(self, data: bytes) -> None:
        self.data = msgpack.unpackb(data)


class MeshdState:
    """meshd's network state machine (``--sm meshd``; a command is an encoded state command,
    the result the encoded result), timing what a restart spends in it."""

    def __init__(self, *, warm: bool = True) -> None:
        self.state = NetworkState()
        if not warm:  # the driver runs warm_steps only when the state machine has it (A/B for the restart bench)
            self.warm_steps = None  # type: ignore[method-assign, assignment]
        self.restore_s = self.warm_s = self.warmed_at = 0.0
        #: (wall clock, seconds applying) per applied entry would cost too much: keep totals
        self.applies = 0
        self.apply_s = 0.0
        self.first_apply_s = 0.0
        self.last_apply_at = 0.0

    def apply(self, index: int, command: bytes) -> bytes:
        t0 = time.perf_counter()
        out = self.state.apply(index, command)
        dt = time.perf_counter() - t0
        if not self.applies:
            self.first_apply_s = dt
        self.applies += 1
        self.apply_s += dt
        self.last_apply_at = time.time()
        return out

    def snapshot(self) -> bytes:
        return self.state.snapshot()

    def restore(self, data: bytes) -> None:
        t0 = time.perf_counter()
        self.state.restore(data)
        self.restore_s += time.perf_counter() - t0

    def warm_steps(self) -> Iterator[None]:
        t0 = time.perf_counter()
        for _ in self.state.warm_steps():
            t1 = time.perf_counter()
            yield
            t0 += time.perf_counter() - t1  # the node's other work between steps is not warm's
        self.warm_s = time.perf_counter() - t0
        self.warmed_at = time.time()


# --- one node process ------------------------------------------------------------------


def node_config(args: argparse.Namespace) -> RaftConfig:
    return RaftConfig(
        tick_interval_s=args.tick_ms / 1000, election_ticks=args.election_ticks,
        snapshot_every_entries=args.snapshot_every, propose_timeout_s=5.0,
        initial_election_advance=not args.no_election_advance,
    )


async def serve_node(args: argparse.Namespace) -> None:
    timeline = {"main": time.time()}  # wall-clock marks of this process's start, for the restart bench
    keys = ClusterKeys.from_secret(bytes.fromhex(args.secret))
    peers = dict(p.split("=", 1) for p in args.peers.split(","))
    storage = Storage.open(args.dir)
    timeline["opened"] = time.time()
    if storage.recovery.torn_bytes:
        print(f"node {args.id}: cut torn tail {storage.recovery}", file=sys.stderr)
    sm: KV | MeshdState = MeshdState(warm=not args.no_warm) if args.sm == "meshd" else KV()
    host = ZmqHost(keys)
    async with trio.open_nursery() as nursery:
        await nursery.start(host.run)
        mesh = Mesh(host, args.id, peers[args.id])
        mesh.open()
        transport = PeerTransport(mesh)
        voters = args.bootstrap.split(",") if args.bootstrap else None
        node = RaftNode(args.id, config=node_config(args), transport=transport, storage=storage,
                        state_machine=sm, bootstrap=voters, io_in_thread=not args.inline_io)
        node.set_peers({k: v for k, v in peers.items() if k != args.id})  # dials the voters at once
        timeline["constructed"] = time.time()
        nursery.start_soon(_watch_leader, node, timeline, mesh)
        await nursery.start(node.run)
        ctx: zmq.Context = zmq.Context.instance()
        zs = ctx.socket(zmq.ROUTER)
        zs.setsockopt(zmq.LINGER, 0)
        zs.bind(args.client)
        sock = TrioSocket(zs)
        while True:
            ident, body = await sock.recv_multipart()
            nursery.start_soon(_serve_request, node, sm, sock, ident, body, timeline)


async def _watch_leader(node: RaftNode, timeline: dict[str, float], mesh: Mesh) -> None:
    """Mark when this process first knows a leader, its term, and the frames its mesh had dropped
    by then because the peer was not connected yet."""
    async for event in node.subscribe():
        if isinstance(event, RoleChanged) and event.leader is not None:
            timeline.setdefault("leader_known", time.time())
            timeline["leader_term"] = event.term
            timeline["dropped_before_leader"] = mesh.statistics().dropped_unconnected
            return


async def _serve_request(node: RaftNode, sm: KV | MeshdState, sock: TrioSocket, ident: bytes, body: bytes,
                         timeline: dict[str, float]) -> None:
    rid, op, arg = msgpack.unpackb(body)
    result: object
    try:
        if op == "put":
            out = await node.propose(arg)
            result = out if isinstance(sm, MeshdState) else out.decode()
        elif op == "timeline" and isinstance(sm, MeshdState):
            result = {**timeline, "restore_s": sm.restore_s, "applies": sm.applies, "apply_s": sm.apply_s,
                      "first_apply_s": sm.first_apply_s, "last_apply_at": sm.last_apply_at,
                      "warm_s": sm.warm_s, "warmed_at": sm.warmed_at}
        elif op == "read" and isinstance(sm, KV):
            await node.read_barrier()
            result = sm.data.get(arg)
        elif op == "add_learner":
            await node.add_learner(arg)
            result = None
        elif op == "digest":
            await node.wait_applied(node.status().commit)
            result = {"applied": node.status().applied, "sha256": hashlib.sha256(sm.snapshot()).hexdigest(),
                      "keys": len(sm.data) if isinstance(sm, KV) else sm.state.status().endpoints}
        elif op == "snapshot":
            t0 = time.perf_counter()
            index, size = await node.take_snapshot()
            result = {"index": index, "bytes": size, "seconds": time.perf_counter() - t0}
        else:
            s = node.status()
            result = {"role": s.role.value, "leader": s.leader, "term": s.term,
                      "commit": s.commit, "applied": s.applied, "snapshot_index": s.snapshot_index,
                      "cpu_s": time.process_time()}
        reply = [rid, True, result]
    except RaftError as exc:  # Unavailable, NotLeader (membership), SessionExpired
        reply = [rid, False, f"{type(exc).__name__}: {exc}"]
    await sock.send_multipart([ident, msgpack.packb(reply)])


# --- cluster control from the bench ---------------------------------------------------------


class Procs:
    """Three node processes with fixed ports and data directories."""

    def __init__(self, base: Path, opts: list[str]) -> None:
        self.base, self.opts = base, opts
        self.ids = ["a", "b", "c"]  # founding voters; "d" is a spare that joins later
        names = [*self.ids, "d"]
        ports = iter(free_ports(2 * len(names)))
        self.raft = {i: f"tcp://127.0.0.1:{next(ports)}" for i in names}
        self.client = {i: f"tcp://127.0.0.1:{next(ports)}" for i in names}
        self.secret = os.urandom(32).hex()
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, node_id: str, bootstrap: bool = False) -> None:
        peers = ",".join(f"{k}={v}" for k, v in self.raft.items())
        cmd = [sys.executable, str(Path(__file__).resolve()), "node", "--id", node_id,
               "--dir", str(self.base / node_id), "--raft", self.raft[node_id],
               "--client", self.client[node_id], "--peers", peers, "--secret", self.secret,
               *self.opts]
        if bootstrap:
            cmd += ["--bootstrap", ",".join(self.ids)]
        self.procs[node_id] = subprocess.Popen(cmd, start_new_session=True, preexec_fn=die_with_parent)

    def kill(self, node_id: str, sig: int = signal.SIGKILL) -> None:
        p = self.procs.pop(node_id)
        p.send_signal(sig)
        p.wait()

    def stop_all(self) -> None:
        for i in list(self.procs):
            self.kill(i)


class Client:
    """One DEALER per concurrent caller; requests are answered in order."""

    def __init__(self, address: str) -> None:
        zs: zmq.Socket = zmq.Context.instance().socket(zmq.DEALER)
        zs.setsockopt(zmq.LINGER, 0)
        zs.connect(address)
        self.sock = TrioSocket(zs)
        self.rid = 0

    async def call(self, op: str, arg=None, timeout_s: float = 10.0):
        self.rid += 1
        await self.sock.send_multipart([msgpack.packb([self.rid, op, arg])])
        with trio.fail_after(timeout_s):
            while True:
                (body,) = await self.sock.recv_multipart()
                rid, ok, result = msgpack.unpackb(body)
                if rid == self.rid:
                    return ok, result

    def close(self) -> None:
        self.sock.close()


async def status_of(procs: Procs, node_id: str, timeout_s: float = 0.5):
    c = Client(procs.client[node_id])
    try:
        return (await c.call("status", timeout_s=timeout_s))[1]
    except trio.TooSlowError:
        return None
    finally:
        c.close()


async def wait_leader(procs: Procs, exclude: str | None = None) -> str:
    while True:
        for i in procs.procs:
            if i == exclude:
                continue
            s = await status_of(procs, i)
            if s and s["role"] == "leader":
                return i
        await trio.sleep(0.05)


def put_cmd(n: int, tag: str) -> bytes:
    return msgpack.packb([[f"{tag}{i}", f"v{i}"] for i in range(n)])


# --- measurements --------------------------------------------------------------------


async def throughput(procs: Procs, clients: int, seconds: float) -> dict:
    leader = await wait_leader(procs)
    lat: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker(k: int) -> None:
        c = Client(procs.client[leader])
        cmd = put_cmd(1, f"w{k}-")
        try:
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                ok, _ = await c.call("put", cmd)
                if ok:
                    lat.append(time.perf_counter() - t0)
        finally:
            c.close()

    cpu0 = await cluster_cpu(procs)
    t0 = time.perf_counter()
    async with trio.open_nursery() as n:
        for k in range(clients):
            n.start_soon(worker, k)
    elapsed = time.perf_counter() - t0
    cpu = await cluster_cpu(procs) - cpu0
    lat.sort()
    return {"clients": clients, "commits_per_s": round(len(lat) / elapsed),
            "node_cpu_ms_per_commit": round(1000 * cpu / max(1, len(lat)), 3),
            "p50_ms": round(1000 * lat[len(lat) // 2], 2),
            "p99_ms": round(1000 * lat[int(len(lat) * 0.99)], 2)}


async def cluster_cpu(procs: Procs) -> float:
    """CPU seconds used so far by all node processes together."""
    total = 0.0
    for i in procs.procs:
        s = await status_of(procs, i, 5)
        total += s["cpu_s"] if s else 0.0
    return total


async def failover(procs: Procs, trials: int) -> dict:
    times = []
    for _ in range(trials):
        leader = await wait_leader(procs)
        survivor = next(i for i in procs.ids if i != leader)
        c = Client(procs.client[survivor])
        assert (await c.call("put", put_cmd(1, "pre")))[0]
        t_kill = time.perf_counter()
        procs.kill(leader)
        while True:
            try:
                ok, _ = await c.call("put", put_cmd(1, "f"), timeout_s=10)
            except trio.TooSlowError:
                ok = False
            if ok:
                times.append(time.perf_counter() - t_kill)
                break
        c.close()
        procs.start(leader)
        await caught_up(procs, leader)
    return {"trials": trials, "median_s": round(statistics.median(times), 3),
            "max_s": round(max(times), 3)}


async def caught_up(procs: Procs, node_id: str, timeout_s: float = 300) -> float:
    t0 = time.perf_counter()
    with trio.fail_after(timeout_s):
        while True:
            leader = await wait_leader(procs)
            ls, ns = await status_of(procs, leader, 5), await status_of(procs, node_id, 5)
            if ls and ns and ns["applied"] >= ls["commit"]:
                return time.perf_counter() - t0
            await trio.sleep(0.05)


async def million(procs: Procs, keys: int) -> dict:
    leader = await wait_leader(procs)
    batch = 1000
    t0 = time.perf_counter()

    async def loader(part: int) -> None:
        c = Client(procs.client[leader])
        for b in range(part, keys // batch, 8):
            ok, res = await c.call("put", put_cmd(batch, f"k{b}-"), timeout_s=60)
            assert ok, res
        c.close()

    async with trio.open_nursery() as n:
        for part in range(8):
            n.start_soon(loader, part)
    load_s = time.perf_counter() - t0
    c = Client(procs.client[leader])
    ok, snap = await c.call("snapshot", timeout_s=120)
    c.close()
    for i in procs.ids:  # followers snapshot too, so every node restarts from one
        if i != leader:
            c = Client(procs.client[i])
            await c.call("snapshot", timeout_s=120)
            c.close()
    procs.stop_all()
    t0 = time.perf_counter()
    for i in procs.ids:
        procs.start(i)
    c = Client(procs.client["a"])  # queued by ZeroMQ until "a" listens; forwarded to the leader
    while not (await c.call("put", put_cmd(1, "cold"), timeout_s=30))[0]:
        pass  # each call waits up to 30 s itself: retry at once until the restarted cluster commits
    cold_s = time.perf_counter() - t0
    c.close()
    leader = await wait_leader(procs)
    procs.start("d")  # a new member: everything arrives by InstallSnapshot + entries
    t0 = time.perf_counter()
    c = Client(procs.client[leader])
    assert (await c.call("add_learner", "d", timeout_s=30))[0]
    c.close()
    await caught_up(procs, "d")
    catch_s = time.perf_counter() - t0
    return {"keys": keys, "load_s": round(load_s, 1), "snapshot_s": round(snap["seconds"], 3),
            "snapshot_bytes": snap["bytes"], "cold_restart_to_commit_s": round(cold_s, 3),
            "follower_catch_up_s": round(catch_s, 3)}


# --- etcd beside it (same machine, same client pattern over its JSON gateway) ----------------


class Etcd:
    """Three etcd members on loopback (etcd's default 100 ms heartbeat, 1 s election)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.ids = ["e1", "e2", "e3"]
        ports = iter(free_ports(2 * len(self.ids)))
        self.peer = {i: f"http://127.0.0.1:{next(ports)}" for i in self.ids}
        self.client = {i: f"http://127.0.0.1:{next(ports)}" for i in self.ids}
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, i: str, state: str = "new") -> None:
        cluster = ",".join(f"{k}={v}" for k, v in self.peer.items())
        self.procs[i] = subprocess.Popen(
            ["etcd", "--name", i, "--data-dir", str(self.base / i),
             "--listen-client-urls", self.client[i], "--advertise-client-urls", self.client[i],
             "--listen-peer-urls", self.peer[i], "--initial-advertise-peer-urls", self.peer[i],
             "--initial-cluster", cluster, "--initial-cluster-state", state,
             "--initial-cluster-token", "bench", "--log-level", "error"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def kill(self, i: str) -> None:
        p = self.procs.pop(i)
        p.kill()
        p.wait()

    def stop_all(self) -> None:
        for i in list(self.procs):
            self.kill(i)

    def call(self, i: str, path: str, body: dict, timeout_s: float = 2.0) -> dict | None:
        import http.client
        host, port = self.client[i][len("http://"):].split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=timeout_s)
        try:
            conn.request("POST", path, json.dumps(body))
            resp = conn.getresponse()
            data = json.loads(resp.read() or b"{}")
            return data if resp.status == 200 else None
        except (OSError, ValueError):
            return None
        finally:
            conn.close()

    def leader(self) -> str:
        while True:
            for i in self.procs:
                st = self.call(i, "/v3/maintenance/status", {})
                if st and st.get("leader") and st["leader"] == st["header"]["member_id"]:
                    return i
            time.sleep(0.05)


def _etcd_put_loop(etcd: Etcd, node: str, key: str, deadline: float, lat: list[float]) -> None:
    import base64
    import http.client
    host, port = etcd.client[node][len("http://"):].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    body = json.dumps({"key": base64.b64encode(key.encode()).decode(),
                       "value": base64.b64encode(b"v").decode()})
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        conn.request("POST", "/v3/kv/put", body)
        resp = conn.getresponse()
        resp.read()
        if resp.status == 200:
            lat.append(time.perf_counter() - t0)
    conn.close()


def etcd_bench(base: Path, secs: float, trials: int) -> dict:
    from concurrent.futures import ThreadPoolExecutor
    etcd = Etcd(base)
    out: dict = {}
    try:
        for i in etcd.ids:
            etcd.start(i)
        out["throughput"] = []
        for n in (1, 16, 64):
            leader = etcd.leader()
            lat: list[float] = []
            t0 = time.perf_counter()
            with ThreadPoolExecutor(n) as pool:
                for k in range(n):
                    pool.submit(_etcd_put_loop, etcd, leader, f"w{k}", t0 + secs, lat)
            elapsed = time.perf_counter() - t0
            lat.sort()
            out["throughput"].append({"clients": n, "commits_per_s": round(len(lat) / elapsed),
                                      "p50_ms": round(1000 * lat[len(lat) // 2], 2),
                                      "p99_ms": round(1000 * lat[int(len(lat) * 0.99)], 2)})
        times = []
        for _ in range(trials):
            leader = etcd.leader()
            survivor = next(i for i in etcd.ids if i != leader)
            t_kill = time.perf_counter()
            etcd.kill(leader)
            while not etcd.call(survivor, "/v3/kv/put", {"key": "Zg==", "value": "dg=="}):
                pass  # each call waits up to 2 s itself: retry at once, the first success ends the failover
            times.append(time.perf_counter() - t_kill)
            etcd.start(leader, state="existing")
            time.sleep(2)
        out["failover"] = {"trials": trials, "median_s": round(statistics.median(times), 3),
                           "max_s": round(max(times), 3)}
    finally:
        etcd.stop_all()
    return out


def ratios(ours: dict, theirs: dict) -> dict:
    out = {}
    for a, b in zip(ours["throughput"], theirs["throughput"], strict=True):
        out[f"commits_per_s_{a['clients']}c"] = round(a["commits_per_s"] / b["commits_per_s"], 2)
        out[f"p50_{a['clients']}c"] = round(a["p50_ms"] / b["p50_ms"], 2)
    out["failover_median"] = round(ours["failover"]["median_s"] / theirs["failover"]["median_s"], 2)
    return out


async def bench(args: argparse.Namespace) -> dict:
    base = Path(tempfile.mkdtemp(prefix="raft-bench-", dir=args.dir))
    opts = ["--tick-ms", str(args.tick_ms), "--election-ticks", str(args.election_ticks)]
    if args.inline_io:
        opts.append("--inline-io")
    procs = Procs(base, opts)
    out: dict = {"bench": "raft", "nodes": 3, "fsync": True, "tick_ms": args.tick_ms,
                 "election_ticks": args.election_ticks}
    try:
        for i in procs.ids:
            procs.start(i, bootstrap=True)
        await wait_leader(procs)
        secs = 2.0 if args.quick else 5.0
        if "throughput" in args.phases:
            out["throughput"] = [await throughput(procs, n, secs) for n in (1, 16, 64)]
        if "failover" in args.phases:
            out["failover"] = await failover(procs, 3 if args.quick else args.trials)
        if "million" in args.phases and not args.quick:
            out["million"] = await million(procs, args.keys)
    finally:
        procs.stop_all()
    try:
        if args.etcd and shutil.which("etcd") and "throughput" in out and "failover" in out:
            trials = 3 if args.quick else args.trials
            out["etcd"] = await trio.to_thread.run_sync(etcd_bench, base / "etcd", secs, trials)
            out["ratio_ours_to_etcd"] = ratios(out, out["etcd"])
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tick-ms", type=float, default=50)
    ap.add_argument("--election-ticks", type=int, default=10)
    sub = ap.add_subparsers(dest="cmd")
    n = sub.add_parser("node")
    for flag in ("--id", "--dir", "--raft", "--client", "--peers", "--secret"):
        n.add_argument(flag, required=True)
    n.add_argument("--inline-io", action="store_true", help="fsync on the event loop thread")
    n.add_argument("--sm", choices=("kv", "meshd"), default="kv",
                   help="the state machine: a key-value map, or meshd's network state (tools.bench.restart)")
    n.add_argument("--no-warm", action="store_true",
                   help="meshd state: build the indexes at the first apply, not while the node elects")
    n.add_argument("--no-election-advance", action="store_true",
                   help="start the election clock at 0 (RaftConfig.initial_election_advance off)")
    n.add_argument("--bootstrap", help="founding voters, comma-separated (new cluster only)")
    n.add_argument("--snapshot-every", type=int, default=1_000_000_000)
    n.add_argument("--tick-ms", type=float, default=50)
    n.add_argument("--election-ticks", type=int, default=10)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--inline-io", action="store_true", help="nodes fsync on their event loop thread")
    ap.add_argument("--etcd", action="store_true", help="also run etcd (apt: etcd-server) and print ratios")
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--phases", default="throughput,failover,million",
                    help="comma-separated subset of throughput,failover,million")
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--dir", default="/var/tmp", help="where data directories go (a real disk)")
    args = ap.parse_args(argv)
    if args.cmd == "node":
        if os.environ.get("RAFT_BENCH_PROFILE"):  # cProfile a node; stats written on SIGTERM
            import cProfile
            prof = cProfile.Profile()
            out = f"{os.environ['RAFT_BENCH_PROFILE']}.{args.id}"

            def dump_and_exit(*_: object) -> None:
                prof.disable()
                prof.dump_stats(out)
                os._exit(0)

            signal.signal(signal.SIGTERM, dump_and_exit)
            prof.enable()
        else:
            signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        trio.run(serve_node, args)
        return 0
    random.seed(0)
    print(json.dumps(trio.run(bench, args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Cold restart of three Raft nodes holding meshd's network state: prints one JSON line.

    .venv/bin/python -m tools.bench.restart                     # 1,000,000 allocations
    .venv/bin/python -m tools.bench.restart --connects 100000 --tail 1000

1. Builds the state of ``tools.bench.state``'s workload (``--connects`` Connects,
   1,000 hosts) in this process and writes it as each node's Raft snapshot with
   ``consensus.Storage`` (the file a node writes after ``take_snapshot``; the blob
   is the one the node's own applier makes, session table included).
2. Starts three ``tools/bench/raft.py node --sm meshd`` processes (ZeroMQ + CURVE
   on loopback, fsync per batch) from those snapshots and commits a tail of
   ``--tail`` more Connects into the /12 through the leader (16 in flight); they stay in the
   log, after the snapshot.
3. Kills all three (SIGKILL), starts them again and times until a new Connect
   into the /12 sent to node ``a`` (a follower forwards it) comes back committed and applied:
   ``cold_restart_to_commit_s``.

The restarted leader's timeline splits that time (all in seconds from the
restart): ``python_start_s`` (interpreter, imports), ``storage_open_s``
(segments scanned, snapshot file read and checked), ``restore_s`` (the
snapshot into the state machine), ``construct_s`` (the rest of the node's
start: the log's entries loaded), ``leader_known_s`` (the election),
``replay_s``/``replayed`` (applying the tail, which waits for the new leader's
commit index), ``first_apply_s`` (the first entry applied after the restore:
without warm it builds the state's indexes), ``warm_s``/``warmed_at_s`` (the
state's ``warm_steps``, run on the node's event loop before its first apply),
``term_before``/``leader_term`` (a term more than one above the one before the
kill: more than one election round) and ``dropped_before_leader`` (frames the
leader's mesh dropped because a peer was not connected yet, up to its election).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import trio

from consensus import ConfState, MemoryNetwork, RaftConfig, RaftNode, Snapshot, Storage
from meshd.state import Connect, Connected, NetworkState, decode_result, encode_command
from tools.bench.raft import Client, Procs, status_of, wait_leader
from tools.bench.state import build_commands

NODES = ("a", "b", "c")


def seed(base: Path, connects: int, hosts: int) -> int:
    """Write the snapshot of ``connects`` allocations into each node's data directory; return its log index."""
    nets, cmds = build_commands(connects, hosts)
    state = NetworkState(change_log_size=10_000)
    gc.disable()  # the million commands and endpoints form no cycles
    try:
        for index, cmd in enumerate(nets + cmds, 1):
            state.execute(cmd, index)
    finally:
        gc.enable()
    index = state.last_index
    del cmds
    # the node's own applier wraps the state's bytes (with its session table)
    wrapper = RaftNode("seed", config=RaftConfig(), transport=MemoryNetwork().transport("seed"),
                       storage=Storage.open(base / "seed", fsync=False), state_machine=state)
    snap = Snapshot(index, 1, ConfState(frozenset(NODES)), wrapper.applier.snapshot())
    wrapper.storage.close()
    shutil.rmtree(base / "seed")
    for node in NODES:
        storage = Storage.open(base / node)
        storage.write_snapshot(snap)
        storage.compact(snap)
        storage.close()
    return index


async def put(client: Client, cmd: Connect, timeout_s: float = 30) -> None:
    """Commit one command, retrying until the cluster answers (a restarting cluster may refuse)."""
    while True:
        try:
            ok, result = await client.call("put", encode_command(cmd), timeout_s=timeout_s)
        except trio.TooSlowError:
            continue
        if ok:
            decoded = decode_result(result)
            if not isinstance(decoded, Connected):
                raise SystemExit(f"{cmd} was refused: {decoded}")
            return


async def tail(procs: Procs, count: int, hosts: int) -> None:
    """Commit ``count`` Connects into the /12 (the /24s are full), 16 in flight."""
    leader = await wait_leader(procs)

    async def worker(part: int) -> None:
        client = Client(procs.client[leader])
        try:
            for i in range(part, count, 16):
                await put(client, Connect(endpoint_id=f"t{i:011x}", network="big",
                                          host=f"host-{i % hosts:04d}"))
        finally:
            client.close()

    async with trio.open_nursery() as nursery:
        for part in range(16):
            nursery.start_soon(worker, part)


async def restart(procs: Procs) -> dict:
    before = await status_of(procs, await wait_leader(procs), 5)
    procs.stop_all()  # SIGKILL: nothing is flushed or snapshotted on the way down
    t0 = time.time()
    for node in NODES:
        procs.start(node)
    client = Client(procs.client["a"])  # ZeroMQ queues the request until "a" listens
    try:
        await put(client, Connect(endpoint_id="cold0000000", network="big", host="host-0000"))
    finally:
        client.close()
    cold_s = time.time() - t0
    leader = await wait_leader(procs)
    client = Client(procs.client[leader])
    try:
        ok, tl = await client.call("timeline", timeout_s=10)
    finally:
        client.close()
    if not ok:
        raise SystemExit(f"node {leader} gave no timeline: {tl}")
    return {
        "cold_restart_to_commit_s": round(cold_s, 3),
        "leader": leader,
        "python_start_s": round(tl["main"] - t0, 3),
        "storage_open_s": round(tl["opened"] - tl["main"], 3),
        "restore_s": round(tl["restore_s"], 3),
        "construct_s": round(tl["constructed"] - tl["opened"] - tl["restore_s"], 3),
        "leader_known_s": round(tl["leader_known"] - t0, 3),
        "term_before": before["term"] if before else None,
        "leader_term": tl["leader_term"],
        "dropped_before_leader": tl["dropped_before_leader"],
        "replayed": tl["applies"] - 1,  # the last apply is the new command
        "replay_s": round(tl["apply_s"], 3),
        "first_apply_s": round(tl["first_apply_s"], 3),
        "warm_s": round(tl["warm_s"], 3),
        "warmed_at_s": round(tl["warmed_at"] - t0, 3),
        "applied_at_s": round(tl["last_apply_at"] - t0, 3),
    }


async def bench(args: argparse.Namespace) -> dict:
    base = Path(tempfile.mkdtemp(prefix="restart-bench-", dir=args.dir))
    procs = Procs(base, ["--sm", "meshd", "--tick-ms", str(args.tick_ms),
                         "--election-ticks", str(args.election_ticks), *(["--no-warm"] if args.no_warm else []),
                         *(["--no-election-advance"] if args.no_election_advance else [])])
    try:
        t0 = time.perf_counter()
        index = seed(base, args.connects, args.hosts)
        seed_s = time.perf_counter() - t0
        for node in NODES:
            procs.start(node)
        t0 = time.perf_counter()
        await tail(procs, args.tail, args.hosts)
        tail_s = time.perf_counter() - t0
        out = await restart(procs)
    finally:
        procs.stop_all()
        shutil.rmtree(base, ignore_errors=True)
    return {"bench": "restart", "connects": args.connects, "tail": args.tail, "snapshot_index": index,
            "seed_s": round(seed_s, 1), "tail_s": round(tail_s, 1), "tick_ms": args.tick_ms,
            "election_ticks": args.election_ticks, "warm": not args.no_warm,
            "election_advance": not args.no_election_advance, **out, "load_avg_1m": os.getloadavg()[0]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--connects", type=int, default=1_000_000)
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--tail", type=int, default=2000, help="Connects committed after the snapshot (kept in the log)")
    ap.add_argument("--tick-ms", type=float, default=50)
    ap.add_argument("--election-ticks", type=int, default=10)
    ap.add_argument("--no-warm", action="store_true",
                    help="nodes build the state's indexes at their first apply, not while they elect")
    ap.add_argument("--no-election-advance", action="store_true",
                    help="nodes start their election clock at 0 (RaftConfig.initial_election_advance off)")
    ap.add_argument("--dir", default="/var/tmp", help="where data directories go (a real disk; made if missing)")
    args = ap.parse_args(argv)
    Path(args.dir).mkdir(parents=True, exist_ok=True)
    print(json.dumps(trio.run(bench, args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark of the network state machine: prints one JSON line.

    .venv/bin/python -m tools.bench.state                # 1,000,000 connects (about a minute)
    .venv/bin/python -m tools.bench.state --connects 100000

Creates one /12 network and as many /24 networks as needed, then applies
``--connects`` Connect commands (half into the /12, half spread over the
/24s; 12-hex-digit container ids like Docker's short ids, 1,000 hosts, one in
ten endpoints with a QoS), and measures:

* ``applies_per_s``: typed :meth:`NetworkState.execute` of pre-built commands
  (the pure state machine; goal >= 200,000/s), per wall-clock second and per
  CPU second (``*_cpu_s``: what a shared, overloaded machine reports honestly;
  ``load_avg_1m`` says how loaded it was);
* ``bytes_applies_per_cpu_s``: :meth:`NetworkState.apply` of encoded log entries,
  including msgpack decode of the command and encode of the result, on a
  sample of ``--bytes-sample`` connects;
* ``snapshot_bytes`` / ``snapshot_s`` (goals <= 32 MB, <= 1 s) and
  ``restore_s`` (goal <= 0.5 s): the snapshot into a state that answers
  queries and commands (each network's endpoint dict and the cross-network
  indexes are built at first use), with a check that the restored state equals;
* ``warm_s``: :meth:`NetworkState.warm` after that restore (the container and
  name indexes and the big networks' dicts, which a Raft node builds in steps
  on its event loop while it elects), and ``first_connect_s``: a Connect into
  the /12 on a restored state that was not warmed (what the first command pays
  without it);
* ``state_mib``: Python heap held by a restored state with every index built
  (tracemalloc).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import sys
import time
import tracemalloc
from collections.abc import Iterator

from meshd.state import Connect, CreateNetwork, NetworkState, Qos, encode_command

_PER_24 = 253  # a /24 has 256 addresses minus network, broadcast and gateway


def build_commands(connects: int, hosts: int) -> tuple[list, list]:
    """(network creations, connects) for the workload described above."""
    in_big = connects // 2
    n24 = -(-(connects - in_big) // _PER_24)
    nets = [CreateNetwork(name="big", tenant="bench", subnet="10.0.0.0/12")]
    nets += [CreateNetwork(name=f"n{i}", tenant="bench", subnet=f"10.{16 + i // 256}.{i % 256}.0/24")
             for i in range(n24)]
    qos = Qos(rate_kbit=10_000, burst_bytes=32_768, latency_ms=50)
    cmds = []
    for i in range(connects):
        net = "big" if i < in_big else f"n{(i - in_big) // _PER_24}"
        cmds.append(Connect(endpoint_id=f"{i:012x}", network=net, host=f"host-{i % hosts:04d}",
                            qos=qos if i % 10 == 0 else Qos()))
    return nets, cmds


class Timer:
    """Wall-clock and CPU seconds of a block (CPU time is what a shared,
    overloaded machine cannot steal from the measurement)."""

    def __init__(self) -> None:
        self.wall_s = 0.0
        self.cpu_s = 0.0

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        w, c = time.perf_counter(), time.process_time()
        yield
        self.wall_s, self.cpu_s = time.perf_counter() - w, time.process_time() - c


def run(connects: int, hosts: int, bytes_sample: int, gc_during_apply: bool) -> dict:
    nets, cmds = build_commands(connects, hosts)
    state = NetworkState(change_log_size=10_000)
    for index, cmd in enumerate(nets, 1):
        state.execute(cmd, index)
    apply_t = _apply_all(state, cmds, len(nets) + 1, gc_during_apply)
    snap, snap_t, restore_t, warm_t = _persist(state)
    first_t = _first_connect(snap, len(nets) + connects + 1)
    gc.collect()
    tracemalloc.start()
    measured = NetworkState()
    measured.restore(snap)
    measured.warm(every_network=True)
    state_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del measured
    return {
        "bench": "state",
        "connects": connects,
        "networks": len(nets),
        "hosts": hosts,
        "gc_during_apply": gc_during_apply,
        "applies_per_s": round(connects / apply_t.wall_s),
        "applies_per_cpu_s": round(connects / apply_t.cpu_s),
        "bytes_applies_per_cpu_s": _bytes_path(nets, cmds[:bytes_sample]),
        "snapshot_bytes": len(snap),
        "snapshot_s": round(snap_t.wall_s, 3),
        "snapshot_cpu_s": round(snap_t.cpu_s, 3),
        "restore_s": round(restore_t.wall_s, 3),
        "restore_cpu_s": round(restore_t.cpu_s, 3),
        "warm_s": round(warm_t.wall_s, 3),
        "warm_cpu_s": round(warm_t.cpu_s, 3),
        "first_connect_s": round(first_t.wall_s, 3),
        "first_connect_cpu_s": round(first_t.cpu_s, 3),
        "load_avg_1m": _load(),
        "state_mib": round(state_bytes / 2**20, 1),
        "python": sys.version.split()[0],
        "goals": {"applies_per_s": 200_000, "snapshot_bytes": 32 * 10**6, "snapshot_s": 1.0, "restore_s": 0.5},
    }


def _apply_all(state: NetworkState, cmds: list, first_index: int, gc_during_apply: bool) -> Timer:
    gc.collect()
    gc.freeze()  # the million pre-built commands are the benchmark's, not the state's: keep them out of GC passes
    if not gc_during_apply:
        gc.disable()
    timer = Timer()
    try:
        with timer():
            for index, cmd in enumerate(cmds, first_index):
                state.execute(cmd, index)
    finally:
        gc.enable()
        gc.unfreeze()
    rejected = state.status().commands_rejected
    if rejected:
        raise SystemExit(f"{rejected} connects were rejected: the benchmark is wrong")
    return timer


def _persist(state: NetworkState) -> tuple[bytes, Timer, Timer, Timer]:
    snap_t, restore_t, warm_t = Timer(), Timer(), Timer()
    with snap_t():
        snap = state.snapshot()
    restored = NetworkState()
    with restore_t():
        restored.restore(snap)
    if restored.snapshot() != snap:  # (networks not yet opened are written back as read)
        raise SystemExit("restored state differs from the original")
    with warm_t():
        restored.warm()
    if restored.snapshot() != snap:  # (now written from the built dicts)
        raise SystemExit("restored state differs from the original after warm()")
    return snap, snap_t, restore_t, warm_t


def _first_connect(snap: bytes, index: int) -> Timer:
    """One Connect into the /12 on a freshly restored state (it builds the indexes it needs)."""
    state = NetworkState()
    state.restore(snap)
    timer = Timer()
    with timer():
        result = state.execute(Connect(endpoint_id="first", network="big", host="host-0000"), index)
    if state.status().commands_rejected:
        raise SystemExit(f"the first connect after a restore was rejected: {result}")
    return timer


def _load() -> float | None:
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except OSError:
        return None


def _bytes_path(nets: list, sample: list) -> int:
    """Connects per second through apply(index, bytes) -> bytes."""
    state = NetworkState(change_log_size=10_000)
    entries = [encode_command(c) for c in nets + sample]
    for i, data in enumerate(entries[: len(nets)], 1):
        state.apply(i, data)
    timer = Timer()
    with timer():
        for i, data in enumerate(entries[len(nets) :], len(nets) + 1):
            state.apply(i, data)
    return round(len(sample) / timer.cpu_s)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connects", type=int, default=1_000_000)
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--bytes-sample", type=int, default=100_000)
    parser.add_argument(
        "--no-gc-during-apply", action="store_true",
        help="pause Python's cyclic GC while applying (as a daemon could, since the state is acyclic)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    print(json.dumps(run(args.connects, args.hosts, args.bytes_sample, not args.no_gc_during_apply)))


if __name__ == "__main__":
    main()

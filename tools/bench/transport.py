"""Benchmark: request/reply round trips through the trio transport vs raw pyzmq.

Each configuration runs an echo server in its own process (ROUTER) and a
client (DEALER) in this one, one request outstanding at a time over loopback
TCP, so the figure is the per-message cost of the stack:

* ``raw``        blocking pyzmq on both ends (the anchor);
* ``trio``       meshd.transport (TrioSocket via ZmqHost) on both ends, no CURVE;
* ``trio_curve`` the same with CURVE keys derived from a cluster secret and
                 the ZAP handler admitting the client, as between meshd hosts.

Configurations are interleaved over ``--reps`` repetitions so machine noise
hits all alike; the JSON line reports the median rate (round trips/s), median
p50/p99 latency (µs), the min-max of the rate, and each trio rate as a ratio
of raw's.  Goal (issue 2): the trio transport keeps >= 50 % of raw's rate.

Usage::

    .venv/bin/python -m tools.bench.transport [--seconds 2] [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import time
from typing import Any

import trio
import zmq

from meshd.transport import ClusterKeys, ZmqHost, bound_endpoint, new_secret

CONFIGS = ("raw", "trio", "trio_curve")


def _raw_server(conn) -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind("tcp://127.0.0.1:0")
    conn.send(sock.getsockopt_string(zmq.LAST_ENDPOINT))
    while True:
        frames = sock.recv_multipart()
        if frames[1] == b"stop":
            break
        sock.send_multipart(frames)
    ctx.destroy(linger=0)


def _trio_server(conn, secret: bytes | None) -> None:
    async def main() -> None:
        host = ZmqHost(ClusterKeys.from_secret(secret) if secret else None)
        async with trio.open_nursery() as nursery:
            await nursery.start(host.run)
            sock = host.listen(zmq.ROUTER, "tcp://127.0.0.1:0")
            conn.send(bound_endpoint(sock))
            while True:
                frames = await sock.recv_multipart()
                if frames[1] == b"stop":
                    break
                await sock.send_multipart(frames)
            nursery.cancel_scope.cancel()

    trio.run(main)


def _run_raw(endpoint: str, seconds: float) -> list[float]:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    lat = []
    payload = b"x" * 64
    sock.send(payload)
    sock.recv()  # warm up the connection
    end = time.perf_counter() + seconds
    while (t0 := time.perf_counter()) < end:
        sock.send(payload)
        sock.recv()
        lat.append(time.perf_counter() - t0)
    sock.send(b"stop")
    time.sleep(0.05)
    ctx.destroy(linger=0)
    return lat


def _run_trio(endpoint: str, seconds: float, secret: bytes | None) -> list[float]:
    async def main() -> list[float]:
        host = ZmqHost(ClusterKeys.from_secret(secret) if secret else None)
        async with trio.open_nursery() as nursery:
            await nursery.start(host.run)
            sock = host.dial(zmq.DEALER, endpoint)
            payload = b"x" * 64
            await sock.send_multipart([payload])
            await sock.recv_multipart()
            lat = []
            end = time.perf_counter() + seconds
            while (t0 := time.perf_counter()) < end:
                await sock.send_multipart([payload])
                await sock.recv_multipart()
                lat.append(time.perf_counter() - t0)
            await sock.send_multipart([b"stop"])
            await trio.sleep(0.05)
            nursery.cancel_scope.cancel()
        return lat

    return trio.run(main)


def run_one(config: str, seconds: float) -> dict[str, float]:
    secret = new_secret() if config == "trio_curve" else None
    parent, child = mp.Pipe()
    if config == "raw":
        proc = mp.Process(target=_raw_server, args=(child,))
    else:
        proc = mp.Process(target=_trio_server, args=(child, secret))
    proc.start()
    try:
        endpoint = parent.recv()
        lat = _run_raw(endpoint, seconds) if config == "raw" else _run_trio(endpoint, seconds, secret)
    finally:
        proc.join(timeout=5)
        if proc.is_alive():
            proc.kill()
    lat.sort()
    return {
        "rate": len(lat) / sum(lat),
        "p50_us": lat[len(lat) // 2] * 1e6,
        "p99_us": lat[int(len(lat) * 0.99)] * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one measurement")
    parser.add_argument("--reps", type=int, default=3, help="interleaved repetitions per configuration")
    args = parser.parse_args()
    mp.set_start_method("spawn")
    runs: dict[str, list[dict[str, float]]] = {c: [] for c in CONFIGS}
    for _ in range(args.reps):
        for config in CONFIGS:
            runs[config].append(run_one(config, args.seconds))
    out: dict[str, Any] = {"bench": "transport", "seconds": args.seconds, "reps": args.reps}
    for config, results in runs.items():
        rates = [r["rate"] for r in results]
        out[config] = {
            "roundtrips_per_s": round(statistics.median(rates)),
            "min_max": [round(min(rates)), round(max(rates))],
            "p50_us": round(statistics.median(r["p50_us"] for r in results), 1),
            "p99_us": round(statistics.median(r["p99_us"] for r in results), 1),
        }
    raw = out["raw"]["roundtrips_per_s"]
    out["ratio_trio_to_raw"] = round(out["trio"]["roundtrips_per_s"] / raw, 3)
    out["ratio_trio_curve_to_raw"] = round(out["trio_curve"]["roundtrips_per_s"] / raw, 3)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

"""Benchmark: request/reply round trips through the trio transport vs raw pyzmq.

Each configuration runs an echo server in its own process (ROUTER) and a
client (DEALER) in this one, one request outstanding at a time over loopback
TCP, so the figure is the per-message cost of the stack:

* ``raw``        blocking pyzmq on both ends (the anchor);
* ``trio``       meshd.transport (TrioSocket via ZmqHost) on both ends, no CURVE;
* ``trio_curve`` the same with CURVE keys derived from a cluster secret and
                 the ZAP handler admitting the client, as between meshd hosts;
* ``trio_minimal`` the least a trio program can do over pyzmq, on both ends:
                 non-blocking send, then check ``ZMQ_EVENTS`` and
                 ``wait_readable`` on ``ZMQ_FD`` (one task per socket, no
                 wake-ups of other tasks, no cancellation rules): the floor
                 of any trio transport over ZeroMQ;
* ``socket``     plain blocking TCP sockets on both ends, no ZeroMQ;
* ``trio_socket`` trio's own TCP sockets on both ends, no ZeroMQ: what any
                 trio program pays for one wait per message.

``ratio_trio_minimal_to_raw`` is trio's floor over ZeroMQ: what meshd's
transport keeps of raw pyzmq can only be compared with it (docs/architecture.md,
"What an allocation costs, and where it stops", has the figures).

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
from typing import Any, cast

import trio
import zmq

from meshd.transport import ClusterKeys, ZmqHost, bound_endpoint, new_secret

CONFIGS = ("raw", "trio", "trio_curve", "trio_minimal", "socket", "trio_socket")


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


async def _minimal_recv(sock: zmq.Socket) -> list[bytes]:
    fd = cast(int, sock.getsockopt(zmq.FD))
    while not cast(int, sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
        await trio.lowlevel.wait_readable(fd)
    return sock.recv_multipart(zmq.NOBLOCK)


def _minimal_server(conn) -> None:
    async def main() -> None:
        ctx = zmq.Context()
        sock = ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind("tcp://127.0.0.1:0")
        conn.send(sock.getsockopt_string(zmq.LAST_ENDPOINT))
        while (frames := await _minimal_recv(sock))[1] != b"stop":
            sock.send_multipart(frames, zmq.NOBLOCK)
            await trio.lowlevel.checkpoint()
        ctx.destroy(linger=0)

    trio.run(main)


def _run_minimal(endpoint: str, seconds: float) -> list[float]:
    async def main() -> list[float]:
        ctx = zmq.Context()
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(endpoint)
        payload = b"x" * 64
        sock.send(payload)
        await _minimal_recv(sock)  # warm up the connection
        lat, end = [], time.perf_counter() + seconds
        while (t0 := time.perf_counter()) < end:
            sock.send(payload, zmq.NOBLOCK)
            await trio.lowlevel.checkpoint()
            await _minimal_recv(sock)
            lat.append(time.perf_counter() - t0)
        sock.send(b"stop")
        await trio.sleep(0.05)
        ctx.destroy(linger=0)
        return lat

    return trio.run(main)


def _socket_server(conn, use_trio: bool) -> None:
    """Echo over one TCP connection until the client closes it (blocking, or trio's sockets)."""
    import socket

    async def serve_trio(listener: trio.socket.SocketType) -> None:
        peer, _ = await listener.accept()
        peer.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while data := await peer.recv(256):
            await peer.send(data)

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    conn.send(f"{listener.getsockname()[1]}")
    if use_trio:
        trio.run(serve_trio, trio.socket.from_stdlib_socket(listener))
        return
    peer, _ = listener.accept()
    peer.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while data := peer.recv(256):
        peer.sendall(data)


def _run_socket(port: int, seconds: float, use_trio: bool) -> list[float]:
    import socket

    payload = b"x" * 64

    async def client_trio() -> list[float]:
        sock = trio.socket.socket()
        await sock.connect(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        lat, end = [], time.perf_counter() + seconds
        while (t0 := time.perf_counter()) < end:
            await sock.send(payload)
            await sock.recv(256)  # 64 bytes on loopback arrive in one segment
            lat.append(time.perf_counter() - t0)
        sock.close()
        return lat

    if use_trio:
        return trio.run(client_trio)
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    lat, end = [], time.perf_counter() + seconds
    while (t0 := time.perf_counter()) < end:
        sock.sendall(payload)
        sock.recv(256)
        lat.append(time.perf_counter() - t0)
    sock.close()
    return lat


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
    elif config in ("socket", "trio_socket"):
        proc = mp.Process(target=_socket_server, args=(child, config == "trio_socket"))
    elif config == "trio_minimal":
        proc = mp.Process(target=_minimal_server, args=(child,))
    else:
        proc = mp.Process(target=_trio_server, args=(child, secret))
    proc.start()
    try:
        endpoint = parent.recv()
        if config == "raw":
            lat = _run_raw(endpoint, seconds)
        elif config in ("socket", "trio_socket"):
            lat = _run_socket(int(endpoint), seconds, config == "trio_socket")
        elif config == "trio_minimal":
            lat = _run_minimal(endpoint, seconds)
        else:
            lat = _run_trio(endpoint, seconds, secret)
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
    out["ratio_trio_minimal_to_raw"] = round(out["trio_minimal"]["roundtrips_per_s"] / raw, 3)
    out["ratio_trio_to_trio_minimal"] = round(out["trio"]["roundtrips_per_s"]
                                              / out["trio_minimal"]["roundtrips_per_s"], 3)
    out["ratio_trio_socket_to_socket"] = round(out["trio_socket"]["roundtrips_per_s"]
                                               / out["socket"]["roundtrips_per_s"], 3)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

"""Micro benchmark of one connect's trip through the codecs: prints one JSON line.

    .venv/bin/python -m tools.bench.codec               # 20,000 connects, best of 5
    .venv/bin/python -m tools.bench.codec --n 50000 --repeat 7

Every stage a connect crosses between the scheduler socket and ``apply`` and
back, timed alone (CPU microseconds per connect, best of ``--repeat`` runs of
``--n`` distinct connects):

* ``api_parse``: the scheduler frame -> typed request (``unpack`` and
  ``parse_request``);
* ``command_encode``: the state command -> log bytes (``encode_command``);
* ``envelope``: the session envelope around it, encoded and decoded;
* ``raft_append``: one Raft ``Append`` carrying that entry, encoded and
  decoded (once per follower);
* ``apply_decode``: log bytes -> command, as ``NetworkState.apply`` decodes;
* ``result``: the ``Connected`` result encoded (apply) and decoded (the proposer).

``total_us`` is their sum: the codec cost of one connect on the leader plus
one follower.  CPU time, so a shared machine disturbs it less than wall time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import consensus
from meshd.api import MsgType, pack, parse_request, unpack
from meshd.state import Connect, Connected, Qos, decode_command, decode_result, encode_command, encode_result


def _connects(n: int) -> list[Connect]:
    qos = Qos(rate_kbit=10_000, burst_bytes=32_768, latency_ms=50)
    return [
        Connect(endpoint_id=f"{i:064x}", network="blue", host=f"host-{i % 100:03d}", qos=qos if i % 10 == 0 else Qos())
        for i in range(n)
    ]


def _stages(connects: list[Connect]) -> dict[str, tuple[Callable[[Any], Any], list[Any]]]:
    frames = [
        pack(MsgType.ENDPOINT_CONNECT, {
            "request_id": f"req-{i}", "container_id": c.endpoint_id, "network": c.network, "host": c.host,
            "bandwidth_kbit": c.qos.rate_kbit, "burst_bytes": c.qos.burst_bytes, "latency_ms": c.qos.latency_ms,
        })
        for i, c in enumerate(connects)
    ]  # fmt: skip
    logged = [encode_command(c) for c in connects]
    envelopes = [consensus.encode_command("17", i + 1, i + 1, data) for i, data in enumerate(logged)]
    appends = [
        consensus.Append(term=7, frm="h1", to="h2", prev_index=i, prev_term=7, commit=i,
                         entries=(consensus.Entry(7, i + 1, consensus.EntryKind.COMMAND, env),))
        for i, env in enumerate(envelopes)
    ]  # fmt: skip
    results = [
        Connected(endpoint_id=c.endpoint_id, network=c.network, host=c.host, ip="10.0.0.2", prefix_len=24,
                  mac="02:6d:0a:00:00:02", gateway="10.0.0.1", vni=7, mtu=1450)
        for c in connects
    ]  # fmt: skip

    def api(frame: bytes) -> Any:
        msg_type, body = unpack(frame, max_bytes=1 << 16)
        return parse_request(msg_type, body)

    return {
        "api_parse": (api, frames),
        "command_encode": (encode_command, connects),
        "envelope": (lambda c: consensus.decode_command(consensus.encode_command("17", 1, 1, c)), logged),
        "raft_append": (lambda m: consensus.decode(consensus.encode(m)), appends),
        "apply_decode": (decode_command, logged),
        "result": (lambda r: decode_result(encode_result(r)), results),
    }


def _best_us(fn: Callable[[Any], Any], items: list[Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        for item in items:
            fn(item)
        best = min(best, time.process_time() - start)
    return best / len(items) * 1e6


def run(n: int, repeat: int) -> dict[str, Any]:
    stages = _stages(_connects(n))
    us = {name: round(_best_us(fn, items, repeat), 2) for name, (fn, items) in stages.items()}
    return {
        "bench": "codec", "connects": n, "repeat": repeat, "us_per_connect": us,
        "total_us": round(sum(us.values()), 2), "python": sys.version.split()[0],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.n, args.repeat)))


if __name__ == "__main__":
    main()

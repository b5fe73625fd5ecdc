"""Three Raft node processes over ZeroMQ + CURVE on loopback (tools/bench/raft.py node).

kill -9 of the leader under load, restart, states compared; recovery of a
torn log tail; refusal to start on mid-log corruption.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import trio

from consensus import Entry, Storage
from consensus._storage import encode_record
from tools.bench.raft import Client, Procs, caught_up, put_cmd, wait_leader


@pytest.fixture
def procs(tmp_path):
    p = Procs(tmp_path, ["--tick-ms", "20", "--election-ticks", "10"])
    for i in p.ids:
        p.start(i, bootstrap=True)
    yield p
    p.stop_all()


async def digests(procs: Procs) -> dict[str, dict]:
    out = {}
    for i in procs.ids:
        c = Client(procs.client[i])
        out[i] = (await c.call("digest", timeout_s=20))[1]
        c.close()
    return out


async def writers(procs: Procs, acked: list[str], stop: trio.Event, nodes: list[str]) -> None:
    async def one(node: str, k: int) -> None:
        c = Client(procs.client[node])
        n = 0
        while not stop.is_set():
            n += 1
            key = f"{node}-{k}-{n}"
            try:
                ok, _ = await c.call("put", put_cmd(1, key), timeout_s=10)
            except trio.TooSlowError:
                continue
            if ok:
                acked.append(f"{key}0")
        c.close()

    async with trio.open_nursery() as nursery:
        for node in nodes:
            for k in range(2):
                nursery.start_soon(one, node, k)


async def test_kill_leader_under_load_then_restart(procs) -> None:
    with trio.fail_after(60):
        leader = await wait_leader(procs)
        survivors = [i for i in procs.ids if i != leader]
        acked: list[str] = []
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writers, procs, acked, stop, survivors)
            await trio.sleep(1.0)
            before = len(acked)
            procs.kill(leader)
            new = await wait_leader(procs, exclude=leader)
            await trio.sleep(1.0)
            assert len(acked) > before, "writes must continue after failover"
            procs.start(leader)
            await trio.sleep(0.5)
            stop.set()
        await caught_up(procs, leader)
        d = await digests(procs)
        assert len({(x["applied"], x["sha256"]) for x in d.values()}) == 1, d
        assert d[new]["keys"] >= len(acked)
        c = Client(procs.client[leader])
        for key in acked[:: max(1, len(acked) // 20)]:  # acknowledged writes survived
            ok, value = await c.call("read", key)
            assert ok and value == "v0"
        c.close()


async def test_torn_tail_is_cut_and_node_catches_up(procs, tmp_path) -> None:
    with trio.fail_after(60):
        leader = await wait_leader(procs)
        c = Client(procs.client[leader])
        for n in range(30):
            assert (await c.call("put", put_cmd(5, f"t{n}-")))[0]
        victim = next(i for i in procs.ids if i != leader)
        procs.kill(victim)
        seg = sorted((tmp_path / victim).glob("log-*.seg"))[-1]
        last = Storage.open(tmp_path / victim).last_index()
        with open(seg, "ab") as f:  # the crash tore a write that was never acknowledged
            f.write(encode_record(Entry(99, last + 1, 0, b"x" * 200))[:-50])
        copy = tmp_path / "copy"
        shutil.copytree(tmp_path / victim, copy)
        rec = Storage.open(copy).recovery
        assert rec.torn_file.endswith(seg.name) and rec.torn_bytes == 8 + 17 + 150 and rec.last_index == last
        procs.start(victim)
        for n in range(5):
            assert (await c.call("put", put_cmd(5, f"u{n}-")))[0]
        c.close()
        await caught_up(procs, victim)
        d = await digests(procs)
        assert len({x["sha256"] for x in d.values()}) == 1


async def test_mid_log_corruption_stops_the_node(procs, tmp_path) -> None:
    with trio.fail_after(60):
        leader = await wait_leader(procs)
        c = Client(procs.client[leader])
        for n in range(30):
            assert (await c.call("put", put_cmd(5, f"m{n}-")))[0]
        c.close()
        victim = next(i for i in procs.ids if i != leader)
        await caught_up(procs, victim)
        procs.kill(victim)
        seg = sorted((tmp_path / victim).glob("log-*.seg"))[0]
        raw = bytearray(seg.read_bytes())
        raw[100] ^= 0xFF
        seg.write_bytes(raw)
        peers = ",".join(f"{k}={v}" for k, v in procs.raft.items())
        out = subprocess.run(
            [sys.executable, "tools/bench/raft.py", "node", "--id", victim, "--dir",
             str(tmp_path / victim), "--raft", procs.raft[victim], "--client",
             procs.client[victim], "--peers", peers, "--secret", procs.secret],
            capture_output=True, text=True, timeout=30,
        )
        assert out.returncode != 0
        assert "StorageCorrupt" in out.stderr and seg.name in out.stderr

"""Micro benchmark of the Raft path per command, one entry each vs one entry for all: prints JSON lines.

    .venv/bin/python -m tools.bench.raftpath                 # 16,000 commands per case, best of 5
    .venv/bin/python -m tools.bench.raftpath --n 32000 --repeat 7

Three :class:`consensus.RaftCore` in one process, wired through the real message codec
(``consensus.encode``/``decode``) and a real :class:`consensus.Storage` each (a temporary
directory, fsync off: CPU only), carrying out every Ready with ``consensus.plan_ready`` as the
driver does.  The leader proposes ``--n`` commands (~60-byte session envelopes, the size of an
allocation's) ``k`` at a time, for k = 1, 8 and 64, in two shapes:

* ``entries``: one log entry per command (what meshd does: the driver proposes every command
  waiting in one loop iteration together, each its own entry);
* ``one_entry``: the ``k`` commands' bytes in one log entry (what a batch entry would cost
  the log, the wire and the disk; the state machine is not run, so the per-command work a
  batch keeps -- envelope decode, session table, ``apply`` -- is not in either figure).

Each line: ``k``, the shape, the log entries appended and the CPU microseconds per command
spent in the leader's and in one follower's core, codec and storage calls (best of
``--repeat`` runs).  ``entries`` minus ``one_entry`` at the same ``k`` is what packing ``k``
commands into one entry saves per command in this path.  Not measured here: the driver's
per-entry work (waking a proposer, one ``Applied`` event per entry).  CPU time, so a shared
machine disturbs it less than wall time.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import consensus

NODES = ("n1", "n2", "n3")


class _Path:
    """Three cores exchanging encoded frames; CPU seconds spent per node."""

    def __init__(self, root: Path) -> None:
        self.cores: dict[str, consensus.RaftCore] = {}
        self.disks: dict[str, consensus.Storage] = {}
        self.inbox: dict[str, list[bytes]] = {n: [] for n in NODES}
        self.cpu_s = dict.fromkeys(NODES, 0.0)
        cfg = consensus.RaftConfig()
        for n in NODES:
            disk = consensus.Storage.open(root / n, fsync=False)
            core = consensus.RaftCore(n, cfg, random.Random(1), hard_state=disk.hard_state, snapshot=None, entries=[])
            core.bootstrap(list(NODES))
            self.cores[n], self.disks[n] = core, disk
        self.cores["n1"].campaign()
        self.settle()
        if self.cores["n1"].role != consensus.Role.LEADER:
            raise RuntimeError(f"raftpath: n1 did not win the first election (role {self.cores['n1'].role})")

    def close(self) -> None:
        for disk in self.disks.values():
            disk.close()

    def propose(self, commands: list[bytes]) -> None:
        t0 = time.process_time()
        self.cores["n1"].propose(commands)
        self.cpu_s["n1"] += time.process_time() - t0
        self.settle()

    def settle(self) -> None:
        """Deliver and carry out everything until no node has work."""
        while True:
            busy = [n for n in NODES if self.inbox[n] or self.cores[n].has_ready()]
            if not busy:
                return
            for n in busy:
                self._run(n)

    def _run(self, n: str) -> None:
        core, disk = self.cores[n], self.disks[n]
        out: list[tuple[str, bytes]] = []
        t0 = time.process_time()
        frames, self.inbox[n] = self.inbox[n], []
        for frame in frames:
            core.step(consensus.decode(frame))
        while core.has_ready():
            rd = core.ready()
            for action in consensus.plan_ready(rd, leader=core.role == consensus.Role.LEADER, saved=disk.hard_state):
                match action:
                    case consensus.Persist(hard_state, entries, snapshot):
                        disk.save(hard_state, entries, snapshot)
                    case consensus.Send(messages):
                        out.extend((m.to, consensus.encode(m)) for m in messages)
                    case consensus.Advance(done):
                        core.advance(done)
        self.cpu_s[n] += time.process_time() - t0
        for to, frame in out:
            self.inbox[to].append(frame)


def measure(k: int, n: int, one_entry: bool) -> dict[str, float | int | str]:
    """One run: ``n`` commands, ``k`` per proposal, as ``k`` entries or one."""
    envelopes = [consensus.encode_command("17", i + 1, i + 1, bytes(40)) for i in range(n)]
    with tempfile.TemporaryDirectory(prefix="raftpath-") as tmp:
        path = _Path(Path(tmp))
        try:
            first = path.cores["n1"].log.last_index()
            path.cpu_s = dict.fromkeys(NODES, 0.0)
            for start in range(0, n, k):
                group = envelopes[start:start + k]
                path.propose([b"".join(group)] if one_entry else group)
            leader = path.cores["n1"]
            if leader.log.commit != leader.log.last_index():
                raise RuntimeError(f"raftpath: commit {leader.log.commit} behind last index {leader.log.last_index()}")
            return {
                "k": k, "shape": "one_entry" if one_entry else "entries",
                "entries": leader.log.last_index() - first,
                "leader_us": 1e6 * path.cpu_s["n1"] / n, "follower_us": 1e6 * path.cpu_s["n2"] / n,
            }
        finally:
            path.close()


def best(k: int, n: int, one_entry: bool, repeat: int) -> dict[str, float | int | str]:
    runs = [measure(k, n, one_entry) for _ in range(repeat)]
    row = dict(runs[0])
    for key in ("leader_us", "follower_us"):
        row[key] = round(min(float(r[key]) for r in runs), 2)
    return row


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--n", type=int, default=16_000, help="commands per run (default 16000)")
    ap.add_argument("--repeat", type=int, default=5, help="runs per case; the best is printed (default 5)")
    ap.add_argument("--k", type=int, nargs="+", default=[1, 8, 64], help="commands per proposal (default 1 8 64)")
    args = ap.parse_args(argv)
    measure(8, 2_000, one_entry=False)  # warm-up: imports, first-use allocations
    for k in args.k:
        for one_entry in (False, True):
            print(json.dumps(best(k, args.n, one_entry, args.repeat)), flush=True)


if __name__ == "__main__":
    main()

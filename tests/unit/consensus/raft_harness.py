"""A scripted-scenario environment for RaftCore, after etcd's interaction tests.

Nodes are pure cores; the environment plays the application: it "persists"
each Ready (keeps the log it would write), delivers messages when asked,
applies committed entries through an :class:`Applier`, and records every
note the cores print, so tests read like etcd's ``testdata/*.txt`` scripts.
"""

from __future__ import annotations

import random
from collections import Counter

from consensus._config import RaftConfig
from consensus._core import RaftCore
from consensus._messages import ConfChange, ConfOp, Message, decode, encode
from consensus._sessions import Applier, encode_command


class ListMachine:
    """State machine: appends each command; result = its position as bytes."""

    def __init__(self) -> None:
        self.items: list[bytes] = []

    def apply(self, index: int, command: bytes) -> bytes:
        self.items.append(command)
        return str(len(self.items)).encode()

    def snapshot(self) -> bytes:
        return b"\0".join(self.items)

    def restore(self, data: bytes) -> None:
        self.items = data.split(b"\0") if data else []


CFG = RaftConfig(election_ticks=10, heartbeat_ticks=1, max_entries_per_msg=8,
                 max_inflight_msgs=4, snapshot_chunk_bytes=16, snapshot_trailing_entries=0)


class Env:
    def __init__(self, ids: list[str], *, cfg: RaftConfig = CFG, seed: int = 0) -> None:
        self.cfg = cfg
        self.rng = random.Random(seed)
        self.nodes: dict[str, RaftCore] = {}
        self.machines: dict[str, ListMachine] = {}
        self.appliers: dict[str, Applier] = {}
        self.queue: list[Message] = []
        self.cut: set[frozenset[str]] = set()
        self.down: set[str] = set()
        self.lines: list[str] = []
        self.delivered: Counter = Counter()
        self.sessions: dict[str, str] = {}
        self.results: dict[tuple[str, str, int], object] = {}
        for i in ids:
            self.add_node(i, bootstrap=ids)

    def add_node(self, node_id: str, *, bootstrap: list[str] | None = None) -> RaftCore:
        core = RaftCore(node_id, self.cfg, random.Random(self.rng.random()))
        if bootstrap is not None:
            core.bootstrap(bootstrap)
        self.nodes[node_id] = core
        self.machines[node_id] = ListMachine()
        self.appliers[node_id] = Applier(self.machines[node_id])
        return core

    # --- driving -----------------------------------------------------------

    def process(self, node_id: str) -> None:
        core = self.nodes[node_id]
        while core.has_ready():
            rd = core.ready()
            if rd.snapshot is not None:
                self.appliers[node_id].restore(rd.snapshot.data, rd.snapshot.index)
            # Every message crosses the real codec, as it would on the wire.
            self.queue.extend(decode(encode(m)) for m in rd.messages)
            for e in rd.committed:
                out = self.appliers[node_id].apply(e)
                if out is not None:
                    self.results[(node_id, out[0], out[1])] = out[2]
            self.lines.extend(rd.notes)
            core.advance(rd)

    def deliver(self, drop: set[str] = frozenset()) -> int:
        """Deliver every queued message once; returns how many arrived."""
        batch, self.queue = self.queue, []
        n = 0
        for m in batch:
            if m.to in self.down or m.frm in self.down or m.to in drop or m.frm in drop:
                continue
            if frozenset((m.frm, m.to)) in self.cut or m.to not in self.nodes:
                continue
            self.nodes[m.to].step(m)
            self.delivered[(type(m).__name__, getattr(m, "reject", None), m.frm)] += 1
            n += 1
        return n

    def stabilize(self, limit: int = 1000) -> None:
        for _ in range(limit):
            for i in sorted(self.nodes):
                if i not in self.down:
                    self.process(i)
            if not self.queue:
                return
            self.deliver()
        raise AssertionError("did not stabilize")

    def tick(self, node_id: str, n: int = 1) -> None:
        for _ in range(n):
            self.nodes[node_id].tick()

    def tick_all(self, n: int = 1) -> None:
        for _ in range(n):
            for i in sorted(self.nodes):
                if i not in self.down:
                    self.nodes[i].tick()
            self.stabilize()

    def forget_leader(self, *ids: str) -> None:
        """An election timeout passes on ``ids`` without news from a leader
        (their leader lease lapses) but none of them campaigns on its own."""
        for i in ids or tuple(self.nodes):
            self.nodes[i].election_elapsed = self.cfg.election_ticks

    def campaign(self, node_id: str) -> None:
        self.nodes[node_id].campaign()
        self.stabilize()

    def register(self, node_id: str, client: str) -> str:
        """Register a client session through ``node_id``; returns its session id."""
        if client not in self.sessions:
            nonce = len(self.sessions) + 1000
            self.nodes[node_id].propose([encode_command("", nonce, 0, b"")])
            self.stabilize()
            self.sessions[client] = self.results[(node_id, "", nonce)].decode()
        return self.sessions[client]

    def propose(self, node_id: str, *commands: bytes, client: str = "c", seq0: int = 1) -> None:
        cid = self.register(node_id, client)
        envs = [encode_command(cid, seq0 + n, seq0, c) for n, c in enumerate(commands)]
        self.nodes[node_id].propose(envs)
        self.stabilize()

    def conf(self, leader: str, op: ConfOp, node: str) -> None:
        self.nodes[leader].propose_conf(ConfChange(op, node))
        self.stabilize()

    def isolate(self, node_id: str) -> None:
        for other in self.nodes:
            if other != node_id:
                self.cut.add(frozenset((node_id, other)))

    def heal(self) -> None:
        self.cut.clear()

    def leaders(self) -> list[str]:
        return [i for i, c in self.nodes.items() if c.role.value == "leader" and i not in self.down]

    def items(self, node_id: str) -> list[bytes]:
        return self.machines[node_id].items

    def take_lines(self) -> list[str]:
        out, self.lines = self.lines, []
        return out

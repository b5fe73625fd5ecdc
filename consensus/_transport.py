"""The transport the Raft driver needs, and an in-memory one for tests.

meshd supplies the real implementation (ZeroMQ with CURVE,
``meshd.transport.PeerTransport``); consensus only knows this protocol.
Frames are opaque bytes: consensus encodes its own messages.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping
from typing import Protocol

import trio


class Transport(Protocol):
    async def send(self, to: str, data: bytes) -> None:
        """Best effort: never blocks on a dead or slow peer; may drop."""

    async def receive(self) -> tuple[str, bytes]:
        """The next frame: (sender node id, bytes)."""

    def set_peers(self, peers: Mapping[str, str], connect: Collection[str] = ()) -> None:
        """Node id -> address of every peer to talk to; connect to those of ``connect`` (the
        voters) now, the others when the first frame goes to them (which may be dropped)."""


class MemoryNetwork:
    """An in-process network of :class:`MemoryTransport` endpoints.

    ``loss`` drops that fraction of frames (seeded), ``cut(a, b)`` and
    ``isolate(n)`` drop every frame between nodes until ``heal()``; each
    receive buffer holds ``buffer`` frames and drops beyond that.
    """

    def __init__(self, *, loss: float = 0.0, seed: int = 0, buffer: int = 10_000) -> None:
        self.loss, self.rng, self.buffer = loss, random.Random(seed), buffer
        self.endpoints: dict[str, MemoryTransport] = {}
        self.cuts: set[frozenset[str]] = set()
        self.dropped = 0

    def transport(self, node_id: str) -> MemoryTransport:
        t = MemoryTransport(self, node_id)
        self.endpoints[node_id] = t
        return t

    def cut(self, a: str, b: str) -> None:
        self.cuts.add(frozenset((a, b)))

    def isolate(self, node_id: str) -> None:
        for other in self.endpoints:
            if other != node_id:
                self.cut(node_id, other)

    def heal(self) -> None:
        self.cuts.clear()

    def _deliver(self, frm: str, to: str, data: bytes) -> None:
        dst = self.endpoints.get(to)
        if (
            dst is None or dst.closed or frozenset((frm, to)) in self.cuts
            or (self.loss and self.rng.random() < self.loss)
        ):
            self.dropped += 1
            return
        try:
            dst._send.send_nowait((frm, data))
        except trio.WouldBlock:
            self.dropped += 1


class MemoryTransport:
    """One node's endpoint on a :class:`MemoryNetwork`."""

    def __init__(self, net: MemoryNetwork, node_id: str) -> None:
        self.net, self.id = net, node_id
        self._send, self._recv = trio.open_memory_channel[tuple[str, bytes]](net.buffer)
        self.peers: dict[str, str] = {}
        self.closed = False

    async def send(self, to: str, data: bytes) -> None:
        if not self.closed:
            self.net._deliver(self.id, to, data)

    async def receive(self) -> tuple[str, bytes]:
        return await self._recv.receive()

    def set_peers(self, peers: Mapping[str, str], connect: Collection[str] = ()) -> None:
        self.peers = dict(peers)

    def close(self) -> None:
        """Stop sending and receiving (a crashed node)."""
        self.closed = True

"""Mesh: datagram-like messaging between hosts over ZeroMQ ROUTER/DEALER.

Theory of operation
-------------------
Each host binds one ROUTER (the *inbox*).  To send to a peer it keeps one
DEALER per peer address, connected to that peer's inbox, with ``IMMEDIATE``
set and a bounded ``SNDHWM``.  A frame on the wire is two parts::

    [sender id, payload]

and the inbox sees ``[routing id, sender id, payload]``.  The sender id is
whatever the peer calls itself (a gossip member name, a Raft node id); the
payload is opaque here (a :mod:`meshd.wire` message, a Raft message).

Sends never block: :meth:`Mesh.send_nowait` queues the frame or drops it at
once (counted) when the peer is not connected or its queue is full.  That is
what the protocols above want: a probe must never wait behind a dead peer's
queue, and Raft and SWIM retransmit on their own.  :meth:`Mesh.send` waits a
bounded time for the connection (used for the first message to a new peer).

Receives drop malformed frames (wrong part count, oversized) and count them;
:meth:`Mesh.receive_message` also decodes :mod:`meshd.wire` messages and
counts what does not decode, so nothing undecodable reaches a protocol core.

At most ``max_peers`` DEALERs are kept; the least recently used is closed
when a new peer needs one, so talking to many short-lived addresses cannot
grow the number of sockets without bound.
"""

from __future__ import annotations

import contextlib
import logging
from collections import OrderedDict
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import trio
import zmq

from meshd import wire

from ._host import CLUSTER_DOMAIN, ZmqHost, bound_endpoint
from ._socket import TrioSocket

log = logging.getLogger("meshd.transport")


@dataclass(frozen=True, slots=True)
class MeshStats:
    """Counters of one mesh (all monotonic)."""

    sent: int
    sent_bytes: int
    dropped_unconnected: int
    received: int
    received_bytes: int
    malformed: int
    undecodable: int
    peers: int


class Mesh:
    """One inbox and per-peer outboxes; see the module docstring."""

    def __init__(self, host: ZmqHost, local_id: str, endpoint: str, *,
                 max_peers: int = 1024, max_payload_bytes: int | None = None) -> None:
        self.host = host
        self.local_id = local_id
        self._id_frame = local_id.encode()
        self._endpoint = endpoint
        self._max_peers = max_peers
        self._max_payload = max_payload_bytes or host.cfg.max_message_bytes
        self._inbox: TrioSocket | None = None
        self._outboxes: OrderedDict[str, TrioSocket] = OrderedDict()
        self._c = dict.fromkeys(
            ("sent", "sent_bytes", "dropped_unconnected", "received", "received_bytes",
             "malformed", "undecodable"), 0)

    def open(self) -> str:
        """Bind the inbox; returns the bound endpoint (port 0 resolved)."""
        self._inbox = self.host.listen(zmq.ROUTER, self._endpoint, domain=CLUSTER_DOMAIN, receive_only=True)
        self._endpoint = bound_endpoint(self._inbox)
        return self._endpoint

    @property
    def endpoint(self) -> str:
        return self._endpoint

    def statistics(self) -> MeshStats:
        return MeshStats(**self._c, peers=len(self._outboxes))

    def send_nowait(self, address: str, payload: bytes) -> bool:
        """Queue ``payload`` for the peer at ``address`` now, or drop it.

        Returns:
          True if queued; False if dropped (peer not connected, queue full).
        """
        sock = self._outbox(address)
        try:
            sock.send_multipart_nowait((self._id_frame, payload))
        except trio.WouldBlock:
            self._c["dropped_unconnected"] += 1
            return False
        self._c["sent"] += 1
        self._c["sent_bytes"] += len(payload)
        return True

    async def send(self, address: str, payload: bytes, *, timeout_s: float = 1.0) -> bool:
        """Like :meth:`send_nowait` but wait up to ``timeout_s`` for the connection.  The frame is
        dropped (False) if the connection does not come up in time, or if the outbox is closed
        meanwhile (:meth:`forget`: gossip reaped the member it waited for)."""
        sock = self._outbox(address)
        with trio.move_on_after(timeout_s), contextlib.suppress(trio.ClosedResourceError):
            await sock.send_multipart((self._id_frame, payload))
            self._c["sent"] += 1
            self._c["sent_bytes"] += len(payload)
            return True
        self._c["dropped_unconnected"] += 1
        return False

    def send_message_nowait(self, address: str, msg: Any) -> bool:
        """Encode a :mod:`meshd.wire` message and :meth:`send_nowait` it."""
        return self.send_nowait(address, wire.encode(msg))

    async def receive(self) -> tuple[str, bytes]:
        """The next well-formed frame: ``(sender id, payload)``.

        Malformed frames are dropped and counted, never raised.
        """
        if self._inbox is None:
            raise RuntimeError("Mesh.open() must be called before receive()")
        while True:
            frame = self._accept(await self._inbox.recv_multipart())
            if frame is not None:
                return frame

    async def receive_message(self) -> tuple[str, Any]:
        """The next frame that decodes as a :mod:`meshd.wire` message."""
        while True:
            message = self._decode(*await self.receive())
            if message is not None:
                return message

    def receive_message_nowait(self) -> tuple[str, Any] | None:
        """Like :meth:`receive_message` for what is already queued; None when nothing is."""
        if self._inbox is None:
            raise RuntimeError("Mesh.open() must be called before receive_message_nowait()")
        while True:
            try:
                frame = self._accept(self._inbox.recv_multipart_nowait())
            except trio.WouldBlock:
                return None
            message = None if frame is None else self._decode(*frame)
            if message is not None:
                return message

    def _accept(self, frames: list[bytes]) -> tuple[str, bytes] | None:
        """``(sender id, payload)`` of a well-formed frame; None (counted) for a malformed one."""
        if len(frames) != 3 or len(frames[2]) > self._max_payload or len(frames[1]) > 255:
            self._c["malformed"] += 1
            return None
        self._c["received"] += 1
        self._c["received_bytes"] += len(frames[2])
        try:
            return frames[1].decode(), frames[2]
        except UnicodeDecodeError:
            self._c["malformed"] += 1
            return None

    def _decode(self, sender: str, payload: bytes) -> tuple[str, Any] | None:
        try:
            return sender, wire.decode(payload, max_bytes=self._max_payload)
        except wire.DecodeError as exc:
            self._c["undecodable"] += 1
            log.debug("dropped undecodable message from=%s error=%s", sender, exc)
            return None

    def connect(self, address: str) -> None:
        """Start connecting to ``address`` now (so the first real send is not dropped)."""
        self._outbox(address)

    def note_dropped(self) -> None:
        """Count a frame dropped before it reached a socket (no address known)."""
        self._c["dropped_unconnected"] += 1

    def forget(self, address: str) -> None:
        """Close the outbox to ``address`` (e.g. the member was reaped)."""
        sock = self._outboxes.pop(address, None)
        if sock is not None:
            sock.close()

    def close(self) -> None:
        for address in list(self._outboxes):
            self.forget(address)
        if self._inbox is not None:
            self._inbox.close()

    def _outbox(self, address: str) -> TrioSocket:
        sock = self._outboxes.get(address)
        if sock is not None:
            self._outboxes.move_to_end(address)
            return sock
        if len(self._outboxes) >= self._max_peers:
            _, oldest = self._outboxes.popitem(last=False)
            oldest.close()
        sock = self.host.dial(zmq.DEALER, address)
        self._outboxes[address] = sock
        return sock


class PeerTransport:
    """A :class:`Mesh` addressed by node id (the ``consensus`` Transport protocol).

    ``set_peers`` maps node ids to endpoints; frames to an unknown id are
    dropped and counted like frames to an unconnected peer.  Only the peers
    named in ``connect`` (the voters) are dialled at once; any other is dialled
    by the first frame sent to it, which is dropped (the connection is not up
    yet; Raft sends again). A learner talks only to its relay-tree parent and
    children, so a host keeps a few Raft connections, not one per member: at
    200 hosts, eager dialling held ~40,000 mostly idle connections.
    """

    def __init__(self, mesh: Mesh) -> None:
        self.mesh = mesh
        self._peers: dict[str, str] = {}

    def set_peers(self, peers: Mapping[str, str], connect: Collection[str] = ()) -> None:
        """Address the nodes of ``peers`` (id -> endpoint) and dial those of ``connect`` now, so that
        the first frame to one (after a restart: a vote request) finds the connection up instead of
        being dropped.  A connection to an address that changed or went away is closed."""
        for node_id, address in self._peers.items():
            if peers.get(node_id) != address:
                self.mesh.forget(address)
        for node_id in connect:
            if node_id in peers:
                self.mesh.connect(peers[node_id])
        self._peers = dict(peers)

    async def send(self, to: str, data: bytes) -> None:
        await trio.lowlevel.checkpoint()
        address = self._peers.get(to)
        if address is None:
            self.mesh.note_dropped()
            return
        self.mesh.send_nowait(address, data)

    async def receive(self) -> tuple[str, bytes]:
        return await self.mesh.receive()

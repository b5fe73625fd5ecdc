"""Fan-out of server-sent events to the web view's clients, each with a bounded queue.

Theory of operation
-------------------
:meth:`EventHub.publish` is called from the agent's trio thread (the agent's
event stream, the snapshot and rate tasks) and never blocks: it appends one
encoded SSE message to every client's queue.  A queue holds at most
``queue_max`` messages; when a slow client's queue is full the oldest message
is dropped and the client is marked *behind*, and the next time its writer
takes the queue it first sends a ``resync`` event (the page then reloads
``/api/cluster``).  Messages are ``bytes`` shared by every queue, so a
snapshot costs its size once however many clients hold it.

Snapshots of one kind (``cluster``, ``rates``) supersede each other: when a
writer takes several of one kind at once it sends only the newest.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping
from typing import Any

import trio

#: kinds of which only the newest pending message matters
SNAPSHOT_KINDS = frozenset({"cluster", "rates"})


def sse(kind: str, data: Mapping[str, Any] | list[Any]) -> bytes:
    """One server-sent event: ``event: KIND`` and its data as one line of JSON."""
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'), default=str)}\n\n".encode()


RESYNC = sse("resync", {"reason": "this client fell behind; messages were dropped"})


class EventClient:
    """One SSE client's queue (see the module docstring)."""

    def __init__(self, queue_max: int) -> None:
        self._queue: deque[tuple[str, bytes]] = deque(maxlen=queue_max)
        self._ready = trio.Event()
        self.behind = False
        #: messages dropped because this client was slow
        self.dropped = 0

    def put(self, kind: str, message: bytes) -> None:
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
            self.behind = True
        self._queue.append((kind, message))
        self._ready.set()

    async def wait(self) -> None:
        """Until something is queued."""
        await self._ready.wait()

    def take(self) -> list[bytes]:
        """Everything queued (a ``resync`` first when messages were dropped), oldest first."""
        items = list(self._queue)
        self._queue.clear()
        self._ready = trio.Event()
        newest = {kind: i for i, (kind, _) in enumerate(items) if kind in SNAPSHOT_KINDS}
        out = [m for i, (kind, m) in enumerate(items) if kind not in SNAPSHOT_KINDS or newest[kind] == i]
        if self.behind:
            self.behind = False
            out.insert(0, RESYNC)
        return out


class EventHub:
    """Every connected SSE client; :meth:`publish` queues a message for all of them."""

    def __init__(self, queue_max: int) -> None:
        self.queue_max = queue_max
        self._clients: set[EventClient] = set()
        #: messages dropped over all clients (slow clients)
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._clients)

    def join(self) -> EventClient:
        client = EventClient(self.queue_max)
        self._clients.add(client)
        return client

    def leave(self, client: EventClient) -> None:
        self._clients.discard(client)

    def publish(self, kind: str, message: bytes) -> None:
        for client in self._clients:
            before = client.dropped
            client.put(kind, message)
            self.dropped += client.dropped - before

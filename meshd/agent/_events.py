"""The agent's one event stream: what happened on this host, for every view.

Each part of the agent emits an :class:`Event` here; the views consume the
same stream and compute nothing of their own:

* the recent history (:meth:`Events.recent`, newest last) that
  QUERY_STATUS returns and ``meshd top`` shows;
* the scheduler PUB socket, for events that carry a wire type;
* any other subscriber (a callable), e.g. a test.

Periodic counters (EVENT_ENDPOINT_STATS) go to the PUB socket but not into
the history (``history=False``): they would push every state change out of it.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from meshd.api import MsgType

log = logging.getLogger("meshd.agent")

#: recent events kept for ``meshd top`` and QUERY_STATUS
HISTORY = 100


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened.

    Attributes:
        kind: short category shown by ``meshd top`` (join, fail, endpoint, network, policy, raft, error ...).
        text: one human line.
        msg_type: the scheduler PUB event type, or None (not published).
        body: the PUB event's body.
        history: kept in the recent history.
        time: wall-clock seconds.
    """

    kind: str
    text: str
    msg_type: MsgType | None = None
    body: Mapping[str, Any] = field(default_factory=dict)
    history: bool = True
    time: float = field(default_factory=time.time)

    def as_map(self) -> dict[str, Any]:
        return {"time": self.time, "kind": self.kind, "text": self.text}


Subscriber = Callable[[Event], None]


class Events:
    """Fan-out of :class:`Event`; see the module docstring. Subscribers must not block."""

    def __init__(self, history: int = HISTORY) -> None:
        self._recent: deque[Event] = deque(maxlen=history)
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def emit(self, event: Event) -> None:
        if event.history:
            self._recent.append(event)
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception:  # one broken view must not stop the others or the emitter
                log.exception("event subscriber failed kind=%s", event.kind)

    def note(self, kind: str, text: str) -> None:
        """An event for the history only (nothing on the PUB socket)."""
        self.emit(Event(kind, text))

    def recent(self) -> list[dict[str, Any]]:
        """The history as plain maps, oldest first."""
        return [e.as_map() for e in self._recent]

"""What the gossip core hands out: events, member snapshots, outboxes, status."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, final

from ._messages import Meta, State


class EventKind(enum.Enum):
    """Membership events, delivered to subscribers as soon as they happen."""

    JOIN = "join"  #: a member appeared (or came back after failing / leaving)
    UPDATE = "update"  #: a member's metadata or address changed
    SUSPECT = "suspect"  #: a member is suspected of having failed
    ALIVE = "alive"  #: a suspected member proved to be alive again
    FAIL = "fail"  #: a member was declared dead
    LEAVE = "leave"  #: a member left gracefully


@final  # the core tells a shared Member from its own Record by type(rec) is Member
@dataclass(frozen=True, slots=True)
class Member:
    """A snapshot of one member as this node sees it."""

    name: str
    addr: str
    state: State
    incarnation: int
    meta: Meta


@dataclass(frozen=True, slots=True)
class Event:
    """``member`` had ``kind`` happen, seen by this node at ``at`` (core clock)."""

    kind: EventKind
    member: Member
    at: float


@dataclass(frozen=True, slots=True)
class Outbox:
    """What one core call produced.

    ``messages`` are ``(gossip address, message)`` pairs to send (in any order,
    each independently: losing one is tolerated); ``events`` go to
    subscribers; ``notes`` are key=value log lines for the driver to log;
    ``forgotten`` are addresses no member uses any more (members reaped):
    the driver may close their connections.
    """

    messages: tuple[tuple[str, Any], ...] = ()
    events: tuple[Event, ...] = ()
    notes: tuple[str, ...] = ()
    forgotten: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class GossipStatus:
    """``GossipCore.status()``: a point-in-time summary for the TUI and metrics."""

    name: str
    addr: str
    incarnation: int
    joined: bool
    leaving: bool
    members_alive: int
    members_suspect: int
    members_dead: int
    members_left: int
    health_score: int
    queued_updates: int
    probes: int
    indirect_probes: int
    probe_failures: int
    refutations: int
    messages_in: int
    messages_out: int
    dropped: int
    late_ticks: int = 0  #: ticks that ran more than a probe timeout late (this host was starved)

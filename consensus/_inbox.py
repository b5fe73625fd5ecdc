"""What RaftNode's public calls and tasks queue for its ``_loop`` (typed), and the waiter of an outcome."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import trio

from ._messages import ConfChange, Message


class Waiter:
    """A request's outcome (``event``), and ``poke``: wake the current attempt
    early (its result arrived, or a new leader appeared: retry now)."""

    __slots__ = ("event", "poke", "value", "error")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.poke = trio.Event()
        self.value: Any = None
        self.error: BaseException | None = None

    def set(self, value: Any = None, error: BaseException | None = None) -> None:
        if not self.event.is_set():
            self.value, self.error = value, error
            self.event.set()
            self.poke.set()


@dataclass(frozen=True, slots=True)
class Tick:
    """``n`` ticks of the election and heartbeat timers (n > 1: a leaf learner's stride)."""

    n: int = 1


@dataclass(frozen=True, slots=True)
class Campaign:
    """Start an election now."""


@dataclass(frozen=True, slots=True)
class StepMessage:
    """A message received from a peer (decoded, sender checked)."""

    msg: Message


@dataclass(frozen=True, slots=True)
class ProposeCommand:
    """One command envelope; ``_loop`` proposes all queued ones as one batch."""

    envelope: bytes
    waiter: Waiter


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """Ask for a linearizable read index; answered to ``waiter`` (or forwarded)."""

    ctx: int
    waiter: Waiter


@dataclass(frozen=True, slots=True)
class ConfRequest:
    """Propose one membership change (leader only); ``waiter`` gets (index, term)."""

    change: ConfChange
    waiter: Waiter


@dataclass(frozen=True, slots=True)
class TransferRequest:
    """Hand leadership to ``target`` (leader only)."""

    target: str
    waiter: Waiter


@dataclass(frozen=True, slots=True)
class CompactLog:
    """A state-machine snapshot taken at ``index``: compact the log behind it."""

    index: int
    data: bytes


Request = Tick | Campaign | StepMessage | ProposeCommand | ReadRequest | ConfRequest | TransferRequest | CompactLog
TICK, CAMPAIGN = Tick(), Campaign()

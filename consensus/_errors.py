"""Errors raised by consensus, each naming the situation and what to do."""

from __future__ import annotations


class RaftError(Exception):
    """Base class of every consensus error."""


class NotLeader(RaftError):
    """This node is not the leader and cannot serve the request itself.

    ``leader`` is the node it believes leads (retry there), or None while an
    election is in progress (retry after a moment).
    """

    def __init__(self, node: str, leader: str | None, what: str = "request") -> None:
        self.node, self.leader = node, leader
        hint = f"send it to leader {leader}" if leader else "no leader is known yet; retry shortly"
        super().__init__(f"raft node {node} is not the leader and cannot take this {what}: {hint}")


class ProposalDropped(RaftError):
    """The leader refused a proposal for now (e.g. a leadership transfer is under way); retry."""


class ConfChangeInProgress(RaftError):
    """Another membership change is not committed yet; wait for it, then retry."""


class Unavailable(RaftError):
    """No answer within the timeout: no quorum is reachable, or the leader is changing."""


class StorageCorrupt(RaftError):
    """The on-disk log is damaged somewhere other than its tail; the node must not start.

    The message names the file and offset.  Fix: restore the data directory
    from a healthy member (remove it and re-join as a new member).
    """

"""Progress: the leader's view of one follower (pure).

States, as in etcd's tracker: PROBE sends one AppendEntries at a time until
the follower's match point is found; REPLICATE streams entries optimistically
with at most ``max_inflight`` unacknowledged messages (pipelining); SNAPSHOT
sends InstallSnapshot chunks one at a time and waits.
"""

from __future__ import annotations

from collections import deque
from enum import Enum


class ProgressState(str, Enum):
    PROBE = "probe"
    REPLICATE = "replicate"
    SNAPSHOT = "snapshot"


class Progress:
    def __init__(self, next_index: int, max_inflight: int) -> None:
        self.match = 0
        self.next = next_index
        self.state = ProgressState.PROBE
        #: PROBE: an append is outstanding; wait for its answer or a heartbeat reply.
        self.probe_sent = False
        #: Last index of each unacknowledged append (REPLICATE only).
        self.inflight: deque[int] = deque()
        self.max_inflight = max_inflight
        #: Heard from since the last check-quorum round.
        self.recent_active = False
        #: SNAPSHOT: index of the snapshot being sent and bytes acknowledged.
        self.snap_index = 0
        self.snap_offset = 0
                #: Commit index last sent to it in an AppendEntries.
        self.commit_sent = 0
        #: Ticks without progress while behind (to resend lost messages).
        self.idle_ticks = 0
        #: Highest read round the follower acknowledged (ReadIndex).
        self.read_round = 0
        #: The core's tick count when it was last heard from (None: not yet).
        self.heard: int | None = None

    def paused(self) -> bool:
        if self.state == ProgressState.PROBE:
            return self.probe_sent
        if self.state == ProgressState.REPLICATE:
            return len(self.inflight) >= self.max_inflight
        return True

    def become_probe(self) -> None:
        if self.state == ProgressState.SNAPSHOT:
            self.next = max(self.match + 1, self.snap_index + 1)
        else:
            self.next = self.match + 1
        self.state, self.probe_sent = ProgressState.PROBE, False
        self.inflight.clear()

    def become_replicate(self) -> None:
        self.state, self.probe_sent = ProgressState.REPLICATE, False
        self.next = self.match + 1
        self.inflight.clear()

    def become_snapshot(self, snap_index: int) -> None:
        self.state, self.probe_sent = ProgressState.SNAPSHOT, False
        self.snap_index, self.snap_offset, self.idle_ticks = snap_index, 0, 0
        self.inflight.clear()

    def sent(self, last_index: int) -> None:
        """Record an append whose last entry is ``last_index``."""
        if self.state == ProgressState.REPLICATE:
            if last_index >= self.next:
                self.next = last_index + 1
                self.inflight.append(last_index)
        else:
            self.probe_sent = True

    def acked(self, index: int) -> bool:
        """A successful reply up to ``index``; True when ``match`` moved."""
        while self.inflight and self.inflight[0] <= index:
            self.inflight.popleft()
        self.probe_sent = False
        if index > self.match:
            self.match = index
            self.next = max(self.next, index + 1)
            return True
        return False

    def rejected(self, rejected: int, hint: int) -> bool:
        """A rejection of prev_index ``rejected``; True when not stale (next moved back)."""
        if self.state == ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, hint + 1), self.match + 1, 1)
        self.probe_sent = False
        return True

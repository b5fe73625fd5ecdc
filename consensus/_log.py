"""RaftLog: the in-memory view of one node's log (pure; storage mirrors it).

Indexes: ``offset`` is the last compacted index (its term is kept as
``offset_term``), ``entries[0]`` has index ``offset + 1``.  ``stable`` is the
last index storage has made durable; entries after it are handed out by the
core's ``ready()``.  ``commit`` and ``applied`` never go backwards.

Membership is tracked here too, because a node uses the latest membership in
its log whether or not it is committed (Ongaro's thesis §4.1): ``conf()`` is
``base_conf`` (as of ``offset``) with every CONF entry after it applied in
order, and truncating the log reverts the membership with it.
"""

from __future__ import annotations

from ._messages import ConfChange, ConfState, Entry, EntryKind


class SafetyError(AssertionError):
    """The core was asked to do something Raft forbids (a bug, never input)."""


class RaftLog:
    def __init__(
        self,
        *,
        offset: int = 0,
        offset_term: int = 0,
        base_conf: ConfState = ConfState(),
        entries: list[Entry] | None = None,
        commit: int = 0,
    ) -> None:
        self.offset = offset
        self.offset_term = offset_term
        self.base_conf = base_conf
        self.entries: list[Entry] = []
        self.confs: list[tuple[int, ConfState]] = []
        self.commit = max(commit, offset)
        self.applied = offset
        self.stable = offset
        if entries:
            self.append(entries)
        self.stable = self.last_index()
        self.commit = min(self.commit, self.last_index())

    # --- reading ------------------------------------------------------------

    def last_index(self) -> int:
        return self.offset + len(self.entries)

    def last_term(self) -> int:
        return self.entries[-1].term if self.entries else self.offset_term

    def first_index(self) -> int:
        return self.offset + 1

    def term(self, index: int) -> int | None:
        """Term of ``index``, or None when it is compacted away or not there yet."""
        if index == self.offset:
            return self.offset_term
        if self.offset < index <= self.last_index():
            return self.entries[index - self.offset - 1].term
        return None

    def entry(self, index: int) -> Entry:
        return self.entries[index - self.offset - 1]

    def slice(self, lo: int, hi: int, max_bytes: int = 1 << 62) -> list[Entry]:
        """Entries with index in [lo, hi), at least one, then at most ``max_bytes``."""
        out = self.entries[lo - self.offset - 1 : hi - self.offset - 1]
        size = 0
        for n, e in enumerate(out):
            size += len(e.data) + 16
            if size > max_bytes and n > 0:
                return out[:n]
        return out

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """Would a candidate with this last entry be at least as current as us?"""
        return last_term > self.last_term() or (
            last_term == self.last_term() and last_index >= self.last_index()
        )

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """Largest (i, term(i)) with i <= index and term(i) <= term (fast backtracking)."""
        index = min(index, self.last_index())
        while index > self.offset:
            t = self.term(index)
            assert t is not None
            if t <= term:
                return index, t
            index -= 1
        return self.offset, self.offset_term

    def conf(self) -> ConfState:
        return self.confs[-1][1] if self.confs else self.base_conf

    def conf_at(self, index: int) -> ConfState:
        out = self.base_conf
        for i, c in self.confs:
            if i > index:
                break
            out = c
        return out

    def last_conf_index(self) -> int:
        return self.confs[-1][0] if self.confs else 0

    def unstable(self) -> list[Entry]:
        return self.entries[self.stable - self.offset :]

    def to_apply(self) -> list[Entry]:
        return self.entries[self.applied - self.offset : self.commit - self.offset]

    # --- writing ------------------------------------------------------------

    def append(self, entries: list[Entry] | tuple[Entry, ...]) -> None:
        """Append entries that directly follow the last one."""
        for e in entries:
            if e.index != self.last_index() + 1:
                raise SafetyError(f"append of index {e.index} after {self.last_index()}")
            self.entries.append(e)
            if e.kind == EntryKind.CONF:
                self.confs.append((e.index, ConfChange.decode(e.data).applied_to(self.conf())))

    def maybe_append(
        self, prev_index: int, prev_term: int, commit: int, entries: tuple[Entry, ...]
    ) -> int | None:
        """Follower side of AppendEntries.

        Returns the last index known to match the leader, or None when
        (prev_index, prev_term) is not in our log.
        """
        if self.term(prev_index) != prev_term:
            return None
        last_new = prev_index + len(entries)
        for n, e in enumerate(entries):
            if e.index <= self.offset:
                continue
            t = self.term(e.index)
            if t == e.term:
                continue
            if e.index <= self.commit:
                raise SafetyError(f"conflict at committed index {e.index} (commit {self.commit})")
            if t is not None:
                self.truncate_from(e.index)
            self.append(entries[n:])
            break
        self.commit_to(min(commit, last_new))
        return last_new

    def truncate_from(self, index: int) -> None:
        """Drop entries with index >= ``index`` (never committed ones)."""
        if index <= self.commit:
            raise SafetyError(f"truncating committed index {index} (commit {self.commit})")
        del self.entries[index - self.offset - 1 :]
        self.confs = [(i, c) for i, c in self.confs if i < index]
        self.stable = min(self.stable, index - 1)

    def commit_to(self, index: int) -> bool:
        index = min(index, self.last_index())
        if index > self.commit:
            self.commit = index
            return True
        return False

    def maybe_commit(self, index: int, term: int) -> bool:
        """Commit ``index`` if it is from ``term`` (only current-term entries count)."""
        return index > self.commit and self.term(index) == term and self.commit_to(index)

    def compact(self, index: int) -> None:
        """Forget entries up to ``index`` (must be applied)."""
        if index <= self.offset:
            return
        if index > self.applied:
            raise SafetyError(f"compacting {index} beyond applied {self.applied}")
        term = self.term(index)
        assert term is not None
        self.base_conf = self.conf_at(index)
        self.confs = [(i, c) for i, c in self.confs if i > index]
        del self.entries[: index - self.offset]
        self.offset, self.offset_term = index, term

    def restore(self, index: int, term: int, conf: ConfState) -> None:
        """Replace the whole log by a snapshot at (index, term)."""
        self.entries, self.confs = [], []
        self.offset, self.offset_term, self.base_conf = index, term, conf
        self.commit = self.applied = self.stable = index

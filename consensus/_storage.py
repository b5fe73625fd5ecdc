"""Durable Raft storage: a segmented log, the hard state, and snapshots.

Layout of a data directory::

    hardstate                 term, vote, commit (msgpack) + CRC32C
    snapshot-<index>.snap     header (msgpack) + state-machine bytes
    log-<first index>.seg     records, appended; a new segment past segment_bytes

A log record is ``length:u32 crc:u32 term:u64 index:u64 kind:u8 payload``
(big-endian); ``length`` counts everything after the crc, and the CRC32C
covers the same bytes.

Rules:

* :meth:`Storage.save` persists one Ready batch with **one** fdatasync of
  the log (group commit: the driver batches whatever arrived while the
  previous fsync ran; there is no timer).  Term or vote changes are written
  to ``hardstate`` by write-temp, fsync, rename, fsync-directory before
  ``save`` returns.  A change of commit alone is not synced on its own (as
  in etcd): after a crash the node learns the commit index from the leader
  again; it is written with the next term/vote change or snapshot.
* Snapshots are written to a temp file, fsynced and renamed; the write is a
  plain blocking function (:meth:`write_snapshot`) the driver runs in a
  worker thread, then :meth:`compact` deletes segments the snapshot covers.
* On open, a torn or corrupt *tail* of the newest segment (an incomplete or
  bad record with nothing valid after it) is cut off and reported in
  :attr:`Storage.recovery`; a bad record anywhere else raises
  :class:`StorageCorrupt` naming the file and offset.
"""

from __future__ import annotations

import io
import os
import struct
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import crc32c
import msgpack

from ._errors import StorageCorrupt
from ._messages import ConfState, Entry, HardState
from ._types import Snapshot

_HDR = struct.Struct(">II")
_REC = struct.Struct(">QQB")
_HS_NAME = "hardstate"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Recovery:
    """What :meth:`Storage.open` found and repaired."""

    entries: int
    first_index: int
    last_index: int
    snapshot_index: int
    #: The segment whose torn tail was cut, and how many bytes were dropped.
    torn_file: str | None = None
    torn_bytes: int = 0


def encode_record(e: Entry) -> bytes:
    body = _REC.pack(e.term, e.index, e.kind) + e.data
    return _HDR.pack(len(body), crc32c.crc32c(body)) + body


class _Segment:
    def __init__(self, path: Path, first: int) -> None:
        self.path, self.first = path, first
        self.offsets = array("Q")
        self.size = 0

    @property
    def last(self) -> int:
        return self.first + len(self.offsets) - 1


class Storage:
    """Blocking file storage for one node (see the module docstring)."""

    def __init__(self, path: Path, segment_bytes: int, fsync: bool) -> None:
        self.path, self.segment_bytes, self.fsync = path, segment_bytes, fsync
        self.hard_state = HardState()
        self.snapshot: Snapshot | None = None
        self.segments: list[_Segment] = []
        self._file: io.BufferedRandom | None = None
        self.recovery = Recovery(0, 0, 0, 0)
        self.fsyncs = 0

    # --- opening and recovery ---------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, segment_bytes: int = 64 << 20,
             fsync: bool = True) -> Storage:
        """Open (creating if needed) and recover the data directory ``path``.

        Raises:
          StorageCorrupt: damage other than a torn tail; the message names the file.
        """
        s = cls(Path(path), segment_bytes, fsync)
        s.path.mkdir(parents=True, exist_ok=True)
        for tmp in s.path.glob("*.tmp"):
            tmp.unlink()
        s.hard_state = s._read_hard_state()
        s.snapshot = s._read_latest_snapshot()
        s._recover_segments()
        return s

    def _read_hard_state(self) -> HardState:
        p = self.path / _HS_NAME
        if not p.exists():
            return HardState()
        raw = p.read_bytes()
        obj = _checked_unpack(raw, p)
        if not (isinstance(obj, list) and len(obj) == 4 and obj[0] == FORMAT_VERSION):
            raise StorageCorrupt(f"{p}: not a hard-state file of format {FORMAT_VERSION}")
        return HardState(obj[1], obj[2], obj[3])

    def _read_latest_snapshot(self) -> Snapshot | None:
        snaps = sorted(self.path.glob("snapshot-*.snap"))
        if not snaps:
            return None
        for old in snaps[:-1]:
            old.unlink()
        p = snaps[-1]
        raw = p.read_bytes()
        header, end = _framed(raw, p)
        version, index, term, voters, learners, dcrc = msgpack.unpackb(header)
        data = raw[end:]
        if version != FORMAT_VERSION or crc32c.crc32c(data) != dcrc:
            raise StorageCorrupt(f"{p}: snapshot data checksum mismatch (or unknown format)")
        return Snapshot(index, term, ConfState(frozenset(voters), frozenset(learners)), data)

    def _recover_segments(self) -> None:
        paths = sorted(self.path.glob("log-*.seg"))
        base = self.snapshot.index if self.snapshot else 0
        for n, p in enumerate(paths):
            seg = _Segment(p, int(p.stem.split("-")[1]))
            torn = self._scan(seg, last=(n == len(paths) - 1))
            if self.segments and seg.first != self.segments[-1].last + 1 and len(seg.offsets):
                raise StorageCorrupt(f"{p}: starts at {seg.first}, expected {self.segments[-1].last + 1}")
            if len(seg.offsets) and seg.last <= base:
                p.unlink()  # wholly covered by the snapshot
                continue
            self.segments.append(seg)
            if torn:
                self.recovery = Recovery(0, 0, 0, 0, str(p), torn)
        if self.segments and self.segments[0].first > base + 1:
            raise StorageCorrupt(
                f"{self.segments[0].path}: log starts at {self.segments[0].first} but the "
                f"snapshot ends at {base}; entries in between are missing"
            )
        entries = self.entries()
        self.recovery = Recovery(
            len(entries), entries[0].index if entries else 0,
            entries[-1].index if entries else base, base,
            self.recovery.torn_file, self.recovery.torn_bytes,
        )

    def _scan(self, seg: _Segment, *, last: bool) -> int:
        """Index the records of ``seg``; cut a torn tail (last segment only).

        Returns the number of bytes cut.
        """
        raw = seg.path.read_bytes()
        pos = 0
        while pos < len(raw):
            rec = _parse(raw, pos)
            if rec is None or rec[1] != seg.first + len(seg.offsets):
                if not last or _valid_after(raw, pos, seg.first + len(seg.offsets) - 1):
                    raise StorageCorrupt(
                        f"{seg.path}: bad record at byte {pos} with valid data after it; the log "
                        "is damaged in the middle. Restore this node's data directory from a "
                        "healthy member (remove it and re-join)"
                    )
                with open(seg.path, "r+b") as f:
                    f.truncate(pos)
                    self._sync(f)
                seg.size = pos
                return len(raw) - pos
            seg.offsets.append(pos)
            pos = rec[0]
        seg.size = pos
        return 0

    # --- reading -------------------------------------------------------------------

    def entries(self, lo: int = 0) -> list[Entry]:
        """Every stored entry with index >= lo (and after the snapshot)."""
        base = self.snapshot.index if self.snapshot else 0
        lo = max(lo, base + 1)
        out: list[Entry] = []
        for seg in self.segments:
            if not len(seg.offsets) or seg.last < lo:
                continue
            raw = seg.path.read_bytes()
            for i in range(max(lo - seg.first, 0), len(seg.offsets)):
                out.append(_decode(raw, seg.offsets[i]))
        return out

    def last_index(self) -> int:
        for seg in reversed(self.segments):
            if len(seg.offsets):
                return seg.last
        return self.snapshot.index if self.snapshot else 0

    # --- writing -------------------------------------------------------------------

    def save(self, hard_state: HardState | None, entries: tuple[Entry, ...] | list[Entry],
             snapshot: Snapshot | None = None) -> None:
        """Persist one Ready batch: snapshot (installed from a leader), entries, hard state."""
        if snapshot is not None:
            self.write_snapshot(snapshot)
            self._drop_all_segments()
            self._adopt_snapshot(snapshot)
        if entries:
            self._append(entries)
        if hard_state is not None:
            old = self.hard_state
            self.hard_state = hard_state
            if snapshot is not None or (hard_state.term, hard_state.vote) != (old.term, old.vote):
                self._write_hard_state()

    def _append(self, entries: tuple[Entry, ...] | list[Entry]) -> None:
        first = entries[0].index
        if first <= self.last_index():
            self._truncate_from(first)
        elif first != self.last_index() + 1:
            raise ValueError(f"append of index {first} after last index {self.last_index()}")
        f = self._active(first)
        seg = self.segments[-1]
        blob = bytearray()
        for e in entries:
            seg.offsets.append(seg.size + len(blob))
            blob += encode_record(e)
        f.write(blob)
        f.flush()
        seg.size += len(blob)
        self._sync(f)
        if seg.size >= self.segment_bytes:
            self._close_active()

    def _active(self, next_index: int) -> io.BufferedRandom:
        if self._file is None:
            if self.segments and self.segments[-1].size < self.segment_bytes:
                seg = self.segments[-1]
            else:
                seg = _Segment(self.path / f"log-{next_index:020d}.seg", next_index)
                self.segments.append(seg)
                seg.path.touch()
                self._sync_dir()
            self._file = open(seg.path, "r+b")
            self._file.seek(seg.size)
        return self._file

    def _close_active(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _truncate_from(self, index: int) -> None:
        self._close_active()
        while self.segments and self.segments[-1].first >= index:
            self.segments.pop().path.unlink()
        if self.segments:
            seg = self.segments[-1]
            keep = index - seg.first
            if keep < len(seg.offsets):
                seg.size = seg.offsets[keep]
                del seg.offsets[keep:]
                with open(seg.path, "r+b") as f:
                    f.truncate(seg.size)
        self._sync_dir()

    def _drop_all_segments(self) -> None:
        self._close_active()
        for seg in self.segments:
            seg.path.unlink()
        self.segments = []
        self._sync_dir()

    def _write_hard_state(self) -> None:
        hs = self.hard_state
        body = msgpack.packb([FORMAT_VERSION, hs.term, hs.vote, hs.commit])
        self._atomic_write(self.path / _HS_NAME, _HDR.pack(len(body), crc32c.crc32c(body)) + body)

    def write_snapshot(self, snap: Snapshot) -> None:
        """Write ``snap`` durably (temp file, fsync, rename).  Blocking: run in a thread."""
        header = msgpack.packb([
            FORMAT_VERSION, snap.index, snap.term, sorted(snap.conf.voters),
            sorted(snap.conf.learners), crc32c.crc32c(snap.data),
        ])
        path = self.path / f"snapshot-{snap.index:020d}.snap"
        self._atomic_write(path, _HDR.pack(len(header), crc32c.crc32c(header)) + header, snap.data)

    def compact(self, snap: Snapshot) -> None:
        """After :meth:`write_snapshot` returned: adopt ``snap``, drop what it covers."""
        if self.snapshot is not None and snap.index <= self.snapshot.index:
            return
        self._adopt_snapshot(snap)
        self._write_hard_state()
        keep = [s for s in self.segments if not len(s.offsets) or s.last > snap.index
                or s is self.segments[-1]]
        for s in self.segments:
            if s not in keep:
                s.path.unlink()
        self.segments = keep
        self._sync_dir()

    def _adopt_snapshot(self, snap: Snapshot) -> None:
        self.snapshot = snap
        self.hard_state = HardState(self.hard_state.term, self.hard_state.vote,
                                    max(self.hard_state.commit, snap.index))
        for old in self.path.glob("snapshot-*.snap"):
            if old.name != f"snapshot-{snap.index:020d}.snap":
                old.unlink()

    def _atomic_write(self, path: Path, *parts: bytes) -> None:
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            for part in parts:
                f.write(part)
            f.flush()
            self._sync(f)
        os.replace(tmp, path)
        self._sync_dir()

    def _sync(self, f: IO[bytes]) -> None:
        if self.fsync:
            os.fdatasync(f.fileno())
            self.fsyncs += 1

    def _sync_dir(self) -> None:
        if self.fsync:
            fd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def close(self) -> None:
        """Close files; the latest commit index is written (it is synced lazily)."""
        self._close_active()
        if self.hard_state != self._read_hard_state():
            self._write_hard_state()


def _parse(raw: bytes, pos: int) -> tuple[int, int] | None:
    """(end offset, index) of a valid record at ``pos``, or None."""
    if pos + 8 > len(raw):
        return None
    length, crc = _HDR.unpack_from(raw, pos)
    end = pos + 8 + length
    if length < _REC.size or end > len(raw):
        return None
    if crc32c.crc32c(raw[pos + 8 : end]) != crc:
        return None
    return end, _REC.unpack_from(raw, pos + 8)[1]


def _valid_after(raw: bytes, pos: int, expected: int) -> bool:
    """Is there a valid record (index > ``expected``) after a bad one at ``pos``?

    That means damage in the middle of the log, not a torn final write.
    """
    most = expected + len(raw) // (8 + _REC.size) + 1
    for start in range(pos + 1, len(raw) - 8 - _REC.size + 1):
        length, crc = _HDR.unpack_from(raw, start)
        end = start + 8 + length
        if length < _REC.size or end > len(raw):
            continue
        if not expected < _REC.unpack_from(raw, start + 8)[1] <= most:
            continue
        if crc32c.crc32c(raw[start + 8 : end]) == crc:
            return True
    return False


def _decode(raw: bytes, pos: int) -> Entry:
    length, _ = _HDR.unpack_from(raw, pos)
    term, index, kind = _REC.unpack_from(raw, pos + 8)
    return Entry(term, index, kind, bytes(raw[pos + 8 + _REC.size : pos + 8 + length]))


def _framed(raw: bytes, p: Path) -> tuple[bytes, int]:
    """The checksummed ``length crc body`` frame at the start of ``raw``, and its end."""
    if len(raw) < 8:
        raise StorageCorrupt(f"{p}: truncated; restore this node's data directory")
    length, crc = _HDR.unpack_from(raw)
    body = raw[8 : 8 + length]
    if len(body) != length or crc32c.crc32c(body) != crc:
        raise StorageCorrupt(f"{p}: checksum mismatch; restore this node's data directory")
    return body, 8 + length


def _checked_unpack(raw: bytes, p: Path) -> object:
    body, _ = _framed(raw, p)
    try:
        return msgpack.unpackb(body)
    except ValueError:
        raise StorageCorrupt(f"{p}: not msgpack; restore this node's data directory") from None

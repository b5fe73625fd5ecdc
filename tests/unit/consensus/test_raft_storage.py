"""Storage with real files: round trips, group commit, torn tails, corruption."""

from __future__ import annotations

import os

import pytest

from consensus._errors import StorageCorrupt
from consensus._messages import ConfState, Entry, HardState
from consensus._storage import Storage
from consensus._types import Snapshot


def ents(lo: int, hi: int, term: int = 1, size: int = 10) -> list[Entry]:
    return [Entry(term, i, 0, bytes([i % 251]) * size) for i in range(lo, hi + 1)]


def test_round_trip_and_reopen(tmp_path) -> None:
    s = Storage.open(tmp_path)
    s.save(HardState(3, "n2", 0), ents(1, 5))
    s.save(HardState(3, "n2", 4), ents(6, 9))  # commit-only change: not synced eagerly
    s.close()
    r = Storage.open(tmp_path)
    assert r.hard_state == HardState(3, "n2", 4)  # close() wrote the latest commit
    assert r.entries() == ents(1, 9)
    assert r.recovery.torn_bytes == 0 and r.recovery.last_index == 9


def test_one_fsync_per_batch(tmp_path) -> None:
    s = Storage.open(tmp_path)
    s.save(None, ents(1, 100))
    s.save(None, ents(101, 200))
    assert s.fsyncs == 2


def test_truncate_conflicting_suffix(tmp_path) -> None:
    s = Storage.open(tmp_path, segment_bytes=200)  # many small segments
    s.save(HardState(1, None, 0), ents(1, 30))
    s.save(HardState(2, None, 0), ents(12, 14, term=2))
    assert [e.term for e in s.entries()] == [1] * 11 + [2] * 3
    s.close()
    r = Storage.open(tmp_path)
    assert r.entries() == ents(1, 11) + ents(12, 14, term=2)
    assert len(list(tmp_path.glob("log-*.seg"))) > 1


def test_torn_tail_is_cut_and_reported(tmp_path) -> None:
    s = Storage.open(tmp_path)
    s.save(HardState(1, None, 0), ents(1, 10))
    s.close()
    seg = sorted(tmp_path.glob("log-*.seg"))[-1]
    size = seg.stat().st_size
    os.truncate(seg, size - 7)  # the last record was only partly written
    r = Storage.open(tmp_path)
    assert r.entries() == ents(1, 9)
    assert r.recovery.torn_file == str(seg) and r.recovery.torn_bytes > 0
    r.save(None, ents(10, 12))  # appends continue cleanly after the cut
    r.close()
    assert Storage.open(tmp_path).entries() == ents(1, 12)


def test_corrupt_last_record_is_a_torn_tail(tmp_path) -> None:
    s = Storage.open(tmp_path)
    s.save(None, ents(1, 5))
    s.close()
    seg = sorted(tmp_path.glob("log-*.seg"))[-1]
    raw = bytearray(seg.read_bytes())
    raw[-1] ^= 0xFF
    seg.write_bytes(raw)
    assert Storage.open(tmp_path).entries() == ents(1, 4)


def test_mid_log_corruption_is_fatal(tmp_path) -> None:
    s = Storage.open(tmp_path)
    s.save(None, ents(1, 20))
    s.close()
    seg = sorted(tmp_path.glob("log-*.seg"))[-1]
    raw = bytearray(seg.read_bytes())
    raw[40] ^= 0xFF  # inside record 2; records 3..20 are intact
    seg.write_bytes(raw)
    with pytest.raises(StorageCorrupt, match=r"log-0+1\.seg: bad record at byte"):
        Storage.open(tmp_path)


def test_corrupt_hard_state_is_fatal(tmp_path) -> None:
    s = Storage.open(tmp_path)
    s.save(HardState(2, "a", 0), [])
    (tmp_path / "hardstate").write_bytes(b"\0" * 12)
    with pytest.raises(StorageCorrupt, match="hardstate"):
        Storage.open(tmp_path)


def test_snapshot_compaction_and_install(tmp_path) -> None:
    s = Storage.open(tmp_path, segment_bytes=300)
    s.save(HardState(1, None, 0), ents(1, 60))
    snap = Snapshot(40, 1, ConfState(frozenset({"a", "b"}), frozenset({"c"})), b"state" * 1000)
    s.write_snapshot(snap)
    s.compact(snap)
    assert s.entries()[0].index == 41
    s.close()
    r = Storage.open(tmp_path)
    assert r.snapshot == snap and r.entries() == ents(41, 60)
    assert r.hard_state.commit >= 40
    # A leader's snapshot replaces the whole log.
    snap2 = Snapshot(100, 3, ConfState(frozenset({"a"})), b"new")
    r.save(HardState(3, None, 100), ents(101, 102, term=3), snap2)
    r.close()
    t = Storage.open(tmp_path)
    assert t.snapshot == snap2 and t.entries() == ents(101, 102, term=3)
    assert len(list(tmp_path.glob("snapshot-*.snap"))) == 1


def test_leftover_temp_files_are_removed(tmp_path) -> None:
    Storage.open(tmp_path).close()
    (tmp_path / "snapshot-00000000000000000009.snap.tmp").write_bytes(b"half")
    Storage.open(tmp_path)
    assert not list(tmp_path.glob("*.tmp"))

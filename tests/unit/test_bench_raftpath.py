"""tools.bench.raftpath: both shapes replicate every command; one_entry appends one entry per proposal."""

from tools.bench import raftpath


def test_entries_shape_appends_one_entry_per_command() -> None:
    row = raftpath.measure(k=4, n=16, one_entry=False)
    assert row["entries"] == 16
    assert float(row["leader_us"]) > 0 and float(row["follower_us"]) > 0


def test_one_entry_shape_appends_one_entry_per_proposal() -> None:
    row = raftpath.measure(k=4, n=16, one_entry=True)
    assert row["entries"] == 4
    assert row["shape"] == "one_entry"

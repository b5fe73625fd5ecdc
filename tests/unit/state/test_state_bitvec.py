"""BitVector: allocation, rotation, persistence."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshd.state import BitVector


def test_next_free_skips_used_slots_and_rotates():
    vec = BitVector(10)
    vec.set(0)
    vec.set(2)
    assert [vec.allocate_next() for _ in range(3)] == [1, 3, 4]
    vec.clear(1)  # just released: not reused until the cursor comes round
    assert vec.allocate_next() == 5
    assert [vec.allocate_next() for _ in range(4)] == [6, 7, 8, 9]
    assert vec.allocate_next() == 1  # wrapped around to the only free slot
    assert vec.allocate_next() is None
    assert vec.count == vec.size == vec.popcount() == 10


def test_a_vector_crossing_many_words_finds_the_free_slot_far_away():
    vec = BitVector(1 << 16)
    for i in range(1 << 16):
        if i != 40_000:
            vec.set(i)
    vec.cursor = 100
    assert vec.allocate_next() == 40_000
    assert vec.allocate_next() is None


def test_set_and_clear_report_whether_they_changed_anything():
    vec = BitVector(5)
    assert vec.set(3) is True
    assert vec.set(3) is False
    assert vec.test(3)
    assert vec.clear(3) is True
    assert vec.clear(3) is False
    assert vec.count == 0


def test_out_of_range_slots_are_refused():
    vec = BitVector(5)
    with pytest.raises(IndexError, match="slot 5 is outside 0..4"):
        vec.set(5)
    with pytest.raises(ValueError, match="at least one slot"):
        BitVector(0)


def test_a_slash_16_vector_is_8_kib():
    assert len(BitVector(1 << 16).to_bytes()) == 8192


def test_from_bytes_checks_length_and_cursor():
    with pytest.raises(ValueError, match="needs 2 bytes, got 1"):
        BitVector.from_bytes(16, b"\x00")
    with pytest.raises(ValueError, match="cursor 16 is outside"):
        BitVector.from_bytes(16, b"\x00\x00", 16)


@settings(max_examples=150, deadline=None)
@given(
    size=st.integers(1, 300),
    ops=st.lists(st.tuples(st.sampled_from(["next", "set", "clear"]), st.integers(0, 299)), max_size=120),
)
def test_random_operations_keep_count_popcount_and_never_hand_out_a_used_slot(size, ops):
    vec = BitVector(size)
    model: set[int] = set()
    for op, i in ops:
        i %= size
        if op == "next":
            got = vec.allocate_next()
            if len(model) == size:
                assert got is None
            else:
                assert got is not None and got not in model and 0 <= got < size
                model.add(got)
        elif op == "set":
            assert vec.set(i) is (i not in model)
            model.add(i)
        else:
            assert vec.clear(i) is (i in model)
            model.discard(i)
        assert vec.count == vec.popcount() == len(model)
        assert vec.used() == sorted(model)
    again = BitVector.from_bytes(size, vec.to_bytes(), vec.cursor)
    assert again == vec
    assert again.count == len(model) and again.used() == sorted(model)
    # the restored vector allocates exactly as the original would
    assert [again.allocate_next() for _ in range(3)] == [vec.allocate_next() for _ in range(3)]

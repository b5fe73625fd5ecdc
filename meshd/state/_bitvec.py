"""A compact allocation bit vector with a rotating cursor.

Theory of operation
-------------------
Bit ``i`` set means slot ``i`` is in use (an IP offset in a subnet, or a VNI).
The bits live in one ``bytearray`` (one bit per slot: a /16 is 8 KiB) grouped in
64-bit words, little-endian, so word ``w`` holds slots ``64*w .. 64*w+63`` and
``int.from_bytes(word, "little")`` puts slot ``64*w + k`` at bit ``k``.  Bits
past ``size`` in the last word are kept set, so they are never handed out.

A second ``bytearray`` holds one byte per word: 1 when that word still has a
free bit.  :meth:`BitVector.allocate_next` looks in the cursor's word first
and otherwise asks ``bytearray.find`` (``memchr`` in C) for the next word that
has room, wrapping around once; it then moves the cursor just past the slot it
handed out.  A slot that was just released is therefore not reused until the
cursor comes round again (stale ARP/FDB entries elsewhere age out first), and
an allocation costs O(1) amortised: it never walks the vector bit by bit.

The vector knows nothing of addresses; callers map slots to IPs or VNIs and
reserve their special slots with :meth:`set`.
"""

from __future__ import annotations

_WORD_BITS = 64
_ALL = (1 << _WORD_BITS) - 1
_FULL_WORD = b"\xff" * 8
#: for a byte value, the position of its lowest clear bit (8 when the byte is full)
_LOWEST_ZERO = [next((k for k in range(8) if not b >> k & 1), 8) for b in range(256)]


class BitVector:
    """A fixed-size set of slots ``0 .. size-1``, each free or used.

    Args:
      size: number of slots, at least 1.
    """

    __slots__ = ("size", "count", "cursor", "_bits", "_room")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"a bit vector needs at least one slot, got size={size}")
        self.size = size
        #: slots in use (reserved ones included)
        self.count = 0
        #: where the next :meth:`allocate_next` starts looking
        self.cursor = 0
        nwords = (size + _WORD_BITS - 1) // _WORD_BITS
        self._bits = bytearray(nwords * 8)
        self._room = bytearray(b"\x01" * nwords)
        self._fill_padding()

    def _fill_padding(self) -> None:
        for i in range(self.size, len(self._bits) * 8):
            self._bits[i >> 3] |= 1 << (i & 7)
        last = len(self._room) - 1
        if self._bits[last * 8 :] == _FULL_WORD:
            self._room[last] = 0

    # --- queries -------------------------------------------------------------

    @property
    def free(self) -> int:
        """Number of free slots."""
        return self.size - self.count

    def test(self, i: int) -> bool:
        """True when slot ``i`` is in use."""
        self._check(i)
        return bool(self._bits[i >> 3] & (1 << (i & 7)))

    def popcount(self) -> int:
        """Count the set bits afresh (padding excluded); equals :attr:`count`."""
        padding = len(self._bits) * 8 - self.size
        return int.from_bytes(self._bits, "little").bit_count() - padding

    def used(self) -> list[int]:
        """Every slot in use, ascending (walks the whole vector: for tests and tools)."""
        value = int.from_bytes(self._bits, "little")
        out = []
        while value:
            low = value & -value
            i = low.bit_length() - 1
            if i >= self.size:
                break
            out.append(i)
            value ^= low
        return out

    # --- changes -------------------------------------------------------------

    def set(self, i: int) -> bool:
        """Mark slot ``i`` used.  Returns False (and changes nothing) if it already was."""
        self._check(i)
        byte, mask = i >> 3, 1 << (i & 7)
        bits = self._bits
        if bits[byte] & mask:
            return False
        bits[byte] |= mask
        self.count += 1
        w = i >> 6
        if bits[w * 8 : w * 8 + 8] == _FULL_WORD:
            self._room[w] = 0
        return True

    def clear(self, i: int) -> bool:
        """Mark slot ``i`` free.  Returns False (and changes nothing) if it already was."""
        self._check(i)
        byte, mask = i >> 3, 1 << (i & 7)
        if not self._bits[byte] & mask:
            return False
        self._bits[byte] &= ~mask & 0xFF
        self.count -= 1
        self._room[i >> 6] = 1
        return True

    def allocate_next(self) -> int | None:
        """Take the first free slot at or after the cursor (wrapping); None when full."""
        if self.count >= self.size:
            return None
        bits = self._bits
        c = self.cursor
        byte = bits[c >> 3] | ((1 << (c & 7)) - 1)  # the cursor's byte, slots before it masked
        if byte != 0xFF:  # fast path: a free slot in the cursor's own byte
            i = (c & ~7) | _LOWEST_ZERO[byte]
            bits[i >> 3] |= 1 << (i & 7)
        else:
            i = self._find_free(c)
        self.count += 1
        if bits[i >> 3] == 0xFF:
            w = i >> 6
            if bits[w * 8 : w * 8 + 8] == _FULL_WORD:
                self._room[w] = 0
        self.cursor = i + 1 if i + 1 < self.size else 0
        return i

    def allocate_in(self, first: int, last: int) -> int | None:
        """Take the first free slot of ``first..last`` at or after the cursor (wrapping inside the range);
        None when the range is full.  Linear in the range (a network's ``ip_range``, a few thousand
        slots at most in practice); the cursor moves past the slot as in :meth:`allocate_next`."""
        self._check(first)
        self._check(last)
        start = self.cursor if first <= self.cursor <= last else first
        for lo, hi in ((start, last + 1), (first, start)):
            i = lo
            while i < hi:
                if self._bits[i >> 3] == 0xFF:  # a full byte: skip to the next one
                    i = (i | 7) + 1
                    continue
                if not self.test(i):
                    self.set(i)
                    self.cursor = i + 1 if i + 1 < self.size else 0
                    return i
                i += 1
        return None

    def _find_free(self, c: int) -> int:
        """Set and return the first free slot at or after ``c`` (wrapping); one must exist."""
        bits = self._bits
        w = c >> 6
        free = ~int.from_bytes(bits[w * 8 : w * 8 + 8], "little") & (_ALL << (c & 63)) & _ALL
        if not free:
            w = self._room.find(1, w + 1)
            if w < 0:
                w = self._room.find(1)
            free = ~int.from_bytes(bits[w * 8 : w * 8 + 8], "little") & _ALL
        i = (w << 6) | ((free & -free).bit_length() - 1)
        bits[i >> 3] |= 1 << (i & 7)
        return i

    # --- persistence ---------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The bits as ``ceil(size/8)`` bytes (slot ``i`` is bit ``i % 8`` of byte ``i // 8``)."""
        return bytes(self._bits[: (self.size + 7) // 8])

    @classmethod
    def from_bytes(cls, size: int, data: bytes, cursor: int = 0) -> BitVector:
        """Rebuild a vector written by :meth:`to_bytes`.

        Raises:
          ValueError: ``data`` has the wrong length or the cursor is out of range.
        """
        vec = cls(size)
        if len(data) != (size + 7) // 8:
            raise ValueError(f"bit vector of {size} slots needs {(size + 7) // 8} bytes, got {len(data)}")
        if not 0 <= cursor < size:
            raise ValueError(f"bit vector cursor {cursor} is outside 0..{size - 1}")
        vec._bits[: len(data)] = data
        vec._fill_padding()
        bits = vec._bits
        vec._room = bytearray(
            0 if bits[o : o + 8] == _FULL_WORD else 1 for o in range(0, len(bits), 8)
        )
        vec.count = vec.popcount()
        vec.cursor = cursor
        return vec

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BitVector):
            return NotImplemented
        return (self.size, self.cursor, self._bits) == (other.size, other.cursor, other._bits)

    __hash__ = None  # type: ignore[assignment]  # mutable, so unhashable (typeshed wants a method here)

    def __repr__(self) -> str:
        return f"BitVector(size={self.size}, used={self.count}, cursor={self.cursor})"

    def _check(self, i: int) -> None:
        if not 0 <= i < self.size:
            raise IndexError(f"slot {i} is outside 0..{self.size - 1}")

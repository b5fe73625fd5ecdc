"""Typed messages on the wire: msgspec Structs, encoded as msgpack arrays.

Theory of operation
-------------------
Every message meshd sends between hosts, or writes into the Raft log, is a
frozen :class:`Message` -- a ``msgspec.Struct`` -- with an integer *tag*
(the class keyword ``tag=N``) and registered with :func:`message`.  On the
wire it is one msgpack array::

    [tag, version, field_1, field_2, ...]

``version`` is the first field of every message (declared on
:class:`Message`); the others follow in declaration order, so subclasses
declare theirs ``kw_only=True`` and are built with keywords (they repeat
``frozen=True``, which msgspec inherits anyway, for type checkers).  Nested records
(:class:`Record`) are arrays of their fields, without tag or version.
msgspec encodes and decodes them in C; its types drive both directions.

Decoding is typed and strict: a :class:`Decoder` knows one *family* of
messages (``msgspec.msgpack.Decoder(Union[...])``).  An unknown tag, a value
of the wrong type, a ``msgspec.Meta`` bound broken, or a message's own
``__post_init__`` refusing it raises :class:`DecodeError`, which a receive
loop catches and *counts*; nothing undecodable ever reaches a protocol core.
(Note that msgspec checks types and bounds when *decoding*; a constructor
call only runs ``__post_init__``.)

Compatibility: a peer may send an older *version* of a message with fewer
fields; the missing trailing fields take their defaults.  A newer peer may
append fields; they are ignored.  So a field is only ever appended, with a
default, and ``version`` is bumped (redeclare ``version: Version = 2``).
Tags are part of the protocol: the registry is append-only (never renumber,
never reuse a retired tag).

Tag ranges (so independent modules never collide):

======= =============================================
1-63    gossip (meshd.gossip)
64-127  local control and tests
128-191 the replicated state's commands and results
192-    reserved
======= =============================================

Raft messages use msgspec the same way in ``consensus`` (which must not
import meshd, so it declares its own two base classes); the scheduler API
has its own seed-compatible framing (``meshd.api``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Annotated, Any, ClassVar, Generic, TypeVar, Union

import msgspec

#: Largest message body accepted by :func:`decode` (bytes).  Gossip and control
#: messages are far smaller; anything bigger is dropped as oversized.
MAX_MESSAGE_BYTES = 1 << 20

#: The type of :attr:`Message.version`: what the sender wrote, 1 or more.
Version = Annotated[int, msgspec.Meta(ge=1)]

T = TypeVar("T")


class DecodeError(ValueError):
    """A frame could not be turned into a message (the peer's fault).

    Receive loops catch this, count it and drop the frame.
    """


class Message(msgspec.Struct, frozen=True, array_like=True, gc=False, repr_omit_defaults=True):
    """Base of every tagged message: ``[tag, version, *fields]``.

    Subclass as ``class Ping(wire.Message, tag=1, kw_only=True, frozen=True)``
    and decorate with :func:`message`.  ``gc=False``: messages hold only scalars, tuples,
    string maps and records, never a cycle, so the cyclic GC need not track
    them (the state machine builds a million).
    """

    #: the message version the sender wrote (bump it when appending fields)
    version: Version = 1
    #: the registered tag (set by :func:`message`)
    TAG: ClassVar[int]


class Record(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """Base of a record nested in messages: an array of its fields."""


_REGISTRY: dict[int, type[Message]] = {}
_ENCODER = msgspec.msgpack.Encoder()

M = TypeVar("M", bound=type[Message])


def message(cls: M) -> M:
    """Register a :class:`Message` subclass under its ``tag``.

    Raises:
      ValueError: the class is not a tagged Message, or its tag is out of range
        or already taken (the registry is append-only).
    """
    if not (isinstance(cls, type) and issubclass(cls, Message)):
        raise ValueError(f"{getattr(cls, '__qualname__', cls)} must subclass meshd.wire.Message to go on the wire")
    tag = cls.__struct_config__.tag
    if type(tag) is not int or not 0 < tag < 2**16:
        raise ValueError(f"{cls.__qualname__} needs an integer tag in 1..65535 (class keyword tag=N), got {tag!r}")
    if tag in _REGISTRY and _REGISTRY[tag] is not cls:
        raise ValueError(
            f"wire tag {tag} is already used by {_REGISTRY[tag].__qualname__}; "
            f"pick a free tag for {cls.__qualname__} (the registry is append-only)"
        )
    _REGISTRY[tag] = cls
    cls.TAG = tag
    return cls


class Decoder(Generic[T]):
    """A typed decoder of one family of messages (one msgpack frame each).

    Args:
      types: the message classes this decoder accepts (tags must differ).
      what: the family's name for error messages ("gossip message", ...).
      max_bytes: larger frames are refused before decoding.
    """

    def __init__(self, types: Iterable[type[T]], *, what: str, max_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self.types = tuple(types)
        self.what = what
        self.max_bytes = max_bytes
        self._decoder = msgspec.msgpack.Decoder(Union[self.types])  # noqa: UP007 (a union built from a tuple at run time)

    def decode(self, data: bytes) -> T:
        """The message in ``data``.

        Raises:
          DecodeError: oversized, not msgpack, trailing bytes, not one of
            this family's tags, wrong field types or bounds, or refused by the
            message's own ``__post_init__``.
        """
        if len(data) > self.max_bytes:
            raise DecodeError(f"{self.what} of {len(data)} bytes exceeds the {self.max_bytes}-byte limit")
        try:
            msg: T = self._decoder.decode(data)
            return msg
        except msgspec.DecodeError as exc:  # ValidationError included
            raise DecodeError(f"not a valid {self.what}: {exc}") from None


def encode(msg: Message) -> bytes:
    """Encode a registered message as ``[tag, version, *fields]`` msgpack bytes.

    Raises:
      TypeError: ``msg`` is not a registered message.
    """
    cls = type(msg)
    tag = getattr(cls, "TAG", None)
    if tag is None or _REGISTRY.get(tag) is not cls:
        raise TypeError(f"{cls.__qualname__} is not a registered wire message")
    return _ENCODER.encode(msg)


_ANY: list[Decoder[Any]] = []


def decode(data: bytes, *, max_bytes: int = MAX_MESSAGE_BYTES) -> Any:
    """Decode any registered message (prefer a family's :class:`Decoder`).

    Raises:
      DecodeError: as :meth:`Decoder.decode`.
    """
    if not _ANY or len(_ANY[0].types) != len(_REGISTRY):
        _ANY[:] = [Decoder(_REGISTRY.values(), what="message", max_bytes=sys.maxsize)]
    if len(data) > max_bytes:
        raise DecodeError(f"frame of {len(data)} bytes exceeds the {max_bytes}-byte limit")
    return _ANY[0].decode(data)


def registered() -> dict[int, type[Message]]:
    """A copy of the tag registry (for docs and tests)."""
    return dict(_REGISTRY)

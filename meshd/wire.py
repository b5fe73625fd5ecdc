"""Typed messages on the wire: one frozen dataclass per message, msgpack encoding.

Theory of operation
-------------------
Every message meshd sends between hosts is a frozen, slotted dataclass
registered with :func:`message` under a numeric *tag*.  On the wire it is one
msgpack array::

    [tag, version, field_1, field_2, ...]

Fields are written in declaration order.  A field's annotation drives both
directions: ``int``, ``float``, ``str``, ``bytes``, ``bool``, ``X | None``,
``tuple[X, ...]``, ``dict[str, X]`` and nested ``@struct`` dataclasses (written
as arrays of their fields) are supported.  Decoding is strict: unknown tags,
wrong arity, wrong types and anything the class's own ``__post_init__``
rejects raise :class:`DecodeError`, which a receive loop catches and *counts*;
nothing undecodable ever reaches a protocol core.

Compatibility: a peer may send an older *version* of a message with fewer
fields; the missing trailing fields take their defaults.  A newer peer may
append fields; they are ignored.  Tags are part of the protocol: the registry
is append-only (never renumber, never reuse a retired tag).

Tag ranges (so independent modules never collide):

======= =============================================
1-63    gossip (meshd.gossip)
64-127  local control and tests
128-191 the replicated state's commands and results
192-    reserved
======= =============================================

Raft messages live in ``consensus`` with their own codec (consensus must not
import meshd); the scheduler API has its own seed-compatible framing.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Callable, TypeVar

import msgpack

#: Largest message body accepted by :func:`decode` (bytes).  Gossip and control
#: messages are far smaller; anything bigger is dropped as oversized.
MAX_MESSAGE_BYTES = 1 << 20

_REGISTRY: dict[int, type] = {}
_VERSIONS: dict[type, int] = {}
_STRUCTS: set[type] = set()

T = TypeVar("T")


class DecodeError(ValueError):
    """A frame could not be turned into a message (the peer's fault).

    Receive loops catch this, count it and drop the frame.
    """


def message(tag: int, version: int = 1) -> Callable[[type[T]], type[T]]:
    """Register a frozen dataclass as a wire message under ``tag``.

    Args:
      tag: the protocol number of this message; never reuse or renumber.
      version: bumped when fields are appended.

    Raises:
      ValueError: the tag is already taken, or the class is not a frozen dataclass.
    """

    def register(cls: type[T]) -> type[T]:
        _check_dataclass(cls)
        if tag in _REGISTRY and _REGISTRY[tag] is not cls:
            raise ValueError(
                f"wire tag {tag} is already used by {_REGISTRY[tag].__qualname__}; "
                f"pick a free tag for {cls.__qualname__} (the registry is append-only)"
            )
        if not 0 < tag < 2**16:
            raise ValueError(f"wire tag {tag} for {cls.__qualname__} must be in 1..65535")
        _REGISTRY[tag] = cls
        _VERSIONS[cls] = version
        cls.TAG = tag  # type: ignore[attr-defined]
        cls.VERSION = version  # type: ignore[attr-defined]
        return cls

    return register


def struct(cls: type[T]) -> type[T]:
    """Mark a frozen dataclass usable as a nested field (encoded as an array)."""
    _check_dataclass(cls)
    _STRUCTS.add(cls)
    return cls


def _check_dataclass(cls: type) -> None:
    if not dataclasses.is_dataclass(cls) or not cls.__dataclass_params__.frozen:  # type: ignore[attr-defined]
        raise ValueError(f"{cls.__qualname__} must be a frozen dataclass to go on the wire")


def encode(msg: Any) -> bytes:
    """Encode a registered message as ``[tag, version, *fields]`` msgpack bytes."""
    cls = type(msg)
    if cls not in _VERSIONS:
        raise TypeError(f"{cls.__qualname__} is not a registered wire message")
    return msgpack.packb([cls.TAG, cls.VERSION, *_fields_out(msg)], use_bin_type=True)


def decode(data: bytes, *, max_bytes: int = MAX_MESSAGE_BYTES) -> Any:
    """Decode bytes made by :func:`encode` back into the message instance.

    Raises:
      DecodeError: oversized, not msgpack, unknown tag, wrong shape or field
        types, or rejected by the message's own validation.
    """
    if len(data) > max_bytes:
        raise DecodeError(f"frame of {len(data)} bytes exceeds the {max_bytes}-byte limit")
    try:
        unpacker = msgpack.Unpacker(
            raw=False, strict_map_key=True, max_buffer_size=max_bytes, use_list=True
        )
        unpacker.feed(data)
        obj = unpacker.unpack()
        if unpacker.tell() != len(data):
            raise ValueError(f"{len(data) - unpacker.tell()} trailing bytes after the message")
    except Exception as exc:  # msgpack raises many unrelated types on bad input
        raise DecodeError(f"not valid msgpack: {exc.__class__.__name__}: {exc}") from None
    if not isinstance(obj, list) or len(obj) < 2:
        raise DecodeError("a message must be an array [tag, version, fields...]")
    tag, version, *fields = obj
    if type(tag) is not int or type(version) is not int:
        raise DecodeError("message tag and version must be integers")
    cls = _REGISTRY.get(tag)
    if cls is None:
        raise DecodeError(f"unknown message tag {tag}")
    if version < 1:
        raise DecodeError(f"{cls.__qualname__}: bad version {version}")
    return _build(cls, fields)


def registered() -> dict[int, type]:
    """A copy of the tag registry (for docs and tests)."""
    return dict(_REGISTRY)


# --- field conversion -------------------------------------------------------


def _fields_out(obj: Any) -> list[Any]:
    return [_value_out(getattr(obj, f.name)) for f in dataclasses.fields(obj)]


def _value_out(value: Any) -> Any:
    if type(value) in _STRUCTS:
        return _fields_out(value)
    if isinstance(value, tuple):
        return [_value_out(v) for v in value]
    if isinstance(value, dict):
        return {k: _value_out(v) for k, v in value.items()}
    return value


def _build(cls: type[T], fields: list[Any]) -> T:
    spec = dataclasses.fields(cls)  # type: ignore[arg-type]
    hints = _hints(cls)
    if len(fields) > len(spec):
        fields = fields[: len(spec)]  # appended by a newer version: ignore
    kwargs: dict[str, Any] = {}
    for i, f in enumerate(spec):
        if i < len(fields):
            kwargs[f.name] = _value_in(hints[f.name], fields[i], f"{cls.__qualname__}.{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise DecodeError(f"{cls.__qualname__}: missing field {f.name!r}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise DecodeError(f"{cls.__qualname__}: {exc}") from None


_HINT_CACHE: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    hints = _HINT_CACHE.get(cls)
    if hints is None:
        hints = typing.get_type_hints(cls)
        _HINT_CACHE[cls] = hints
    return hints


def _value_in(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _value_in(arg, value, where)
            except DecodeError as exc:
                errors.append(str(exc))
        raise DecodeError("; ".join(errors) or f"{where}: unexpected None")
    if origin is tuple:
        if not isinstance(value, list):
            raise DecodeError(f"{where}: expected an array, got {type(value).__name__}")
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_value_in(args[0], v, where) for v in value)
        if len(args) != len(value):
            raise DecodeError(f"{where}: expected {len(args)} items, got {len(value)}")
        return tuple(_value_in(a, v, where) for a, v in zip(args, value))
    if origin is dict:
        if not isinstance(value, dict):
            raise DecodeError(f"{where}: expected a map, got {type(value).__name__}")
        kt, vt = typing.get_args(hint)
        return {_value_in(kt, k, where): _value_in(vt, v, where) for k, v in value.items()}
    if hint in _STRUCTS:
        if not isinstance(value, list):
            raise DecodeError(f"{where}: expected an array for {hint.__qualname__}")
        return _build(hint, value)
    if hint is float:
        if type(value) in (int, float):
            return float(value)
        raise DecodeError(f"{where}: expected a number, got {type(value).__name__}")
    if hint is Any:
        return value
    if isinstance(hint, type) and issubclass(hint, int) and hint is not bool:
        if type(value) is not int:
            raise DecodeError(f"{where}: expected an integer, got {type(value).__name__}")
        try:
            return hint(value)  # IntEnum subclasses validate their range here
        except ValueError as exc:
            raise DecodeError(f"{where}: {exc}") from None
    if isinstance(hint, type) and issubclass(hint, str) and hint is not str:
        if type(value) is not str:
            raise DecodeError(f"{where}: expected a string, got {type(value).__name__}")
        try:
            return hint(value)  # StrEnum
        except ValueError as exc:
            raise DecodeError(f"{where}: {exc}") from None
    if hint in (str, bytes, bool):
        if type(value) is not hint:
            raise DecodeError(f"{where}: expected {hint.__name__}, got {type(value).__name__}")
        return value
    raise DecodeError(f"{where}: unsupported field type {hint!r}")

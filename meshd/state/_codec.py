"""Bytes <-> typed commands and results, for proposers and for readers of apply()'s output.

The encoding is :mod:`meshd.wire`'s ``[tag, version, fields...]`` msgpack; these
helpers only add the check that the message is of the expected family.
"""

from __future__ import annotations

import dataclasses
import operator
from typing import Any, Callable

import msgpack

from meshd import wire

from ._commands import COMMAND_TYPES, CommandError, Connect, Result, fast_constructor
from ._types import NO_QOS, Qos

_RESULT_TYPES: tuple[type, ...] = (*Result.__args__, CommandError)  # type: ignore[attr-defined]

# --- the apply() hot path ------------------------------------------------------
#
# wire.decode/encode interpret type hints field by field (about 30 us per
# message); the state machine applies up to a million connects.  These two
# fast paths produce exactly what the generic codec produces (tested), and
# anything they do not recognise goes through meshd.wire.

_new_connect = fast_constructor(Connect)
_new_qos = fast_constructor(Qos)
_CONNECT_TAG = Connect.TAG  # type: ignore[attr-defined]


def decode_for_apply(data: bytes) -> Any:
    """:func:`meshd.wire.decode`, with a fast path for a well-formed Connect.

    Raises:
      wire.DecodeError: as :func:`meshd.wire.decode` does.
    """
    if len(data) < 256 and data[1:2] == b"\xcc" and data[2] == _CONNECT_TAG:
        try:
            obj = msgpack.unpackb(data, raw=False, strict_map_key=True)
        except Exception:  # malformed: let the generic decoder describe it
            obj = None
        cmd = _connect_from(obj)
        if cmd is not None:
            return cmd
    return wire.decode(data)


def _connect_from(obj: Any) -> Connect | None:
    """A Connect from ``[131, 1, id, network, host, ip, mac, [rate, burst, latency]]``, or None."""
    if type(obj) is not list or len(obj) != 8 or obj[1] != 1:
        return None
    _, _, cid, network, host, ip, mac, qos = obj
    if not (type(cid) is str and type(network) is str and type(host) is str):
        return None
    if not ((ip is None or type(ip) is str) and (mac is None or type(mac) is str)):
        return None
    if type(qos) is not list or len(qos) != 3 or not all(type(x) is int for x in qos):
        return None
    return _new_connect(cid, network, host, ip, mac, NO_QOS if qos == [0, 0, 0] else _new_qos(*qos))


_GETTERS: dict[type, Callable[[Any], Any]] = {}


def encode_result_fast(result: Any) -> bytes:
    """:func:`meshd.wire.encode` of a result or error (all are flat records)."""
    cls = type(result)
    getter = _GETTERS.get(cls)
    if getter is None:
        names = [f.name for f in dataclasses.fields(cls)]
        getter = _GETTERS[cls] = operator.attrgetter(*names) if len(names) > 1 else _one(names[0])
    return msgpack.packb([cls.TAG, cls.VERSION, *getter(result)], use_bin_type=True)


def _one(name: str) -> Callable[[Any], tuple[Any]]:
    get = operator.attrgetter(name)
    return lambda obj: (get(obj),)


def encode_command(command: object) -> bytes:
    """Bytes to propose to the Raft log.

    Raises:
      TypeError: ``command`` is not a state command.
    """
    if not isinstance(command, COMMAND_TYPES):
        raise TypeError(f"{type(command).__qualname__} is not a state command")
    return wire.encode(command)


def decode_command(data: bytes) -> object:
    """The command in a log entry.

    Raises:
      wire.DecodeError: not a state command.
    """
    return _decode_as(data, COMMAND_TYPES, "command")


def encode_result(result: object) -> bytes:
    if not isinstance(result, _RESULT_TYPES):
        raise TypeError(f"{type(result).__qualname__} is not a state result")
    return wire.encode(result)


def decode_result(data: bytes) -> Result | CommandError:
    """What :meth:`NetworkState.apply` returned, as a typed record.

    Raises:
      wire.DecodeError: not a state result.
    """
    return _decode_as(data, _RESULT_TYPES, "result")  # type: ignore[return-value]


def _decode_as(data: bytes, types: tuple[type, ...], what: str) -> object:
    msg = wire.decode(data)
    if not isinstance(msg, types):
        raise wire.DecodeError(f"{type(msg).__qualname__} is not a state {what}")
    return msg

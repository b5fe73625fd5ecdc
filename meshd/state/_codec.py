"""Bytes <-> typed commands and results, for proposers and for readers of apply()'s output.

The encoding is :mod:`meshd.wire`'s ``[tag, version, fields...]`` msgpack; these
helpers only add the check that the message is of the expected family.
"""

from __future__ import annotations

from meshd import wire

from ._commands import COMMAND_TYPES, CommandError, Result

_RESULT_TYPES: tuple[type, ...] = (*Result.__args__, CommandError)  # type: ignore[attr-defined]


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
    cmd = wire.decode(data)
    if not isinstance(cmd, COMMAND_TYPES):
        raise wire.DecodeError(f"{type(cmd).__qualname__} is not a state command")
    return cmd


def encode_result(result: object) -> bytes:
    if not isinstance(result, _RESULT_TYPES):
        raise TypeError(f"{type(result).__qualname__} is not a state result")
    return wire.encode(result)


def decode_result(data: bytes) -> Result | CommandError:
    """What :meth:`NetworkState.apply` returned, as a typed record.

    Raises:
      wire.DecodeError: not a state result.
    """
    res = wire.decode(data)
    if not isinstance(res, _RESULT_TYPES):
        raise wire.DecodeError(f"{type(res).__qualname__} is not a state result")
    return res

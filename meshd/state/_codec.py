"""Bytes <-> typed commands and results, for proposers and for readers of apply()'s output.

The encoding is :mod:`meshd.wire`'s ``[tag, version, fields...]`` msgpack; the
two decoders here accept only their family (a result is not a command), so
``apply`` gets a typed command or a :class:`meshd.wire.DecodeError`.
"""

from __future__ import annotations

from meshd import wire

from ._commands import COMMAND_TYPES, RESULT_TYPES, Command, CommandError, Result

_COMMANDS: wire.Decoder[Command] = wire.Decoder(COMMAND_TYPES, what="state command")
_RESULTS: wire.Decoder[Result | CommandError] = wire.Decoder(RESULT_TYPES, what="state result")


def encode_command(command: object) -> bytes:
    """Bytes to propose to the Raft log.

    Raises:
      TypeError: ``command`` is not a state command.
    """
    if not (isinstance(command, wire.Message) and isinstance(command, COMMAND_TYPES)):
        raise TypeError(f"{type(command).__qualname__} is not a state command")
    return wire.encode(command)


def decode_command(data: bytes) -> Command:
    """The command in a log entry.

    Raises:
      wire.DecodeError: not a state command (of any version this one reads).
    """
    return _COMMANDS.decode(data)


def encode_result(result: object) -> bytes:
    """Bytes of what :meth:`NetworkState.apply` returns.

    Raises:
      TypeError: ``result`` is not a state result or error.
    """
    if not (isinstance(result, wire.Message) and isinstance(result, RESULT_TYPES)):
        raise TypeError(f"{type(result).__qualname__} is not a state result")
    return wire.encode(result)


def decode_result(data: bytes) -> Result | CommandError:
    """What :meth:`NetworkState.apply` returned, as a typed record.

    Raises:
      wire.DecodeError: not a state result.
    """
    return _RESULTS.decode(data)

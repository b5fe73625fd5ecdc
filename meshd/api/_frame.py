"""Scheduler API framing (seed 001 §1.3): an 8-byte header, then a msgpack map.

Every scheduler message is ONE ZeroMQ frame::

    +----------------+----------------+---------------------------+
    | body length    | message type   | body: msgpack map         |
    | uint32, BE     | uint32, BE     | (body length bytes)       |
    +----------------+----------------+---------------------------+

This is the seed's ``SzmqMsgHeader {int iMsgLen; int iMsgType;}`` in network
byte order, "iMsgLen only counts the data".  A reply has the request's type
with :data:`RESPONSE_FLAG` set.  This module is pure: bytes in, typed values
out, :class:`FrameError` (with an :class:`ApiError` code) for anything else.
"""

from __future__ import annotations

import enum
import struct
from typing import Any

import msgspec

HEADER = struct.Struct("!II")
#: Set in the type of every reply (``type | RESPONSE_FLAG``).
RESPONSE_FLAG = 0x8000_0000


class MsgType(enum.IntEnum):
    """Message types.  Append only: the numbers are the protocol."""

    # requests (SUB 30027 and ROUTER 30028)
    NETWORK_CREATE = 1
    NETWORK_DELETE = 2
    NETWORK_LIST = 3
    ENDPOINT_CONNECT = 4
    ENDPOINT_DISCONNECT = 5
    QOS_SET = 6
    POLICY_ADD = 7
    POLICY_DELETE = 8
    POLICY_LIST = 9
    QUERY_MEMBERS = 10
    QUERY_STATUS = 11
    QUERY_ENDPOINTS = 12
    QUERY_NETWORKS = 13
    NETWORK_UPDATE = 14
    ENDPOINT_MOVE = 15
    # service discovery (issue 17, docs/dns.md)
    SERVICE_PUBLISH = 70
    SERVICE_UNPUBLISH = 71
    SERVICE_QUERY = 72
    # local control socket only (refused with NOT_ALLOWED on the scheduler sockets)
    CONTROL_JOIN = 64
    CONTROL_LEAVE = 65
    CONTROL_LOG_LEVEL = 66
    # events (PUB 30029)
    EVENT_ENDPOINT_UP = 100
    EVENT_ENDPOINT_DOWN = 101
    EVENT_NETWORK_CREATED = 102
    EVENT_NETWORK_DELETED = 103
    EVENT_MEMBER_JOIN = 104
    EVENT_MEMBER_FAIL = 105
    EVENT_MEMBER_LEAVE = 106
    EVENT_ENDPOINT_STATS = 107
    EVENT_ERROR = 108
    EVENT_POLICY_CHANGED = 109
    EVENT_MEMBER_AGENT_DOWN = 110
    EVENT_MTU_PROBLEM = 111
    EVENT_SERVICE_REGISTERED = 120
    EVENT_SERVICE_HEALTH = 121
    EVENT_SERVICE_REMOVED = 122


class ApiError(enum.IntEnum):
    """Error codes of the API layer (the frame or request was wrong, or the
    cluster could not serve it).  State errors carry ``meshd.state.ErrorCode``
    numbers offset by 1000, so both fit one ``code`` field."""

    TRUNCATED = 1
    LENGTH_MISMATCH = 2
    OVERSIZED = 3
    NOT_MSGPACK = 4
    NOT_A_MAP = 5
    UNKNOWN_TYPE = 6
    MISSING_FIELD = 7
    WRONG_TYPE = 8
    UNKNOWN_FIELD = 9
    INVALID_VALUE = 10
    UNKNOWN_CONTAINER = 11
    UNAVAILABLE = 12
    TIMEOUT = 13
    INTERNAL = 14
    NOT_ALLOWED = 15
    INTERFACE_FAILED = 16
    UNKNOWN_HOST = 17
    MTU_TOO_LARGE = 18
    MODE_UNSUPPORTED = 19
    UNDERLAY_OVERLAP = 20
    DHCP_FAILED = 21


STATE_ERROR_OFFSET = 1000


class FrameError(ValueError):
    """A frame or request the API cannot take; ``code`` goes into the error reply."""

    def __init__(self, code: ApiError, message: str, msg_type: int = 0, request_id: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.msg_type = msg_type
        self.request_id = request_id


_ENCODER = msgspec.msgpack.Encoder()


def pack(msg_type: int, body: dict[str, Any]) -> bytes:
    """One frame: header + msgpack map."""
    data = _ENCODER.encode(body)
    return HEADER.pack(len(data), msg_type) + data


def split(frame: bytes, *, max_bytes: int) -> tuple[int, memoryview]:
    """Check the header of one frame: (message type, body bytes, not decoded yet).

    Raises:
      FrameError: truncated, oversized, or the length field is wrong.
    """
    if len(frame) > max_bytes:
        raise FrameError(ApiError.OVERSIZED, f"frame of {len(frame)} bytes exceeds the {max_bytes}-byte limit")
    if len(frame) < HEADER.size:
        raise FrameError(ApiError.TRUNCATED, f"frame of {len(frame)} bytes is shorter than the 8-byte header")
    length, msg_type = HEADER.unpack_from(frame)
    if length != len(frame) - HEADER.size:
        raise FrameError(
            ApiError.LENGTH_MISMATCH,
            f"header says the body is {length} bytes but {len(frame) - HEADER.size} follow",
            msg_type,
        )
    return msg_type, memoryview(frame)[HEADER.size:]


def unpack(frame: bytes, *, max_bytes: int) -> tuple[int, dict[str, Any]]:
    """Split and decode one frame (replies and events; requests go through
    :func:`~meshd.api._requests.parse_request`, which decodes into the typed request).

    Returns:
      (message type, body map).  The type is returned as a plain int; callers
      check it against :class:`MsgType` (unknown types get an error reply
      naming the type).

    Raises:
      FrameError: truncated, oversized, length field wrong, body not a
        msgpack map with string keys.
    """
    msg_type, data = split(frame, max_bytes=max_bytes)
    try:
        body = msgspec.msgpack.decode(data)
    except msgspec.DecodeError as exc:
        raise FrameError(ApiError.NOT_MSGPACK, f"body is not valid msgpack ({exc})", msg_type) from None
    if not isinstance(body, dict):
        raise FrameError(ApiError.NOT_A_MAP, f"body must be a msgpack map, got {type(body).__name__}", msg_type)
    if not all(type(k) is str for k in body):
        raise FrameError(ApiError.NOT_MSGPACK, "body map keys must be strings", msg_type)
    return msg_type, body

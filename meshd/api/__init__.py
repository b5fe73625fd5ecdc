"""meshd.api: the scheduler ZeroMQ API (seed 001 framing) and its client.

* :mod:`._frame` — the 8-byte header + msgpack map framing, message types, error codes;
* :mod:`._requests` — one typed request per message type, parsed strictly;
* :class:`SchedulerService` — frames in, replies out, over an :class:`ApiBackend`;
* :class:`SchedulerApi` — the SUB/ROUTER/PUB sockets with CURVE client keys;
* :class:`ControlServer` — the same service on the root-only local control socket;
* :mod:`meshd.api.client` — a blocking Python client.

The wire format is specified in docs/api.md.
"""

from ._control import CONTROL_SOCKET, ControlServer
from ._frame import HEADER, RESPONSE_FLAG, STATE_ERROR_OFFSET, ApiError, FrameError, MsgType, pack, unpack
from ._requests import EndpointConnect, EndpointMove, NetworkCreate, QosSet, parse_request, request_types
from ._server import API_DOMAIN, SchedulerApi
from ._service import ApiBackend, Refused, Reply, SchedulerService, Unavailable, plain

__all__ = [
    "API_DOMAIN", "ApiBackend", "ApiError", "CONTROL_SOCKET", "ControlServer", "EndpointConnect", "EndpointMove",
    "NetworkCreate", "QosSet",
    "FrameError", "HEADER", "MsgType", "RESPONSE_FLAG", "Refused", "Reply", "STATE_ERROR_OFFSET", "SchedulerApi",
    "SchedulerService", "Unavailable", "pack", "parse_request", "plain", "request_types", "unpack",
]

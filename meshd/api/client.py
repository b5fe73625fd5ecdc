"""A small blocking Python client of the scheduler API (for schedulers and scripts).

Example::

    from meshd.api.client import SchedulerClient

    with SchedulerClient("192.0.2.11", key_file="sched1.key") as api:
        api.request(MsgType.NETWORK_CREATE, name="blue", subnet="10.1.0.0/24")
        ep = api.request(MsgType.ENDPOINT_CONNECT, container_id=cid, network="blue",
                         bandwidth_kbit=10_000)
        print(ep["ip"], ep["mac"])

Every call carries a fresh ``request_id``; on a timeout the same request (same
id) is sent again up to ``retries`` times, so a command is never applied twice.
"""

from __future__ import annotations

import errno
import socket
import uuid
from pathlib import Path
from typing import Any

import zmq

from meshd.transport import ClientKey, read_client_key

from ._control import CONTROL_SOCKET
from ._frame import RESPONSE_FLAG, FrameError, MsgType, pack, unpack
from ._requests import parse_request


class ApiRequestError(Exception):
    """The API answered with an error: ``code`` and ``message`` as in docs/api.md."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"[{code}] {message}")
        self.code = code
        self.message = message


def _checked_frame(msg_type: int, fields: dict[str, Any]) -> bytes:
    """The request frame, after the checks the agent will make (so a value msgpack
    cannot even carry, like a 70-digit rate, is one clear error, not an OverflowError)."""
    try:
        parse_request(msg_type, fields)
    except FrameError as exc:
        raise ApiRequestError(int(exc.code), str(exc)) from None
    return pack(msg_type, fields)


class AgentNotRunning(ConnectionError):
    """No agent listens on the local control socket (known at once, without waiting)."""


def probe_control_socket(path: str | Path) -> None:
    """Check that an agent listens on the control socket at ``path``.

    ZeroMQ connects lazily and would only time out; a missing socket file, or
    one nobody accepts on (left by an agent that died), is known at once.

    Raises:
      AgentNotRunning: no socket file, or nobody listens on it.
      PermissionError: the socket (root-only) is not reachable for this user.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except (FileNotFoundError, NotADirectoryError):
            raise AgentNotRunning(f"no meshd agent runs on this host: {path} does not exist") from None
        except ConnectionRefusedError:
            raise AgentNotRunning(f"no meshd agent runs on this host: nobody listens on {path} "
                                  "(an agent that stopped left it)") from None
        except PermissionError:
            raise PermissionError(errno.EACCES, f"the control socket {path} is root-only: run this as root "
                                  "(sudo meshd ...)") from None


class SchedulerClient:
    """Blocking client: ROUTER requests, PUB fire-and-forget, SUB events."""

    def __init__(self, host: str, *, key_file: str | None = None, key: ClientKey | None = None,
                 router_port: int = 30028, sub_port: int = 30027, pub_port: int = 30029,
                 timeout_s: float = 10.0, retries: int = 2) -> None:
        self._setup(
            {"router": f"tcp://{host}:{router_port}", "sub": f"tcp://{host}:{sub_port}",
             "pub": f"tcp://{host}:{pub_port}"},
            key or read_client_key(key_file or "client.key"), timeout_s, retries)

    @classmethod
    def local(cls, run_dir: str = "/run/meshd", *, timeout_s: float = 10.0) -> SchedulerClient:
        """A client of this host's agent over its root-only control socket (no CURVE:
        the socket file's permissions admit root only).  Requests only; no events.

        Raises:
          AgentNotRunning: no agent listens there (said at once, not after a timeout).
          PermissionError: not root.
        """
        probe_control_socket(Path(run_dir) / CONTROL_SOCKET)
        self = cls.__new__(cls)
        self._setup({"router": f"ipc://{run_dir}/{CONTROL_SOCKET}"}, None, timeout_s, 0)
        return self

    def _setup(self, endpoints: dict[str, str], key: ClientKey | None, timeout_s: float, retries: int) -> None:
        self.endpoints = endpoints
        self.key = key
        self.timeout_ms = int(timeout_s * 1000)
        self.retries = retries
        self.ctx = zmq.Context()
        self._dealer = self._socket(zmq.DEALER, "router")
        self._publisher: zmq.Socket | None = None
        self._events: zmq.Socket | None = None

    def __enter__(self) -> SchedulerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.ctx.destroy(linger=0)

    def request(self, msg_type: MsgType, **fields: Any) -> dict[str, Any]:
        """Send one request and return its ``result`` map.

        Raises:
          ApiRequestError: the API answered with an error, or the request
            would be refused (checked here first, with the agent's own rules).
          TimeoutError: no answer after ``retries`` + 1 attempts.
        """
        fields.setdefault("request_id", uuid.uuid4().hex)
        frame = _checked_frame(msg_type, fields)
        for _ in range(self.retries + 1):
            try:
                self._dealer.send(frame)
            except zmq.Again:
                continue  # not connected within the timeout (IMMEDIATE)
            if self._dealer.poll(self.timeout_ms):
                reply = self._read_reply(fields["request_id"])
                if reply is not None:
                    return reply
        raise TimeoutError(
            f"no answer from the meshd agent at {self.endpoints['router']} after {self.retries + 1} attempt(s): "
            + ("it is running but busy or stuck; its log says why" if self.key is None else
               "is the agent running and the port open? A client the agent does not admit gets no answer "
               "at all: check that this client's NAME.pub is in api.clients_dir on that host and that "
               "NAME.key was made for this cluster (the agent logs the refusal and its likely cause)"))

    def publish(self, msg_type: MsgType, **fields: Any) -> None:
        """Fire-and-forget on the SUB port (seed 001 style); errors come back as events."""
        frame = _checked_frame(msg_type, fields)
        if self._publisher is None:
            self._publisher = self._socket(zmq.PUB, "sub", immediate=False)
        self._publisher.send(frame)

    def next_event(self, timeout_s: float | None = None) -> tuple[int, dict[str, Any]] | None:
        """The next ``(event type, body)`` from the PUB port, or None after ``timeout_s``.

        The first call subscribes; events published before the subscription
        is live are not seen (PUB/SUB has no history).
        """
        if self._events is None:
            self._events = self._socket(zmq.SUB, "pub", immediate=False)
            self._events.setsockopt(zmq.SUBSCRIBE, b"")
        if not self._events.poll(None if timeout_s is None else int(timeout_s * 1000)):
            return None
        return unpack(self._events.recv(), max_bytes=1 << 24)

    def _read_reply(self, request_id: str) -> dict[str, Any] | None:
        msg_type, body = unpack(self._dealer.recv(), max_bytes=1 << 24)
        if not msg_type & RESPONSE_FLAG or body.get("request_id") not in (request_id, ""):
            return None  # a late reply to an earlier attempt
        if not body.get("ok"):
            err = body.get("error", {})
            raise ApiRequestError(int(err.get("code", 0)), str(err.get("message", "unknown error")))
        return body.get("result", {})

    def _socket(self, kind: int, which: str, *, immediate: bool = True) -> zmq.Socket:
        sock = self.ctx.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.IMMEDIATE, int(immediate))
        sock.setsockopt(zmq.SNDTIMEO, self.timeout_ms)
        if self.key is not None:
            sock.setsockopt(zmq.CURVE_SERVERKEY, self.key.api_server_public)
            sock.setsockopt(zmq.CURVE_PUBLICKEY, self.key.pair.public)
            sock.setsockopt(zmq.CURVE_SECRETKEY, self.key.pair.secret)
        if which not in self.endpoints:
            raise ValueError(f"this client has no {which} endpoint (the local control socket only answers requests)")
        sock.connect(self.endpoints[which])
        return sock

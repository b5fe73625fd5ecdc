"""Records of the Docker integration and the pure conversions that build them.

Everything here is pure: :func:`info_from_inspect` turns a ``docker inspect``
document into a :class:`ContainerInfo`, :func:`parse_event` turns one decoded
``/events`` message into a :class:`RuntimeEvent` (or ``None`` for messages meshd
does not act on), and :func:`backoff_delay` computes reconnect delays from a
given ``random.Random``.  The I/O lives in ``_docker.py``.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    """One container as dockerd reports it (from ``docker inspect``).

    ``pid`` is the container's init process on this host (0 when not running);
    its network namespace is ``/proc/<pid>/ns/net``.  ``env`` maps each
    ``KEY=VALUE`` of the container's configured environment.  ``network_mode``
    is Docker's (``none``, ``bridge``, ``host``, ``container:<id>``, a network name).
    """

    id: str
    name: str
    pid: int
    running: bool
    labels: Mapping[str, str] = field(default_factory=lambda: _EMPTY, compare=False)
    env: Mapping[str, str] = field(default_factory=lambda: _EMPTY, compare=False)
    status: str = ""
    network_mode: str = ""

    def __str__(self) -> str:
        return f"{self.name or '?'} ({self.id[:12]})"


class EventKind(enum.StrEnum):
    """What a :class:`RuntimeEvent` reports."""

    #: the event stream is (re)connected: events may have been missed, resync now
    CONNECTED = "connected"
    #: a container's process started (``docker start``/``run``/``restart``)
    STARTED = "started"
    #: a container's process exited (Docker's ``die``; a ``stop`` always follows a ``die``)
    STOPPED = "stopped"
    #: ``docker restart`` finished (informational: ``stopped`` and ``started`` came first)
    RESTARTED = "restarted"
    #: the container is gone (Docker's ``destroy``, from ``docker rm``)
    REMOVED = "removed"


#: Docker container actions that meshd acts on, and what they become.
ACTIONS: Mapping[str, EventKind] = MappingProxyType(
    {
        "start": EventKind.STARTED,
        "die": EventKind.STOPPED,
        "restart": EventKind.RESTARTED,
        "destroy": EventKind.REMOVED,
    }
)


@dataclass(frozen=True, slots=True)
class RuntimeEvent:
    """One container event, or a ``CONNECTED`` marker (then ``container_id`` is "")."""

    kind: EventKind
    container_id: str = ""
    name: str = ""
    time_ns: int = 0
    exit_code: int | None = None
    labels: Mapping[str, str] = field(default_factory=lambda: _EMPTY, compare=False)


@dataclass(frozen=True, slots=True)
class RuntimeSnapshot:
    """What exists at a resync: ids of all containers, and of the running ones."""

    existing: frozenset[str]
    running: frozenset[str]


@dataclass(frozen=True, slots=True)
class RuntimeStatus:
    """Counters of a :class:`~meshd.runtime.DockerRuntime` (its ``status()``)."""

    connected: bool
    connects: int
    disconnects: int
    connect_failures: int
    events: int
    events_ignored: int
    calls: int
    call_errors: int
    last_error: str


def _str_map(raw: object) -> Mapping[str, str]:
    if not isinstance(raw, dict):
        return _EMPTY
    return MappingProxyType({str(k): str(v) for k, v in raw.items()})


def parse_env(entries: object) -> Mapping[str, str]:
    """``["A=1", "B=x=y", "C"]`` → ``{"A": "1", "B": "x=y", "C": ""}``; later entries win."""
    if not isinstance(entries, list):
        return _EMPTY
    env: dict[str, str] = {}
    for entry in entries:
        if isinstance(entry, str) and entry:
            key, _, value = entry.partition("=")
            env[key] = value
    return MappingProxyType(env)


def info_from_inspect(doc: Mapping[str, Any]) -> ContainerInfo:
    """Build a :class:`ContainerInfo` from a ``docker inspect`` document (API >= 1.24)."""
    state = doc.get("State") or {}
    config = doc.get("Config") or {}
    host_config = doc.get("HostConfig") or {}
    running = bool(state.get("Running"))
    return ContainerInfo(
        id=str(doc.get("Id", "")),
        name=str(doc.get("Name", "")).lstrip("/"),
        pid=int(state.get("Pid") or 0) if running else 0,
        running=running,
        labels=_str_map(config.get("Labels")),
        env=parse_env(config.get("Env")),
        status=str(state.get("Status", "")),
        network_mode=str(host_config.get("NetworkMode", "")),
    )


def parse_event(msg: object) -> RuntimeEvent | None:
    """Turn one decoded ``/events`` message into a :class:`RuntimeEvent`.

    Returns ``None`` for anything that is not a container start/die/restart/
    destroy (other types, ``exec_*``, ``kill``, ``stop``, malformed messages).
    """
    if not isinstance(msg, dict) or msg.get("Type") != "container":
        return None
    kind = ACTIONS.get(str(msg.get("Action", "")))
    actor = msg.get("Actor")
    if kind is None or not isinstance(actor, dict):
        return None
    cid = actor.get("ID")
    if not isinstance(cid, str) or not cid:
        return None
    raw_attrs = actor.get("Attributes")
    attrs = dict(raw_attrs) if isinstance(raw_attrs, dict) else {}
    exit_code = attrs.pop("exitCode", None) if kind is EventKind.STOPPED else None
    name = str(attrs.pop("name", ""))
    for key in ("image", "signal"):
        attrs.pop(key, None)
    time_ns = msg.get("timeNano")
    return RuntimeEvent(
        kind=kind,
        container_id=cid,
        name=name,
        time_ns=time_ns if isinstance(time_ns, int) else 0,
        exit_code=int(exit_code) if isinstance(exit_code, str) and exit_code.lstrip("-").isdigit() else None,
        labels=_str_map(attrs),
    )


def backoff_delay(attempt: int, rng: random.Random, *, min_s: float, max_s: float) -> float:
    """Delay before reconnect attempt ``attempt`` (0-based): exponential, capped, with jitter.

    ``min_s * 2**attempt`` capped at ``max_s``, then scaled by a factor drawn
    uniformly from [0.5, 1.0] so many hosts restarting together do not retry
    in lock step.
    """
    base = min(max_s, min_s * (2.0 ** min(attempt, 32)))
    return base * rng.uniform(0.5, 1.0)

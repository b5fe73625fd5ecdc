"""DockerRuntime: the trio face of dockerd (container lookups and the event stream).

Theory of operation
-------------------
The docker SDK is synchronous, so every call runs in a worker thread through
``trio.to_thread.run_sync`` with a :class:`trio.CapacityLimiter`; the trio side
only translates errors and counts.  The SDK client is made lazily in a worker
thread (it asks dockerd for its API version when created) and dropped after a
connection error, so meshd starts while dockerd is down and recovers when it
comes back.

The event stream (:meth:`DockerRuntime.events`) owns one thread per
connection, reading ``/events`` (filtered to container start/die/restart/
destroy) and handing each parsed event to trio at once.  Every (re)connection
first yields a ``CONNECTED`` marker: events may have been missed, so the
consumer resyncs (lists containers) *after* the stream is open, which leaves
no gap.  When dockerd goes away the stream ends and is reopened with capped
exponential backoff.  Closing the stream shuts the HTTP socket, which
unblocks the reading thread; the context manager returns only after that
thread has ended.

Short calls (inspect, list) use ``abandon_on_cancel=True``: they have the
client's timeout and end on their own, so cancelling one never waits for dockerd.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import trio

from ._errors import ContainerNotFound, ContainerNotRunning, DockerApiError, DockerError, DockerUnavailable
from ._types import (
    ACTIONS,
    ContainerInfo,
    EventKind,
    RuntimeEvent,
    RuntimeSnapshot,
    RuntimeStatus,
    backoff_delay,
    info_from_inspect,
    parse_event,
)

log = logging.getLogger("meshd.runtime")
T = TypeVar("T")

#: events the stream asks dockerd for (the rest are filtered server-side)
EVENT_FILTERS = {"type": ["container"], "event": sorted(ACTIONS)}
#: events buffered between the reading thread and trio before the thread waits
EVENT_BUFFER = 1024


@dataclass(slots=True)
class _Counters:
    connected: bool = False
    connects: int = 0
    disconnects: int = 0
    connect_failures: int = 0
    events: int = 0
    events_ignored: int = 0
    calls: int = 0
    call_errors: int = 0
    last_error: str = ""


class EventStream:
    """Async iterator of :class:`RuntimeEvent` from :meth:`DockerRuntime.events`."""

    def __init__(self, receive: trio.MemoryReceiveChannel[RuntimeEvent]) -> None:
        self._receive = receive

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> RuntimeEvent:
        try:
            return await self._receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise StopAsyncIteration from None


class DockerRuntime:
    """Container lookups and events from the local dockerd.

    Args:
        base_url: dockerd's address (default: ``DOCKER_HOST`` or the local unix socket).
        timeout_s: timeout of each short API call.
        max_threads: worker threads for short calls (the event stream has its own).
        rng: randomness for reconnect jitter (a seeded ``random.Random`` in tests).
        backoff_min_s, backoff_max_s: reconnect delay bounds of the event stream.
    """

    def __init__(
        self,
        *,
        base_url: str | None = None,
        timeout_s: float = 30.0,
        max_threads: int = 4,
        rng: random.Random | None = None,
        backoff_min_s: float = 0.1,
        backoff_max_s: float = 5.0,
    ) -> None:
        self.base_url = base_url
        self._timeout_s = timeout_s
        self._limiter = trio.CapacityLimiter(max_threads)
        self._rng = rng or random.Random()
        self._backoff = (backoff_min_s, backoff_max_s)
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._c = _Counters()

    # --- short calls ------------------------------------------------------------------

    async def resolve(self, ref: str) -> ContainerInfo:
        """The running container with this id, id prefix or name.

        Raises:
            ContainerNotFound: no such container on this host.
            ContainerNotRunning: it exists but is not running: "start it first".
            DockerUnavailable: dockerd is not reachable.
        """
        info = await self.inspect(ref)
        if not info.running:
            raise ContainerNotRunning(info.name or ref, info.status or "not running")
        return info

    async def inspect(self, ref: str) -> ContainerInfo:
        """Like :meth:`resolve`, but also returns stopped containers."""
        if not ref or "/" in ref.lstrip("/"):
            raise ContainerNotFound(ref)
        doc = await self._call(lambda api: api.inspect_container(ref.lstrip("/")), ref)
        return info_from_inspect(doc)

    async def list_running(self) -> list[ContainerInfo]:
        """Every running container (inspected: with PID, labels and environment)."""
        return (await self._call(self._list_running_sync))[1]

    async def snapshot(self) -> tuple[RuntimeSnapshot, list[ContainerInfo]]:
        """Ids of all containers and of the running ones, plus the running ones inspected."""
        return await self._call(self._list_running_sync)

    def _list_running_sync(self, api: Any) -> tuple[RuntimeSnapshot, list[ContainerInfo]]:
        import docker

        existing, running = set(), []
        for summary in api.containers(all=True):
            existing.add(summary["Id"])
            if summary.get("State") != "running":
                continue
            try:
                info = info_from_inspect(api.inspect_container(summary["Id"]))
            except docker.errors.NotFound:
                existing.discard(summary["Id"])  # removed while we listed
                continue
            if info.running:
                running.append(info)
        snap = RuntimeSnapshot(frozenset(existing), frozenset(i.id for i in running))
        return snap, running

    async def ping(self) -> bool:
        """True when dockerd answers."""
        try:
            return bool(await self._call(lambda api: api.ping()))
        except DockerError:
            return False

    async def _call(self, fn: Callable[[Any], T], ref: str = "") -> T:
        self._c.calls += 1
        try:
            return await trio.to_thread.run_sync(self._call_sync, fn, ref, limiter=self._limiter,
                                                 abandon_on_cancel=True)  # fmt: skip
        except DockerError as exc:
            if not isinstance(exc, (ContainerNotFound, ContainerNotRunning)):
                self._c.call_errors += 1
                self._c.last_error = str(exc)
            raise

    def _call_sync(self, fn: Callable[[Any], T], ref: str) -> T:
        import docker
        import requests

        api = self._api()
        try:
            return fn(api)
        except docker.errors.NotFound:
            raise ContainerNotFound(ref) from None
        except docker.errors.APIError as exc:  # before RequestException: APIError is an HTTPError
            raise DockerApiError(f"dockerd refused the request for {ref or 'containers'}: {exc.explanation}") from None
        except requests.exceptions.RequestException as exc:  # refused, reset, or no answer in time
            self._drop_client(api)
            raise self._unavailable(exc) from None
        except docker.errors.DockerException as exc:
            raise DockerApiError(f"docker SDK error for {ref or 'containers'}: {exc}") from None

    def _api(self) -> Any:
        with self._client_lock:
            if self._client is None:
                self._client = self._new_client(self._timeout_s)
            return self._client

    def _drop_client(self, api: Any) -> None:
        with self._client_lock:
            if self._client is api:
                self._client = None
        api.close()

    def _new_client(self, timeout_s: float | None) -> Any:
        import docker

        try:
            if self.base_url is None:
                # docker passes the timeout on to requests, which takes a float or None (no limit):
                # types-docker says int
                return docker.from_env(timeout=timeout_s).api  # type: ignore[arg-type]
            return docker.APIClient(base_url=self.base_url, timeout=timeout_s)  # type: ignore[arg-type]
        except docker.errors.DockerException as exc:
            raise self._unavailable(exc) from None

    def _unavailable(self, exc: BaseException) -> DockerUnavailable:
        where = self.base_url or "DOCKER_HOST or unix:///var/run/docker.sock"
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return DockerUnavailable(f"dockerd is not reachable at {where} ({first_line}): "
                                 "start it (systemctl start docker) or fix the address")  # fmt: skip

    # --- event stream -----------------------------------------------------------------

    @asynccontextmanager
    async def events(self) -> AsyncIterator[EventStream]:
        """Open the container event stream; reconnects until the block exits.

        Usage::

            async with runtime.events() as stream:
                async for event in stream:
                    ...

        The first event of every connection is ``EventKind.CONNECTED``.  Leaving
        the block closes the HTTP stream and waits for its reading thread.
        """
        send, receive = trio.open_memory_channel[RuntimeEvent](EVENT_BUFFER)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._event_loop, send)
            try:
                yield EventStream(receive)
            finally:
                nursery.cancel_scope.cancel()
                receive.close()

    async def _event_loop(self, send: trio.MemorySendChannel[RuntimeEvent]) -> None:
        attempt = 0
        async with send:
            while True:
                try:
                    api, stream = await self._open_stream()
                except DockerUnavailable as exc:
                    self._c.connect_failures += 1
                    self._c.last_error = str(exc)
                    if attempt == 0:
                        log.warning("event=docker-unreachable error=%r", str(exc))
                    await trio.sleep(backoff_delay(attempt, self._rng, min_s=self._backoff[0], max_s=self._backoff[1]))
                    attempt += 1
                    continue
                opened = trio.current_time()
                await self._run_connection(api, stream, send)
                if trio.current_time() - opened > self._backoff[1]:
                    attempt = 0
                await trio.sleep(backoff_delay(attempt, self._rng, min_s=self._backoff[0], max_s=self._backoff[1]))
                attempt += 1

    async def _open_stream(self) -> tuple[Any, Any]:
        """Connect in a thread; if cancelled meanwhile, the thread closes what it opened."""
        handoff = _Handoff()
        try:
            return await trio.to_thread.run_sync(self._open_stream_sync, handoff, abandon_on_cancel=True)
        except BaseException:
            handoff.abandon()
            raise

    def _open_stream_sync(self, handoff: _Handoff) -> tuple[Any, Any]:
        import docker
        import requests

        api = self._new_client(None)  # None: the stream read blocks until an event or a close
        try:
            stream = api.events(filters=EVENT_FILTERS, decode=True)
        except (requests.exceptions.RequestException, docker.errors.DockerException) as exc:
            api.close()
            raise self._unavailable(exc) from None
        handoff.deliver(api, stream)
        return api, stream

    async def _run_connection(self, api: Any, stream: Any, send: trio.MemorySendChannel[RuntimeEvent]) -> None:
        self._c.connects += 1
        self._c.connected = True
        log.info("event=docker-connected connects=%d", self._c.connects)
        token = trio.lowlevel.current_trio_token()
        try:
            await send.send(RuntimeEvent(EventKind.CONNECTED))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_close_on_cancel, api, stream)
                try:
                    # not abandonable: the block ends only when the reading thread has ended
                    await trio.to_thread.run_sync(self._pump, stream, send, token)
                finally:
                    nursery.cancel_scope.cancel()
        finally:
            self._c.connected = False
            self._c.disconnects += 1
            _close_quietly(api, stream)
        log.info("event=docker-disconnected disconnects=%d", self._c.disconnects)

    def _pump(self, stream: Iterator[Any], send: trio.MemorySendChannel[RuntimeEvent], token: Any) -> None:
        """Worker thread: read the stream until it ends, hand events to trio at once."""
        try:
            for msg in stream:
                event = parse_event(msg)
                if event is None:
                    self._c.events_ignored += 1
                    continue
                self._c.events += 1
                trio.from_thread.run(send.send, event, trio_token=token)
        except (trio.Cancelled, trio.RunFinishedError, trio.BrokenResourceError, trio.ClosedResourceError):
            return
        except Exception as exc:  # a torn or undecodable stream: reconnect
            self._c.last_error = f"event stream broke: {exc!r}"

    def status(self) -> RuntimeStatus:
        c = self._c
        return RuntimeStatus(
            connected=c.connected, connects=c.connects, disconnects=c.disconnects,
            connect_failures=c.connect_failures, events=c.events, events_ignored=c.events_ignored,
            calls=c.calls, call_errors=c.call_errors, last_error=c.last_error,
        )  # fmt: skip

    def close(self) -> None:
        """Release the short-call client (the event stream closes with its block)."""
        with self._client_lock:
            api, self._client = self._client, None
        if api is not None:
            api.close()


class _Handoff:
    """Hands a freshly opened stream from its thread to trio, or closes it if trio gave up."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._opened: tuple[Any, Any] | None = None
        self._abandoned = False

    def deliver(self, api: Any, stream: Any) -> None:
        with self._lock:
            self._opened = (api, stream)
            abandoned = self._abandoned
        if abandoned:
            _close_quietly(api, stream)

    def abandon(self) -> None:
        """Trio gave up on the open call (cancelled): close the stream if it already opened."""
        with self._lock:
            self._abandoned = True
            opened, self._opened = self._opened, None
        if opened is not None:
            _close_quietly(*opened)


async def _close_on_cancel(api: Any, stream: Any) -> None:
    try:
        await trio.sleep_forever()
    finally:
        _close_quietly(api, stream)


def _close_quietly(api: Any, stream: Any) -> None:
    """Shut the stream's socket (unblocks the reading thread) and the client."""
    try:
        stream.close()
    except Exception:
        pass  # already closed, or torn down by the peer: nothing left to release
    api.close()

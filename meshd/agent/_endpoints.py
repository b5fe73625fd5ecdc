"""Which local endpoints are up, derived from the reconciler's pass reports.

:class:`EndpointTracker` listens to every :class:`~meshd.reconcile.PassReport`:

* an endpoint of the pass's desired state that the pass built (no failure
  concerns it) and that was not up is announced up (EVENT_ENDPOINT_UP);
* one that is no longer in the desired state (disconnected, its container
  stopped or moved) is announced down (EVENT_ENDPOINT_DOWN);
* one that a failure concerns keeps that failure as its *problem*, until a
  pass builds it: QUERY_STATUS shows it and ``meshd why`` explains with it.

:meth:`EndpointTracker.wait_up` is how a connect request received by the
owning host is answered only once the interface exists.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import trio

from meshd.api import MsgType
from meshd.reconcile import EndpointKey, LocalEndpoint, PassReport

from ._events import Event, Events


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a local endpoint is not (fully) built: the failed operation and its error."""

    operation: str
    error: str
    since: float  #: wall-clock time of the first pass that failed this way


class EndpointTracker:
    """See the module docstring. ``trigger`` asks the reconciler for a pass."""

    def __init__(self, host: str, events: Events, trigger: Callable[[], None],
                 observe_attach: Callable[[float], None] | None = None) -> None:
        self._host = host
        self._events = events
        self._trigger = trigger
        self._observe_attach = observe_attach
        self._up: dict[EndpointKey, LocalEndpoint] = {}
        self.problems: dict[EndpointKey, Problem] = {}
        self._passes = 0
        self._passed = trio.Event()

    def is_up(self, key: EndpointKey) -> bool:
        return key in self._up

    def built(self) -> list[LocalEndpoint]:
        """The local endpoints that are up, as the last pass built them."""
        return list(self._up.values())

    def on_pass(self, report: PassReport) -> None:
        local = {(e.key, e.vni): e for e in report.desired.local}
        for key, failure in report.endpoint_failures.items():
            old = self.problems.get(key)
            text = str(failure.error)
            since = old.since if old is not None and old.error == text else time.time()
            self.problems[key] = Problem(type(failure.op).__name__, text, since)
        for key in sorted(report.built):
            self.problems.pop(key, None)
            if key not in self._up:
                ep = self._up[key] = local[key]
                self._events.emit(Event("endpoint", f"{ep.key[:12]} up in vni {ep.vni} as {ep.ip}",
                                        MsgType.EVENT_ENDPOINT_UP, {"endpoint_id": ep.key, "vni": ep.vni,
                                                                    "ip": ep.ip, "mac": ep.mac, "host": self._host}))
            else:
                self._up[key] = local[key]  # the same endpoint, maybe with new QoS
        for key in sorted(self._up.keys() - local.keys()):
            ep = self._up.pop(key)
            self._events.emit(Event("endpoint", f"{ep.key[:12]} down in vni {ep.vni}", MsgType.EVENT_ENDPOINT_DOWN,
                                    {"endpoint_id": ep.key, "vni": ep.vni, "host": self._host}))
        for key in self.problems.keys() - local.keys():
            del self.problems[key]
        self._passes += 1
        self._passed.set()
        self._passed = trio.Event()

    async def wait_up(self, key: EndpointKey, timeout_s: float) -> Problem | None:
        """Wait (at most ``timeout_s``) until a pass built the endpoint: None, or its problem.

        Raises:
          trio.TooSlowError: no pass built it or failed on it in time.
        """
        start, passes = trio.current_time(), self._passes
        self._trigger()  # a pass after the commit (applying it already asked for one)
        with trio.fail_after(timeout_s):
            while True:
                if key in self._up:
                    if self._observe_attach is not None:
                        self._observe_attach(trio.current_time() - start)
                    return None
                if key in self.problems and self._passes > passes:  # not a problem older than this wait
                    return self.problems[key]
                await self._passed.wait()

"""meshd.runtime: the Docker integration (container specs, lookups, events, the watcher).

* :func:`parse_spec` (pure): a container's ``meshd.*`` labels or seed-002
  environment → :class:`ContainerSpec` with one :class:`ConnectRequest` per network.
* :class:`DockerRuntime`: ``resolve``/``inspect``/``list_running``/``snapshot``
  and the ``events()`` stream, with the synchronous docker SDK in worker threads.
* :class:`RuntimeWatcher`: events → calls on the agent's :class:`RuntimeListener`.

See docs/runtime.md for the labels, the variables and the agent contract.
"""

from ._docker import DockerRuntime, EventStream
from ._errors import (
    ContainerNotFound,
    ContainerNotRunning,
    DockerApiError,
    DockerError,
    DockerUnavailable,
    SpecError,
)
from ._spec import (
    LABEL_NETWORK,
    ConnectRequest,
    ContainerSpec,
    ServiceRequest,
    Source,
    parse_spec,
)
from ._types import (
    ContainerInfo,
    EventKind,
    RuntimeEvent,
    RuntimeSnapshot,
    RuntimeStatus,
    backoff_delay,
    info_from_inspect,
    parse_event,
)
from ._watcher import RuntimeListener, RuntimeWatcher, WatcherStatus

__all__ = [
    "LABEL_NETWORK", "ConnectRequest", "ContainerInfo", "ContainerNotFound", "ContainerNotRunning",
    "ContainerSpec", "DockerApiError", "DockerError", "DockerRuntime", "DockerUnavailable", "EventKind",
    "ServiceRequest",
    "EventStream", "RuntimeEvent", "RuntimeListener", "RuntimeSnapshot", "RuntimeStatus", "RuntimeWatcher",
    "Source", "SpecError", "WatcherStatus", "backoff_delay", "info_from_inspect",
    "parse_event", "parse_spec",
]  # fmt: skip

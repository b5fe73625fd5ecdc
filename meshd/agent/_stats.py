"""Counters of local endpoints: read from netlink every ``api.stats_interval_s``.

The host side of each built endpoint's veth is read (its tx is the
container's rx); an endpoint without one (a flat network's macvlan) is read
inside its container's netns; bytes and rates are kept for ``meshd top``, QUERY_STATUS and
the metrics, and published as EVENT_ENDPOINT_STATS (not kept in the event
history). The endpoints come from the :class:`~meshd.agent._endpoints.EndpointTracker`
(what the last passes built), not from a new desired state.
"""

from __future__ import annotations

from typing import Any

import trio

import netops
from meshd.api import MsgType
from meshd.reconcile import EndpointKey

from ._endpoints import EndpointTracker
from ._events import Event, Events


class EndpointStats:
    def __init__(self, host: str, tracker: EndpointTracker, events: Events, interval_s: float) -> None:
        self._host = host
        self._tracker = tracker
        self._events = events
        self._interval_s = interval_s
        #: per (endpoint id, VNI): rx/tx byte totals and rates (bytes per second) of the last reading
        self.stats: dict[EndpointKey, dict[str, Any]] = {}

    async def run(self) -> None:
        prev: dict[str, tuple[float, netops.Counters]] = {}
        while True:
            await trio.sleep(self._interval_s)
            local = {e.host_if: e for e in self._tracker.built()}
            if not local and not prev and not self.stats:
                continue  # nothing built here: no netlink dump, no worker thread
            found = await trio.to_thread.run_sync(netops.counters, list(local))
            inside = [(name, e.netns, e.ifname) for name, e in local.items() if name not in found]
            if inside:  # no host-side veth: flat endpoints
                found.update(await trio.to_thread.run_sync(netops.counters_inside, inside))
            now = trio.current_time()
            stats: dict[EndpointKey, dict[str, Any]] = {}
            for name, c in found.items():
                ep = local[name]
                then, old = prev.get(name, (now, c))
                dt = max(now - then, 1e-6)
                entry = {"endpoint_id": ep.key, "vni": ep.vni, "ip": ep.ip, "host": self._host,
                         "rx_bytes": c.tx_bytes, "tx_bytes": c.rx_bytes,
                         "rx_bps": (c.tx_bytes - old.tx_bytes) / dt if then != now else 0.0,
                         "tx_bps": (c.rx_bytes - old.rx_bytes) / dt if then != now else 0.0}
                stats[ep.key, ep.vni] = entry
                prev[name] = (now, c)
                self._events.emit(Event("stats", "", MsgType.EVENT_ENDPOINT_STATS, entry, history=False))
            for name in prev.keys() - found.keys():
                del prev[name]
            self.stats = stats

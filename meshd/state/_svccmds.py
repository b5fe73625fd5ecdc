"""Handlers for service commands (a mixin of NetworkState).

A service is a DNS-style name inside one network (so inside its tenant) with
one or more entries, each an endpoint of that network plus a port, weight,
TTL and health check.  The address of an entry is always its endpoint's, so an
entry cannot outlive its endpoint: ``_drop_services`` runs whenever an
endpoint is dropped (disconnect, host removed, network deleted), in the same
apply.
"""

from __future__ import annotations

import re

from . import _validate as v
from ._commands import (
    ErrorCode,
    PublishService,
    Reject,
    ServiceHealthSet,
    ServicePublished,
    ServiceUnpublished,
    SetServiceHealth,
    UnpublishService,
)
from ._tables import HOST, IP, Net, Svc, Tables
from ._types import ChangeKind, format_ipv4

#: a DNS label: letters, digits and '-', not at the ends (RFC 1123), at most 63
_LABEL_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z")
#: health check kinds
CHECKS = ("running", "tcp")
TTL_MAX_S = 86_400
INTERVAL_MAX_S = 3_600


def check_service_name(value: object) -> str:
    """A service name is one DNS label (it becomes ``NAME.<network>.<domain>``)."""
    if not isinstance(value, str) or not _LABEL_RE.match(value):
        raise Reject(
            ErrorCode.INVALID_FIELD,
            f"service name {value!r} is not a DNS label: use 1-63 letters, digits or '-', "
            "beginning and ending with a letter or digit",
        )
    return value.lower()


class ServiceCommands(Tables):
    def _on_publish_service(self, c: PublishService, index: int) -> ServicePublished:
        name = check_service_name(c.name)
        net = self._net(c.network)
        ep = net.eps.get(c.endpoint_id)
        if ep is None:
            raise Reject(
                ErrorCode.UNKNOWN_ENDPOINT,
                f"container {c.endpoint_id!r} is not connected to network {c.network!r}: "
                "connect it first, then publish its service",
            )
        port = v.check_range(f"port of service {name!r}", c.port, 1, 65_535)
        weight = v.check_range(f"weight of service {name!r}", c.weight, 0, 65_535)
        ttl = v.check_range(f"ttl_s of service {name!r}", c.ttl_s, 1, TTL_MAX_S)
        interval = v.check_range(f"interval_s of service {name!r}", c.interval_s, 1, INTERVAL_MAX_S)
        if c.check not in CHECKS:
            raise Reject(
                ErrorCode.INVALID_FIELD,
                f"health check {c.check!r} of service {name!r} is unknown: use one of {', '.join(CHECKS)}",
            )
        entries = self._services.setdefault(c.network, {}).setdefault(name, {})
        old = entries.get(c.endpoint_id)
        healthy = True if old is None else old[5]
        entries[c.endpoint_id] = (port, weight, ttl, c.check, interval, healthy)
        self._note(index, ChangeKind.SERVICE_REGISTERED, c.network, c.endpoint_id, ep[HOST], service=name)
        return ServicePublished(
            name=name, network=c.network, endpoint_id=c.endpoint_id, ip=format_ipv4(net.base + ep[IP]), port=port
        )

    def _on_unpublish_service(self, c: UnpublishService, index: int) -> ServiceUnpublished:
        name = c.name.lower() if isinstance(c.name, str) else c.name
        entries = self._entries(c.network, name)
        if c.endpoint_id is None:
            doomed = list(entries)
        elif c.endpoint_id in entries:
            doomed = [c.endpoint_id]
        else:
            raise Reject(
                ErrorCode.UNKNOWN_SERVICE,
                f"container {c.endpoint_id!r} is not an endpoint of service {name!r} in network {c.network!r} "
                f"(it has {', '.join(sorted(entries)[:5])})",
            )
        net = self._nets[c.network]
        for cid in doomed:
            del entries[cid]
            self._note(index, ChangeKind.SERVICE_REMOVED, c.network, cid, net.eps[cid][HOST], service=name)
        self._prune(c.network, name)
        return ServiceUnpublished(name=name, network=c.network, removed=len(doomed))

    def _on_set_service_health(self, c: SetServiceHealth, index: int) -> ServiceHealthSet:
        name = c.name.lower() if isinstance(c.name, str) else c.name
        entries = self._entries(c.network, name)
        old = entries.get(c.endpoint_id)
        if old is None:
            raise Reject(
                ErrorCode.UNKNOWN_SERVICE,
                f"container {c.endpoint_id!r} is not an endpoint of service {name!r} in network {c.network!r}",
            )
        healthy = bool(c.healthy)
        changed = old[5] != healthy
        if changed:
            entries[c.endpoint_id] = (*old[:5], healthy)
            host = self._nets[c.network].eps[c.endpoint_id][HOST]
            self._note(index, ChangeKind.SERVICE_HEALTH, c.network, c.endpoint_id, host, service=name)
        return ServiceHealthSet(
            name=name, network=c.network, endpoint_id=c.endpoint_id, healthy=healthy, changed=changed
        )

    def _entries(self, network: str, name: str) -> dict[str, Svc]:
        entries = self._services.get(network, {}).get(name)
        if not entries:
            raise Reject(
                ErrorCode.UNKNOWN_SERVICE,
                f"service {name!r} is not published in network {network!r}: see `meshd service ls`",
            )
        return entries

    def _prune(self, network: str, name: str) -> None:
        by_name = self._services[network]
        if not by_name[name]:
            del by_name[name]
            if not by_name:
                del self._services[network]

    def _drop_services(self, net: Net, cid: str) -> None:
        """Remove every service entry of endpoint ``cid`` in ``net`` (it is being dropped)."""
        by_name = self._services.get(net.net.name)
        if not by_name:
            return
        host = net.eps[cid][HOST] if cid in net.eps else None
        for name in [n for n, entries in by_name.items() if cid in entries]:
            del by_name[name][cid]
            self._prune(net.net.name, name)
            # execute() sets last_index to the applying entry's index before any handler runs
            self._note(self.last_index, ChangeKind.SERVICE_REMOVED, net.net.name, cid, host, service=name)

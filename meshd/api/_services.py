"""SERVICE_PUBLISH / SERVICE_UNPUBLISH / SERVICE_QUERY (issue 17): requests to state commands and views.

Kept apart from :mod:`~meshd.api._service` so the scheduler service only
registers these three handlers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from meshd import state as st

from . import _requests as rq
from ._frame import ApiError, FrameError

if TYPE_CHECKING:
    from ._service import SchedulerService


def _network_of(svc: SchedulerService, endpoint_id: str, r: rq.ServicePublish) -> str:
    if r.network is not None:
        return r.network
    nets = svc.backend.state().networks_of(endpoint_id)
    if len(nets) != 1:
        where = f"is in {len(nets)} networks ({', '.join(nets)})" if nets else "is in no network"
        raise FrameError(ApiError.INVALID_VALUE, f"container {r.container_id!r} {where}: give network",
                         r.MSG_TYPE, r.request_id)
    return nets[0]


async def publish(svc: SchedulerService, r: rq.ServicePublish) -> Any:
    endpoint_id = svc._endpoint_id(r.container_id, r)
    return await svc.backend.execute(st.PublishService(
        name=r.name, network=_network_of(svc, endpoint_id, r), endpoint_id=endpoint_id, port=r.port, weight=r.weight,
        ttl_s=r.ttl_s, check=r.check, interval_s=r.interval_s))


async def unpublish(svc: SchedulerService, r: rq.ServiceUnpublish) -> Any:
    network = r.network
    if network is None:
        nets = sorted({e.network for e in svc.backend.state().services(name=r.name)})
        if len(nets) > 1:
            raise FrameError(ApiError.INVALID_VALUE, f"service {r.name!r} is published in {len(nets)} networks "
                             f"({', '.join(nets)}): give network", r.MSG_TYPE, r.request_id)
        network = nets[0] if nets else ""
    endpoint_id = None if r.container_id is None else svc._endpoint_id(r.container_id, r)
    return await svc.backend.execute(st.UnpublishService(name=r.name, network=network, endpoint_id=endpoint_id))


def query(svc: SchedulerService, r: rq.ServiceQuery) -> dict[str, Any]:
    """Every entry with ``live``: whether its host counts as live here (a failed host's entries are
    left out of DNS at once, and removed by the leader after their TTL)."""
    live_hosts = getattr(svc.backend, "live_hosts", None)
    live = live_hosts() if live_hosts is not None else None
    from ._service import plain

    return {"services": [
        {**plain(e), "live": None if live is None else e.host in live}
        for e in svc.backend.state().services(tenant=r.tenant, network=r.network, name=r.name)]}

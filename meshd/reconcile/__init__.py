"""meshd.reconcile: the desired-state description, the pure planner, passes, and the one reconcile loop.

    desired = HostDesired(underlay_ip=..., underlay_dev=..., underlay_mtu=..., networks=(...), local=(...),
                          remote=(...), vteps={vni: frozenset({...})}, policies=(...))
    ops = plan(desired, netops.dump_owned(), netops.dump_table("bridge", "meshd"))   # pure
    report = reconcile_once(desired)        # dump + plan + apply, synchronous (worker thread): a PassReport
    rec = Reconciler(lambda: desired, interval_s=30, ready=wait_until_inputs_complete)
    rec.listen(on_report); nursery.start_soon(rec.run); rec.trigger()    # the loop the agent runs
"""

from meshd.reconcile._desired import (
    HostDesired,
    LocalEndpoint,
    Network,
    NetworkMode,
    Policy,
    PolicyKind,
    RemoteEndpoint,
    active_vnis,
    host_if_name,
    router_name,
)
from meshd.reconcile._loop import Reconciler, ReconcilerStatus, ReportListener
from meshd.reconcile._pass import apply_additions, reconcile_once
from meshd.reconcile._plan import endpoint_stamp, leg_stamp, plan, plan_additions
from meshd.reconcile._report import EndpointKey, PassKind, PassReport
from meshd.reconcile._rules import FAMILY as NFT_FAMILY
from meshd.reconcile._rules import TABLE as NFT_TABLE
from netops import Qos

__all__ = [
    "EndpointKey", "HostDesired", "LocalEndpoint", "NFT_FAMILY", "NFT_TABLE", "Network", "NetworkMode", "PassKind",
    "PassReport",
    "Policy", "PolicyKind",
    "Qos", "Reconciler", "ReconcilerStatus", "RemoteEndpoint", "ReportListener", "active_vnis", "apply_additions",
    "endpoint_stamp", "host_if_name", "leg_stamp", "plan", "plan_additions", "reconcile_once", "router_name",
]

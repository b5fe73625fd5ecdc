"""meshd.reconcile: the desired-state description, the pure planner, and the apply driver.

    desired = HostDesired(underlay_ip=..., underlay_dev=..., underlay_mtu=..., networks=(...), local=(...),
                          remote=(...), vteps={vni: frozenset({...})}, policies=(...))
    ops = plan(desired, netops.dump_owned(), netops.dump_table("bridge", "meshd"))   # pure
    report = reconcile_once(desired)        # dump + plan + apply, synchronous (worker thread)
    rec = Reconciler(lambda: desired); nursery.start_soon(rec.run); rec.trigger()   # trio driver
"""

from meshd.reconcile._desired import (
    HostDesired,
    LocalEndpoint,
    Network,
    Policy,
    PolicyKind,
    RemoteEndpoint,
    active_vnis,
    host_if_name,
    router_name,
)
from meshd.reconcile._driver import PassReport, Reconciler, ReconcilerStatus, reconcile_once
from meshd.reconcile._plan import endpoint_stamp, leg_stamp, plan, plan_additions
from netops import Qos

__all__ = [
    "HostDesired", "LocalEndpoint", "Network", "PassReport", "Policy", "PolicyKind", "Qos", "Reconciler",
    "ReconcilerStatus", "RemoteEndpoint", "active_vnis", "endpoint_stamp", "host_if_name", "leg_stamp", "plan", "plan_additions",
    "reconcile_once", "router_name",
]

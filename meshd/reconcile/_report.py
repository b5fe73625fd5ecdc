"""What one reconcile pass did, typed: the operations, each failure, and the endpoints built.

The reconciler hands a :class:`PassReport` to its listeners after every pass,
including a pass it skipped because nothing changed. Everything the agent says
about an endpoint (announced up, why it is not up) is derived from the report,
never from the text of an error:

* a failure *concerns* the local endpoints of the objects its operation
  touches: the endpoint's own veth or macvlan (attach, QoS, delete), or the network's
  bridge and VXLAN device, or its VLAN sub-interface (every local endpoint of that VNI);
* an endpoint is *built* by a pass when it is in the pass's desired state and
  no failure of that pass concerns it.

A container in two networks with one failing leg is therefore built in one
and failed in the other.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import netops
from meshd.reconcile._desired import HostDesired
from netops import (
    AttachEndpoint,
    AttachMacvlan,
    DeleteLink,
    DetachMacvlan,
    EnsureBridge,
    EnsureVlan,
    EnsureVxlan,
    Op,
    OpFailure,
    Route,
    SetEndpointQos,
    SetMacvlanQos,
)

#: (endpoint key, VNI): one container's interface in one network
EndpointKey = tuple[str, int]


class PassKind(enum.StrEnum):
    FULL = "full"            #: dump the kernel, plan, apply
    ADDITIONS = "additions"  #: only new local endpoints, planned without a dump
    SKIPPED = "skipped"      #: the desired state equals the last clean pass's: nothing to do


@dataclass(frozen=True, slots=True)
class PassReport:
    """One pass of the reconciler.

    Attributes:
        kind: how the pass ran (:class:`PassKind`).
        desired: what the pass built towards (not the state now: an endpoint
            committed while the pass ran is not part of it).
        applied: the operations applied, in order.
        failures: each operation that failed, with its :class:`netops.NetopsError`.
        mtu_checks: path-MTU self-checks run inside the pass (the agent runs them
            in the background instead, see :class:`~meshd.reconcile.Reconciler`).
        duration_s: wall time of the pass.
        endpoint_failures: per local endpoint, the first failure that concerns it.
    """

    kind: PassKind
    desired: HostDesired
    applied: tuple[Op, ...] = ()
    failures: tuple[OpFailure, ...] = ()
    mtu_checks: tuple[netops.MtuCheck, ...] = ()
    duration_s: float = 0.0
    endpoint_failures: Mapping[EndpointKey, OpFailure] = field(default_factory=dict)

    @classmethod
    def of(cls, kind: PassKind, desired: HostDesired, applied: tuple[Op, ...] = (),
           failures: tuple[OpFailure, ...] = (), mtu_checks: tuple[netops.MtuCheck, ...] = (),
           duration_s: float = 0.0) -> PassReport:
        """A report with :attr:`endpoint_failures` derived from ``failures``."""
        return cls(kind, desired, applied, failures, mtu_checks, duration_s,
                   MappingProxyType(_endpoint_failures(desired, failures)))

    @property
    def clean(self) -> bool:
        """No operation failed: the kernel now matches :attr:`desired`."""
        return not self.failures

    @property
    def built(self) -> frozenset[EndpointKey]:
        """The local endpoints of :attr:`desired` that no failure concerns."""
        return frozenset((ep.key, ep.vni) for ep in self.desired.local) - self.endpoint_failures.keys()


def _endpoint_failures(desired: HostDesired, failures: tuple[OpFailure, ...]) -> dict[EndpointKey, OpFailure]:
    if not failures:
        return {}
    by_if = {ep.host_if: (ep.key, ep.vni) for ep in desired.local}
    by_vni: dict[int, list[EndpointKey]] = {}
    for ep in desired.local:
        by_vni.setdefault(ep.vni, []).append((ep.key, ep.vni))
    out: dict[EndpointKey, OpFailure] = {}
    for failure in failures:
        op = failure.op
        if isinstance(op, (AttachEndpoint, SetEndpointQos)):
            hit = [by_if[op.host_if]] if op.host_if in by_if else []
        elif isinstance(op, (AttachMacvlan, DetachMacvlan, SetMacvlanQos)):
            hit = [by_if[op.name]] if op.name in by_if else []
        elif isinstance(op, DeleteLink):
            hit = [by_if[op.name]] if op.name in by_if else []
        elif isinstance(op, Route):  # a routed endpoint's own route
            hit = [by_if[op.dev]] if op.dev in by_if else []
        elif isinstance(op, EnsureVxlan):
            hit = by_vni.get(op.vni, [])
        elif isinstance(op, EnsureBridge):
            hit = by_vni.get(_vni_of_bridge(op.name), [])
        elif isinstance(op, EnsureVlan):  # every endpoint of the networks on that VLAN sub-interface
            hit = [key for n in desired.networks if n.vlan is not None and n.parent is not None
                   and netops.vlan_name(n.parent, n.vlan) == op.name for key in by_vni.get(n.vni, [])]
        else:
            hit = []
        for key in hit:
            out.setdefault(key, failure)
    return out


def _vni_of_bridge(name: str) -> int:
    suffix = name[len(netops.BRIDGE_PREFIX):]
    return int(suffix) if name.startswith(netops.BRIDGE_PREFIX) and suffix.isdigit() else -1

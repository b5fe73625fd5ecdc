"""apply(ops): turn a list of operations into kernel state, batching netlink requests.

Theory of operation: simple operations (links, FDB, neighbours, qdiscs) are
encoded and queued; the queue is sent as one batch whenever an operation needs
the ifindex of a link created by a queued request, before any composite
operation (endpoint attach, router leg, nft), and at the end. Failures of
individual operations are collected, each as the operation that failed and its
:class:`NetopsError` (:class:`OpFailure`), so one bad endpoint does not stop the
rest of the pass and the caller knows which object a failure concerns without
reading the message text. Synchronous: run it in a worker
thread (``trio.to_thread.run_sync(netops.apply, ops)``); it opens its own
netlink socket and shares nothing.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from netops import _links, _nft, _routes, _tc, _vxlan
from netops._endpoint import attach_endpoint, attach_leg, attach_uplink, set_endpoint_qos
from netops._errors import NetopsError
from netops._ethtool import set_tx_csum_offload
from netops._macvlan import attach_macvlan, detach_macvlan, set_macvlan_qos
from netops._nl import RTM_GETLINK, Failure, InNetns, Msg, NlSocket
from netops._ops import (
    AttachEndpoint,
    AttachLeg,
    AttachMacvlan,
    AttachUplink,
    ClearQdisc,
    DeleteLink,
    DeleteRouter,
    DetachMacvlan,
    EnsureBridge,
    EnsureRouter,
    EnsureVlan,
    EnsureVxlan,
    FdbEntry,
    NeighEntry,
    NftScript,
    Op,
    Route,
    SetEndpointQos,
    SetMacvlanQos,
    SetTbf,
)

VXLAN_READY = "meshd:ready"


@dataclass(frozen=True, slots=True)
class OpFailure:
    """One operation that failed, and why (the error names its object and a hint)."""

    op: Op
    error: NetopsError


@dataclass(frozen=True, slots=True)
class ApplyReport:
    """What one apply() did: the number of operations attempted and each failure."""

    applied: int
    failures: tuple[OpFailure, ...]

    @property
    def errors(self) -> tuple[NetopsError, ...]:
        return tuple(f.error for f in self.failures)

    def raise_first(self) -> None:
        if self.failures:
            raise self.failures[0].error


def failure_error(failure: Failure) -> NetopsError:
    return NetopsError(failure.msg.op, failure.msg.obj, failure.errno, failure.text)


class Links:
    """name → ifindex, looked up on demand; one socket, one thread."""

    def __init__(self, nl: NlSocket) -> None:
        self.nl = nl
        self.cache: dict[str, int] = {}

    def index(self, name: str) -> int:
        if name not in self.cache:
            body = self.nl.get(RTM_GETLINK, _links.get_link(name))
            if body is None:
                raise NetopsError("find link", name, errno.ENODEV)
            self.cache[name] = _links.parse_link(body).index
        return self.cache[name]


class _Applier:
    def __init__(self, nl: NlSocket) -> None:
        self.nl = nl
        self.links = Links(nl)
        self.queue: list[Msg] = []
        self.owners: list[tuple[Op, ...]] = []  # per queued message: the operations it belongs to
        self.current: Op | None = None  # the operation being encoded
        self.doomed: list[Op] = []  # deletes queued since the last group delete
        self.queued_creates = False
        self.failures: list[OpFailure] = []

    def fail(self, ops: tuple[Op, ...], error: NetopsError) -> None:
        self.failures += [OpFailure(op, error) for op in ops]

    def flush(self) -> None:
        if self.doomed:
            self._end_doom()
        if self.queue:
            owner = {id(msg): ops for msg, ops in zip(self.queue, self.owners, strict=True)}
            for f in self.nl.batch(self.queue):
                self.fail(owner[id(f.msg)], failure_error(f))
        self.queue, self.owners, self.queued_creates = [], [], False

    def index(self, name: str) -> int:
        if name not in self.links.cache and self.queued_creates:
            self.flush()
        return self.links.index(name)

    def queue_msg(self, msg: Msg, creates: bool = False) -> None:
        if self.doomed:
            self._end_doom()
        self._push(msg, (self.current,) if self.current is not None else ())
        self.queued_creates |= creates

    def _push(self, msg: Msg, owners: tuple[Op, ...]) -> None:
        self.queue.append(msg)
        self.owners.append(owners)

    def _end_doom(self) -> None:
        """Consecutive deletes are one group delete, placed where they were planned
        (its failure is every one of those deletes' failure)."""
        self._push(_links.del_doomed(), tuple(self.doomed))
        self.doomed = []

    def run(self, op: Op) -> None:
        self.current = op
        handler = _SIMPLE.get(type(op))
        if handler is not None:
            handler(self, op)
            return
        self.flush()
        _COMPOSITE[type(op)](self, op)

    # ------------------------------------------------------------ simple ops
    def bridge(self, op: EnsureBridge) -> None:
        self.queue_msg(_links.new_bridge(op.name, op.mtu), creates=True)
        for msg in _links.quiet(0, op.name):
            self.queue_msg(msg)

    def vxlan(self, op: EnsureVxlan) -> None:
        master = self.index(op.bridge) if op.bridge is not None else 0
        underlay = self.index(op.underlay_dev)
        self.queue_msg(_vxlan.new_vxlan(op.name, op.vni, op.local_ip, underlay, op.mtu, master, op.mac),
                       creates=True)
        self.flush()
        index = self.links.index(op.name)
        if op.tx_csum_offload is not None:
            set_tx_csum_offload(op.name, op.tx_csum_offload)
        if op.bridge is not None:
            self.queue_msg(_links.bridge_port_flags(index, op.name, learning=False, unicast_flood=False))
        for msg in _links.quiet(index, op.name):
            self.queue_msg(msg)
        self.queue_msg(_links.set_link(index, op.name, alias=VXLAN_READY))  # last: marks it complete

    def vlan(self, op: EnsureVlan) -> None:
        """Composite, so that a kernel without 8021q gets its own hint."""
        def make() -> None:
            msgs = [_links.new_vlan(op.name, self.links.index(op.parent), op.parent, op.vid, op.mtu),
                    *_links.quiet(0, op.name), _links.set_link(0, op.name, alias=op.stamp)]  # alias last
            failures = self.nl.batch(msgs)
            if failures:
                f = failures[0]
                hint = ("this kernel has no 802.1Q VLANs: load module 8021q (modprobe 8021q) and restart "
                        "the agent" if f.errno == errno.EOPNOTSUPP else f.text)
                raise NetopsError(f.msg.op, f.msg.obj, f.errno, hint)

        self.guarded(make)

    def delete(self, op: DeleteLink) -> None:
        self._push(_links.doom(self.links.cache.pop(op.name, 0), op.name), (op,))
        self.doomed.append(op)

    def fdb(self, op: FdbEntry) -> None:
        self.queue_msg(_vxlan.fdb(op.add, self.index(op.dev), op.dev, op.mac, op.dst))

    def neigh(self, op: NeighEntry) -> None:
        self.queue_msg(_vxlan.neigh(op.add, self.index(op.dev), op.dev, op.ip, op.mac))

    def route(self, op: Route) -> None:
        self.queue_msg(_routes.route_msg(op.add, op.dst, self.index(op.dev), op.dev, op.gateway, op.onlink))

    def tbf(self, op: SetTbf) -> None:
        self.queue_msg(_tc.tbf(self.index(op.dev), op.dev, op.rate_kbit, op.burst_bytes, op.latency_ms))

    def clear_qdisc(self, op: ClearQdisc) -> None:
        self.queue_msg(_tc.del_root_qdisc(self.index(op.dev), op.dev))

    # --------------------------------------------------------- composite ops
    def guarded(self, fn, *args) -> None:
        try:
            fn(*args)
        except NetopsError as exc:
            assert self.current is not None
            self.fail((self.current,), exc)

    def endpoint(self, op: AttachEndpoint) -> None:
        self.guarded(attach_endpoint, self.nl, self.links, op)

    def endpoint_qos(self, op: SetEndpointQos) -> None:
        self.guarded(set_endpoint_qos, self.nl, op)

    def macvlan(self, op: AttachMacvlan) -> None:
        self.guarded(attach_macvlan, self.nl, self.links, op)

    def macvlan_gone(self, op: DetachMacvlan) -> None:
        self.guarded(detach_macvlan, op)

    def macvlan_qos(self, op: SetMacvlanQos) -> None:
        self.guarded(set_macvlan_qos, op)

    def leg(self, op: AttachLeg) -> None:
        self.guarded(attach_leg, self.nl, self.links, op)

    def uplink(self, op: AttachUplink) -> None:
        self.guarded(attach_uplink, self.nl, op)

    def router(self, op: EnsureRouter) -> None:
        self.guarded(ensure_router, op.name)

    def del_router(self, op: DeleteRouter) -> None:
        self.guarded(delete_router, op.name)

    def nft(self, op: NftScript) -> None:
        self.guarded(_nft.run, op.script, op.netns)


# each handler takes the op type of its key (hence Any)
_SIMPLE: dict[type, Callable[[_Applier, Any], None]] = {
    EnsureBridge: _Applier.bridge,
    EnsureVxlan: _Applier.vxlan,
    DeleteLink: _Applier.delete,
    FdbEntry: _Applier.fdb,
    NeighEntry: _Applier.neigh,
    SetTbf: _Applier.tbf,
    ClearQdisc: _Applier.clear_qdisc,
    Route: _Applier.route,
}
_COMPOSITE: dict[type, Callable[[_Applier, Any], None]] = {
    AttachEndpoint: _Applier.endpoint,
    SetEndpointQos: _Applier.endpoint_qos,
    EnsureVlan: _Applier.vlan,
    AttachMacvlan: _Applier.macvlan,
    DetachMacvlan: _Applier.macvlan_gone,
    SetMacvlanQos: _Applier.macvlan_qos,
    AttachLeg: _Applier.leg,
    AttachUplink: _Applier.uplink,
    EnsureRouter: _Applier.router,
    DeleteRouter: _Applier.del_router,
    NftScript: _Applier.nft,
}


def apply(ops: Sequence[Op], indexes: Mapping[str, int] | None = None) -> ApplyReport:
    """Apply ``ops`` in order in the calling thread's network namespace.

    Args:
        indexes: ifindex by link name from a dump just taken (``Actual.links``),
            saving a lookup per device; links deleted by ``ops`` are forgotten.

    Returns:
        ApplyReport with the number of operations and every failure, as the
        operation and its error. Adds of existing objects and deletes of
        missing ones are not failures.
    """
    with NlSocket() as nl:
        applier = _Applier(nl)
        applier.links.cache.update(indexes or {})
        for op in ops:
            try:
                applier.run(op)
            except NetopsError as exc:  # a lookup failed: the op cannot be encoded
                applier.fail((op,), exc)
        applier.current = None
        applier.flush()
    return ApplyReport(len(ops), tuple(applier.failures))


def netns_path(name: str) -> str:
    return f"/run/netns/{name}"


def ensure_router(name: str) -> None:
    """Create router namespace ``name`` (if missing) with lo up and IPv4 forwarding on.

    A name whose file exists but holds no namespace any more (its mount lived in
    a mount namespace that is gone, see :func:`_ip`) is removed and made anew.
    """
    path = netns_path(name)
    if os.path.exists(path) and not _is_netns(path):
        _ip("remove stale router netns", name, "netns", "del", name)
    if not os.path.exists(path):
        _ip("add router netns", name, "netns", "add", name)
    with InNetns(netns_path(name)):
        with NlSocket() as nl:
            failures = nl.batch([_links.set_link(0, "lo", up=True)])
        with open("/proc/sys/net/ipv4/ip_forward", "w") as f:  # /proc/sys/net follows the thread's netns
            f.write("1")
    if failures:
        raise failure_error(failures[0])


def remove_routers(prefix: str) -> list[str]:
    """Delete every router namespace whose name starts with ``prefix``; returns their names.

    For labs and tests: router namespaces live in the machine-global /run/netns,
    so tearing down a lab host does not remove them.
    """
    from netops._dump import routers

    names = sorted(routers(prefix))
    for name in names:
        delete_router(name)
    return names


def delete_router(name: str) -> None:
    if os.path.exists(netns_path(name)):
        _ip("delete router netns", name, "netns", "del", name)


def _is_netns(path: str) -> bool:
    """True when ``path`` is a mounted namespace (a bind mount), not a bare leftover file."""
    return os.path.ismount(path)


def _ip(op: str, obj: str, *argv: str) -> None:
    """Run ``ip`` for namespace bookkeeping.

    ``ip netns add`` bind-mounts the namespace on /run/netns/NAME in the calling
    process's mount namespace.  Run meshd in the machine's mount namespace (as
    systemd does; not under ``ip netns exec``, whose private mount namespace
    would take the router namespaces along when the process exits).
    """
    proc = subprocess.run(["ip", *argv], capture_output=True, text=True)
    if proc.returncode != 0:
        raise NetopsError(op, obj, 0, proc.stderr.strip() or f"ip exited {proc.returncode}")

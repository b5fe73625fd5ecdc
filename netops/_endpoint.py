"""Endpoint attach (veth into a container's netns) and tenant-router legs.

An attach is three batches: (1) host netns: the veth pair, created with its
peer directly inside the container's netns, already on the bridge and up, its
host side's alias "meshd:building"; (2) container netns: lo up, address, link
up, default route, TBF; (3) host netns: the alias set to the desired stamp.
A routed endpoint (no bridge) differs in (1) only by having no master, and
(3) also gives the host side the gateway address (/32) and turns on IPv4
forwarding. A crash between (1) and (3) leaves a host veth whose alias is not a valid
stamp: the reconciler deletes it (which removes the peer too) and attaches
again. A failure in (2) or (3) rolls back by deleting the host veth.
"""

from __future__ import annotations

import errno
import os

from netops import _addr, _links, _nft, _tc
from netops._errors import NetopsError, UnsupportedSetting
from netops._nl import RTM_GETLINK, Msg, NlSocket, socket_in_netns
from netops._ops import AttachEndpoint, AttachLeg, AttachUplink, Qos, SetEndpointQos, leg_name

BUILDING = "meshd:building"


def check_qos(qos: Qos | None, obj: str) -> None:
    """Refuse settings this kernel cannot do (no netem: no delay)."""
    if qos is None:
        return
    if qos.delay_ms:
        raise UnsupportedSetting(
            f"set delay {qos.delay_ms:g}ms on", obj, errno.EOPNOTSUPP,
            "this kernel has no netem qdisc; delay cannot be emulated — drop the delay setting",
        )
    if qos.rate_kbit <= 0 or qos.burst_bytes <= 0 or qos.latency_ms <= 0:
        raise NetopsError("set tbf on", obj, errno.EINVAL, "rate, burst and latency must be positive")


def open_netns(path: str, host_if: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        pid = path.split("/")[2] if path.startswith("/proc/") else path
        what = f"netns of PID {pid}" if path.startswith("/proc/") else f"netns {path}"
        raise NetopsError(f"move veth {host_if} into", what, errno.ESRCH,
                          "no such process — container exited?" if path.startswith("/proc/") else "") from None


def _run(nl: NlSocket, msgs: list[Msg]) -> None:
    failures = nl.batch(msgs)
    if failures:
        f = failures[0]
        raise NetopsError(f.msg.op, f.msg.obj, f.errno, f.text)


def _peer_msgs(ns: NlSocket, op: AttachEndpoint) -> list[Msg]:
    body = ns.get(RTM_GETLINK, _links.get_link(op.ifname))
    if body is None:
        raise NetopsError("find container interface", f"{op.ifname} in {op.netns}", errno.ENODEV)
    index = _links.parse_link(body).index
    msgs = [
        _links.set_link(0, "lo", up=True),
        _addr.new_addr(index, op.ifname, op.address, op.prefixlen),
        *_links.quiet(index, op.ifname),
    ]
    if op.gateway:  # a routed endpoint's /32 does not cover its gateway: on-link
        msgs.append(_addr.default_route(index, op.ifname, op.gateway, onlink=op.host_address is not None))
    if op.qos:
        msgs.append(_tc.tbf(index, op.ifname, op.qos.rate_kbit, op.qos.burst_bytes, op.qos.latency_ms))
    return msgs


def attach_endpoint(nl: NlSocket, links, op: AttachEndpoint) -> None:
    """Create and configure one endpoint; on failure remove what was created.

    Raises:
        NetopsError: naming the veth, the netns and the cause.
        UnsupportedSetting: the QoS asks for something this kernel lacks.
    """
    check_qos(op.qos, op.host_if)
    master = links.index(op.bridge) if op.bridge is not None else 0
    fd = open_netns(op.netns, op.host_if)
    try:
        # the alias is not applied at creation: set it in the same datagram
        _run(nl, [_links.new_veth(op.host_if, op.ifname, op.mtu, master, fd, op.mac),
                  _links.set_link(0, op.host_if, alias=BUILDING), *_links.quiet(0, op.host_if)])
    except NetopsError as exc:
        if exc.errno == errno.EEXIST:
            exc = NetopsError(f"add veth {op.host_if} with", f"{op.ifname} in {op.netns}", errno.EEXIST,
                              f"{op.host_if} or the container's {op.ifname} already exists")
        raise exc from None
    finally:
        os.close(fd)
    try:
        with socket_in_netns(op.netns) as ns:
            _run(ns, _peer_msgs(ns, op))
        host: list[Msg] = []
        if op.host_address is not None:
            _set_ip_forward()
            host.append(_addr.new_addr(links.index(op.host_if), op.host_if, op.host_address, 32))
        _run(nl, [*host, _links.set_link(0, op.host_if, alias=op.stamp)])
    except (NetopsError, OSError) as exc:
        nl.batch([_links.del_link(0, op.host_if)])
        if isinstance(exc, NetopsError):
            raise
        raise NetopsError(f"configure {op.ifname} of", op.netns, exc.errno or 0, str(exc)) from None


def set_endpoint_qos(nl: NlSocket, op: SetEndpointQos) -> None:
    """Replace (or remove) the TBF of a container's interface, then restamp."""
    check_qos(op.qos, op.host_if)
    with socket_in_netns(op.netns) as ns:
        body = ns.get(RTM_GETLINK, _links.get_link(op.ifname))
        if body is None:
            raise NetopsError("find container interface", f"{op.ifname} in {op.netns}", errno.ENODEV)
        index = _links.parse_link(body).index
        if op.qos:
            msg = _tc.tbf(index, op.ifname, op.qos.rate_kbit, op.qos.burst_bytes, op.qos.latency_ms)
        else:
            msg = _tc.del_root_qdisc(index, op.ifname)
        _run(ns, [msg])
    _run(nl, [_links.set_link(0, op.host_if, alias=op.stamp)])


def _router_pair(nl: NlSocket, host_if: str, peer: str, mtu: int, master: int, router: str,
                 peer_msgs, host_msgs, stamp: str) -> None:
    """A veth pair from the host into a router netns, configured on both ends, stamped last.

    ``peer_msgs(index)`` / ``host_msgs(index)`` give each side's configuration. Rolls back on failure.
    """
    path = f"/run/netns/{router}"
    fd = open_netns(path, host_if)
    try:
        _run(nl, [_links.new_veth(host_if, peer, mtu, master, fd, None),
                  _links.set_link(0, host_if, alias=BUILDING), *_links.quiet(0, host_if)])
    finally:
        os.close(fd)
    try:
        with socket_in_netns(path) as ns:
            body = ns.get(RTM_GETLINK, _links.get_link(peer))
            if body is None:
                raise NetopsError("find router side", f"{peer} in {router}", errno.ENODEV)
            _run(ns, peer_msgs(_links.parse_link(body).index))
        host = nl.get(RTM_GETLINK, _links.get_link(host_if))
        if host is None:
            raise NetopsError("find", host_if, errno.ENODEV)
        _run(nl, [*host_msgs(_links.parse_link(host).index), _links.set_link(0, host_if, alias=stamp)])
    except (NetopsError, OSError) as exc:
        nl.batch([_links.del_link(0, host_if)])
        if isinstance(exc, NetopsError):
            raise
        raise NetopsError(f"configure {peer} in", router, exc.errno or 0, str(exc)) from None


def attach_leg(nl: NlSocket, links, op: AttachLeg) -> None:
    """Connect a network's bridge to its tenant router; the router side holds the gateway."""
    peer = f"gw-{op.vni}"

    def peer_msgs(index: int) -> list[Msg]:
        return [_addr.new_addr(index, peer, op.gateway, op.prefixlen), *_links.quiet(index, peer)]

    _router_pair(nl, leg_name(op.vni), peer, op.mtu, links.index(op.bridge), op.router, peer_msgs,
                 lambda _index: [], op.stamp)


ROUTER_NAT = """table ip meshd {}
delete table ip meshd
table ip meshd {
  chain postrouting { type nat hook postrouting priority 100; policy accept; oifname "up0" masquerade; }
}
"""


def attach_uplink(nl: NlSocket, op: AttachUplink) -> None:
    """External access for a tenant router (see netops._ops.AttachUplink)."""
    _set_ip_forward()

    def peer_msgs(index: int) -> list[Msg]:
        return [_addr.new_addr(index, "up0", op.router_ip, 31), *_links.quiet(index, "up0"),
                _addr.route("0.0.0.0/0", index, "up0", op.host_ip)]

    def configure_router(index: int) -> list[Msg]:
        _nft.run(ROUTER_NAT, f"/run/netns/{op.router}")
        return peer_msgs(index)

    def host_msgs(index: int) -> list[Msg]:
        return [_addr.new_addr(index, op.host_if, op.host_ip, 31)]

    _router_pair(nl, op.host_if, "up0", 1500, 0, op.router, configure_router, host_msgs, op.stamp)


def _set_ip_forward() -> None:
    with open("/proc/sys/net/ipv4/ip_forward", "w") as f:  # the calling thread's netns
        f.write("1")

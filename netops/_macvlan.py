"""Flat endpoints: a macvlan interface on a host NIC, inside the container's netns.

A macvlan endpoint has no host-side device that a dump of the host namespace
would find, so netops keeps one small record file per endpoint in a records
directory (``<run_dir>/endpoints`` of the agent; like CNI's cache): its name
is the endpoint's key, its content the container netns, the interface name
and the stamp. The record is written *before* the interface is created and
stamped *after* it is configured, so an interrupted attach leaves a record
whose stamp is ``meshd:building`` (rebuilt by the next pass), never an
interface nobody knows about.

:func:`read_records` is the dump: each record with the alias its interface
has now (None when the netns or the interface is gone). An interface is
deleted only when its alias is exactly the record's stamp, so a reused PID
can never make netops delete another container's interface.

Attach, in order: record (building); a macvlan on the parent created
directly inside the container netns (``IFLA_NET_NS_FD``: no move, which
would wait for an RCU grace period), named after the record (``mv`` + a
hash), with its MAC and MTU; there renamed to its interface name with the
alias ``meshd:building`` in one request, then lo up, address, IPv6 off, up,
default route, TBF, alias = stamp; record = stamp. A failure removes the
interface and the record.
"""

from __future__ import annotations

import errno
import json
import os
from dataclasses import dataclass

from netops import _addr, _links, _nl, _tc
from netops._endpoint import check_qos
from netops._errors import NetopsError
from netops._links import IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_NET_NS_FD, ifinfo, linkinfo
from netops._nl import CREATE, RTM_GETLINK, Msg, NlSocket, attr, cstr, socket_in_netns, u32
from netops._ops import AttachMacvlan, DetachMacvlan, SetMacvlanQos

BUILDING = "meshd:building"
IFLA_LINK = 5
IFLA_MACVLAN_MODE = 1
#: <linux/if_link.h> MACVLAN_MODE_*
MACVLAN_MODES = {"private": 1, "vepa": 2, "bridge": 4, "passthru": 8}


@dataclass(frozen=True, slots=True)
class MacvlanRecord:
    """One flat endpoint netops built (or was building), as its record and the kernel say.

    Attributes:
        name: the record's name (the endpoint's key on this host).
        netns, ifname: where the interface lives.
        stamp: the record's stamp (``meshd:building`` until the attach finished).
        alias: the interface's alias now; None when the netns or the interface is gone.
    """

    name: str
    netns: str
    ifname: str
    stamp: str
    alias: str | None


def _path(records_dir: str, name: str) -> str:
    return os.path.join(records_dir, name)


def _write(records_dir: str, name: str, netns: str, ifname: str, stamp: str) -> None:
    os.makedirs(records_dir, mode=0o700, exist_ok=True)
    tmp = _path(records_dir, f".{name}.tmp")
    with open(tmp, "w") as f:
        json.dump({"netns": netns, "ifname": ifname, "stamp": stamp}, f)
    os.replace(tmp, _path(records_dir, name))


def _remove(records_dir: str, name: str) -> None:
    try:
        os.unlink(_path(records_dir, name))
    except FileNotFoundError:
        pass


def _alias_in(netns: str, ifname: str) -> str | None:
    """The alias of ``ifname`` inside ``netns``; None when either is gone."""
    try:
        with socket_in_netns(netns) as ns:
            body = ns.get(RTM_GETLINK, _links.get_link(ifname))
    except OSError:  # the netns is gone (container exited)
        return None
    return None if body is None else _links.parse_link(body).alias


def read_records(records_dir: str) -> dict[str, MacvlanRecord]:
    """Every record in ``records_dir`` with its interface's alias now (the flat endpoints' dump).

    A record that cannot be read is reported with an empty netns, so the
    planner deletes it.
    """
    try:
        names = sorted(n for n in os.listdir(records_dir) if not n.startswith("."))
    except FileNotFoundError:
        return {}
    out = {}
    for name in names:
        try:
            with open(_path(records_dir, name)) as f:
                doc = json.load(f)
            netns, ifname, stamp = str(doc["netns"]), str(doc["ifname"]), str(doc["stamp"])
        except (OSError, ValueError, KeyError, TypeError):
            out[name] = MacvlanRecord(name, "", "", "", None)
            continue
        out[name] = MacvlanRecord(name, netns, ifname, stamp, _alias_in(netns, ifname))
    return out


def new_macvlan(name: str, parent: int, mode: str, mac: str, mtu: int, netns_fd: int) -> Msg:
    """A macvlan ``name`` on ``parent`` (an ifindex of the caller's netns), created down directly
    inside the netns ``netns_fd`` (no move: moving a device waits for an RCU grace period)."""
    data = u32(IFLA_MACVLAN_MODE, MACVLAN_MODES[mode])
    body = (ifinfo() + cstr(IFLA_IFNAME, name) + u32(IFLA_LINK, parent) + u32(IFLA_MTU, mtu)
            + attr(IFLA_ADDRESS, _nl.mac_bytes(mac)) + u32(IFLA_NET_NS_FD, netns_fd) + linkinfo("macvlan", data))
    return Msg(_nl.RTM_NEWLINK, CREATE, body, "add macvlan", name)


def rename(index: int, name: str, new_name: str, alias: str) -> Msg:
    """Rename link ``index`` (down) and set its alias, in one request."""
    body = ifinfo(index) + cstr(IFLA_IFNAME, new_name) + cstr(_links.IFLA_IFALIAS, alias)
    return Msg(_nl.RTM_NEWLINK, 0, body, f"rename {name} to", new_name)


def _run(nl: NlSocket, msgs: list[Msg]) -> None:
    failures = nl.batch(msgs)
    if failures:
        f = failures[0]
        raise NetopsError(f.msg.op, f.msg.obj, f.errno, f.text)


def attach_macvlan(nl: NlSocket, links, op: AttachMacvlan) -> None:
    """Create and configure one flat endpoint; on failure remove what was created.

    The macvlan is made directly inside the container netns under the record's
    name (``mv`` + a hash: no other software names an interface so), then
    renamed to its interface name with the alias ``meshd:building`` in one
    request: a half-built interface is always recognisable, by its first name
    or by that alias.

    Raises:
        NetopsError: naming the interface, the netns or the parent, and the cause.
    """
    what = f"{op.ifname} in {op.netns}"
    check_qos(op.qos, what)
    parent = links.index(op.parent)
    try:
        fd = os.open(op.netns, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NetopsError("add macvlan", what, errno.ESRCH, "no such process — container exited?") from None
    _write(op.records_dir, op.name, op.netns, op.ifname, BUILDING)
    try:
        _run(nl, [new_macvlan(op.name, parent, op.macvlan_mode, op.mac, op.mtu, fd)])
    except NetopsError as exc:
        _remove(op.records_dir, op.name)
        hint = {errno.EINVAL: f"is MTU {op.mtu} larger than {op.parent}'s, or {op.parent} no Ethernet NIC?",
                errno.EBUSY: f"{op.parent} is enslaved or in a mode macvlan cannot share"}.get(exc.errno, exc.hint)
        raise NetopsError(f"add macvlan on {op.parent} for", what, exc.errno, hint) from None
    finally:
        os.close(fd)
    try:
        with socket_in_netns(op.netns) as ns:
            body = ns.get(RTM_GETLINK, _links.get_link(op.name))
            if body is None:
                raise NetopsError("find the new macvlan", f"{op.name} in {op.netns}", errno.ENODEV)
            index = _links.parse_link(body).index
            try:
                _run(ns, [rename(index, op.name, op.ifname, BUILDING)])
            except NetopsError as exc:
                if exc.errno == errno.EEXIST:
                    raise NetopsError(f"rename macvlan {op.name} to", what, exc.errno,
                                      f"the container already has an interface {op.ifname}") from None
                raise
            msgs = [_links.set_link(0, "lo", up=True), _addr.new_addr(index, op.ifname, op.address, op.prefixlen),
                    *_links.quiet(index, op.ifname)]
            if op.gateway:
                msgs.append(_addr.default_route(index, op.ifname, op.gateway))
            if op.qos:
                msgs.append(_tc.tbf(index, op.ifname, op.qos.rate_kbit, op.qos.burst_bytes, op.qos.latency_ms))
            msgs.append(_links.set_link(index, op.ifname, alias=op.stamp))
            _run(ns, msgs)
        _write(op.records_dir, op.name, op.netns, op.ifname, op.stamp)
    except (NetopsError, OSError) as exc:
        _delete_in(op.netns, op.ifname, BUILDING)
        _delete_in(op.netns, op.name, None)
        _remove(op.records_dir, op.name)
        if isinstance(exc, NetopsError):
            raise
        raise NetopsError(f"configure {op.ifname} of", op.netns, exc.errno or 0, str(exc)) from None


def _delete_in(netns: str, ifname: str, stamp: str | None) -> None:
    """Delete ``ifname`` in ``netns`` (only when its alias is ``stamp``, unless None); gone is done."""
    try:
        with socket_in_netns(netns) as ns:
            body = ns.get(RTM_GETLINK, _links.get_link(ifname))
            if body is None:
                return
            link = _links.parse_link(body)
            if stamp is not None and link.alias != stamp:
                return
            _run(ns, [_links.del_link(link.index, ifname)])
    except OSError:
        return  # the netns is gone, and the interface with it


def detach_macvlan(op: DetachMacvlan) -> None:
    """Remove a flat endpoint's interface (if it is still the one the record names) and its record;
    after an interrupted attach (record ``meshd:building``), also the macvlan under its first name."""
    if op.netns:
        _delete_in(op.netns, op.ifname, op.stamp)
        if op.stamp == BUILDING:  # the macvlan may still have its first name (ours alone)
            _delete_in(op.netns, op.name, None)
    _remove(op.records_dir, op.name)


def set_macvlan_qos(op: SetMacvlanQos) -> None:
    """Replace (or remove) the TBF of a flat endpoint's interface, then restamp it and its record."""
    what = f"{op.ifname} in {op.netns}"
    check_qos(op.qos, what)
    with socket_in_netns(op.netns) as ns:
        body = ns.get(RTM_GETLINK, _links.get_link(op.ifname))
        if body is None:
            raise NetopsError("find container interface", what, errno.ENODEV)
        index = _links.parse_link(body).index
        if op.qos:
            msg = _tc.tbf(index, op.ifname, op.qos.rate_kbit, op.qos.burst_bytes, op.qos.latency_ms)
        else:
            msg = _tc.del_root_qdisc(index, op.ifname)
        _run(ns, [msg, _links.set_link(index, op.ifname, alias=op.stamp)])
    _write(op.records_dir, op.name, op.netns, op.ifname, op.stamp)


#: the alias of a DHCP probe interface (see :func:`add_probe_macvlan`)
PROBE_ALIAS = "meshd:dhcp-probe"


def add_probe_macvlan(netns: str, parent: str, name: str, mac: str) -> None:
    """A temporary macvlan ``name`` (bridge mode, MAC ``mac``) on ``parent``, created directly in
    ``netns`` and brought up there with no address (no IPv6 either): where a DHCP client asks for
    a lease with the MAC the endpoint will have. One left over from an interrupted run is replaced
    (the name, ``mdh`` + a hash, is meshd's alone).

    Raises:
        NetopsError: naming the parent, the interface and the netns.
    """
    what = f"{name} in {netns}"
    _delete_in(netns, name, None)
    try:
        fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NetopsError("add DHCP probe macvlan", what, errno.ESRCH, "no such process — container exited?") from None
    try:
        with NlSocket() as nl:
            body = nl.get(RTM_GETLINK, _links.get_link(parent))
            if body is None:
                raise NetopsError("add DHCP probe macvlan on", parent, errno.ENODEV, f"no NIC {parent} on this host")
            # DHCP fits in 576 bytes; the probe lives only until the lease is there
            _run(nl, [new_macvlan(name, _links.parse_link(body).index, "bridge", mac, 576, fd)])
    finally:
        os.close(fd)
    try:
        with socket_in_netns(netns) as ns:
            body = ns.get(RTM_GETLINK, _links.get_link(name))
            if body is None:
                raise NetopsError("find the new DHCP probe macvlan", what, errno.ENODEV)
            index = _links.parse_link(body).index
            _run(ns, [_links.set_link(index, name, alias=PROBE_ALIAS), *_links.quiet(index, name)])
    except (NetopsError, OSError) as exc:
        _delete_in(netns, name, None)
        if isinstance(exc, NetopsError):
            raise
        raise NetopsError("bring up DHCP probe macvlan", what, exc.errno or 0, str(exc)) from None


def del_probe_macvlan(netns: str, name: str) -> None:
    """Delete the DHCP probe interface ``name`` in ``netns`` (only one carrying the probe alias; gone is done)."""
    _delete_in(netns, name, PROBE_ALIAS)

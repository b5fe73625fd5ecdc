"""Handlers for endpoint commands (a mixin of NetworkState).

Connect is the hot path (the benchmark applies a million of them), so it
checks the common case first and builds nothing it does not return.
"""

from __future__ import annotations

from . import _validate as v
from ._commands import (
    Connect,
    Connected,
    Disconnect,
    Disconnected,
    ErrorCode,
    Moved,
    MoveEndpoint,
    QosUpdated,
    Reject,
    SetQos,
)
from ._tables import HOST, IP, MAC, NAME, QOS, Ep, Net, QosKey, Tables, qos_key
from ._types import MAC_PREFIX, NO_QOS, ChangeKind, Mode, Qos, derived_mac, format_ipv4, format_mac

_ADDED = ChangeKind.ENDPOINT_ADDED


def no_lease(network: str, cid: str) -> None:
    raise Reject(
        ErrorCode.INVALID_FIELD,
        f"addresses of dhcp network {network!r} come from its DHCP server: connect {cid!r} through the "
        "container's host agent, which leases one (a connect on a dhcp network carries the leased ip and its mac)",
    )
_ID_OK = v._ID_RE.match


class EndpointCommands(Tables):
    def _on_connect(self, c: Connect, index: int) -> Connected:
        net = self._nets.get(c.network) or self._net(c.network)
        cid, host = c.endpoint_id, c.host
        if type(cid) is not str or not _ID_OK(cid):
            v.check_id("endpoint id", cid)
        by_host = self._by_host  # None: not built since a restore (nothing then keeps it up to date)
        if type(host) is not str or (
            (by_host is None or host not in by_host) and not _ID_OK(host) and host not in self._hosts
        ):  # (a host in the state is accepted as it is: one from an old snapshot may not match the pattern)
            v.check_id(f"host of endpoint {cid!r}", host)
        containers = self._by_container
        if containers is None:
            containers = self._containers
        nets_of = containers.get(cid)
        if nets_of is not None or host in self._stale:
            if nets_of is not None and c.network in nets_of:
                return self._reconnect(net, cid, net.eps[cid], c)
            self._check_placement(cid, host, nets_of)
        qos = c.qos
        key: QosKey
        if qos is NO_QOS or type(qos) is Qos and not (qos.rate_kbit or qos.burst_bytes or qos.latency_ms):
            key = None
        else:
            key = self._qos_key(f"endpoint {cid!r}", qos)
        if net.net.mode is Mode.DHCP and (c.ip is None or c.mac is None):
            no_lease(c.network, cid)
        mac = None if c.mac is None else self._check_mac(net, cid, c.mac)
        name = c.name
        if name is not None:
            v.check_container_name(f"name of endpoint {cid!r}", name)
        off: int | None
        if c.ip is not None:
            off = self._requested_offset(net, cid, c.ip)
            net.vec.set(off)
        else:
            off = net.vec.allocate_next() if net.pool is None else net.vec.allocate_in(*net.pool)
            if off is None:
                where = net.net.subnet if net.pool is None else f"ip_range {net.net.options['ip_range']}"
                raise Reject(
                    ErrorCode.POOL_EXHAUSTED,
                    f"network {c.network!r} ({where}) has no free address left for {cid!r}: "
                    "disconnect unused endpoints, give an explicit ip, or create a larger network",
                )
        # --- validated: from here on nothing can fail
        net.eps[cid] = (host, off, mac, key, name)  # (built above: the property costs a test)
        if name is not None:
            named = self._named.setdefault(name, {})
            named[cid] = named.get(cid, 0) + 1
        if mac is not None:
            net.macs[mac] = cid
        network = c.network
        # a container's networks are kept sorted, so the order cannot depend on history
        containers[cid] = (network,) if nets_of is None else tuple(sorted((*nets_of, network)))
        by_host = self._by_host  # (the host check above may have built it)
        if by_host is not None:
            on_host = by_host.get(host)
            if on_host is None:
                by_host[host] = {network: 1}
            else:
                on_host[network] = on_host.get(network, 0) + 1
        self._changes.append((index, _ADDED, network, cid, host, None, None))
        return self._connected(net, cid, host, off, mac)

    def _check_placement(self, cid: str, host: str, nets_of: tuple[str, ...] | None) -> None:
        """A container lives on one host, and no new endpoint goes to a stale host."""
        if nets_of is not None:
            home = self._nets[nets_of[0]].eps[cid][HOST]
            if home != host:
                raise Reject(
                    ErrorCode.HOST_MISMATCH,
                    f"container {cid!r} runs on host {home!r} (in network {nets_of[0]!r}), not {host!r}: "
                    f"connect it on {home!r}, or move it first",
                )
        if host in self._stale:
            raise Reject(
                ErrorCode.HOST_STALE,
                f"host {host!r} is marked stale: clear the mark (mark-host-stale stale=false) "
                f"before connecting {cid!r} there",
            )

    def _connected(self, net: Net, cid: str, host: str, off: int, mac: int | None) -> Connected:
        ip = net.base + off
        n = net.net
        return Connected(
            endpoint_id=cid, network=n.name, host=host, ip=format_ipv4(ip), prefix_len=net.prefix,
            mac=format_mac(derived_mac(ip) if mac is None else mac), gateway=n.gateway, vni=n.vni, mtu=n.mtu,
        )

    def _reconnect(self, net: Net, cid: str, old: Ep, c: Connect) -> Connected:
        """The same connect again (a retry) returns the attachment; anything else is refused."""
        same = (
            old[HOST] == c.host
            and isinstance(c.qos, Qos)
            and old[QOS] == qos_key(c.qos)
            and (c.ip is None or c.ip == format_ipv4(net.base + old[IP]))
            and (c.mac is None or old[MAC] is not None and c.mac.lower() == format_mac(old[MAC]))
        )
        if not same:
            raise Reject(
                ErrorCode.ALREADY_CONNECTED,
                f"endpoint {cid!r} is already connected to network {c.network!r} on host {old[HOST]!r} "
                f"with IP {format_ipv4(net.base + old[IP])}: disconnect it first, or use move / set-qos",
            )
        return self._connected(net, cid, old[HOST], old[IP], old[MAC])

    def _check_mac(self, net: Net, cid: str, text: str) -> int:
        mac = v.parse_mac(f"MAC of endpoint {cid!r}", text)
        if mac >> 32 == MAC_PREFIX:
            raise Reject(
                ErrorCode.INVALID_MAC,
                f"MAC {text} of endpoint {cid!r} uses prefix 02:6d, which meshd keeps for MACs derived "
                "from IPs: omit the MAC to get one, or use another prefix",
            )
        owner = net.macs.get(mac)
        if owner is not None:
            raise Reject(
                ErrorCode.MAC_TAKEN,
                f"MAC {text} asked for by endpoint {cid!r} is already used by {owner!r} in network "
                f"{net.net.name!r}: pick another MAC or omit it",
            )
        return mac

    def _requested_offset(self, net: Net, cid: str, text: str) -> int:
        ip = v.parse_ipv4(f"requested IP of endpoint {cid!r}", text)
        name, subnet = net.net.name, net.net.subnet
        off = ip - net.base
        if not 0 <= off < net.size:
            raise Reject(
                ErrorCode.IP_OUTSIDE_SUBNET,
                f"requested IP {text} of endpoint {cid!r} is outside network {name!r} ({subnet}): "
                "ask for an address inside it, or omit the IP",
            )
        why = net.reserved(off)
        if why is not None:
            raise Reject(
                ErrorCode.IP_RESERVED,
                f"requested IP {text} of endpoint {cid!r} is {why} of network {name!r} ({subnet}): "
                "ask for another address, or omit the IP",
            )
        if net.vec.test(off):
            owner = next(k for k, e in net.eps.items() if e[IP] == off)
            raise Reject(
                ErrorCode.IP_TAKEN,
                f"requested IP {text} of endpoint {cid!r} is already used by {owner!r} in network {name!r}: "
                "ask for another address, or omit the IP to get a free one",
            )
        return off

    def _on_disconnect(self, c: Disconnect, index: int) -> Disconnected:
        net = self._net(c.network)
        ep = self._ep(net, c.endpoint_id)
        self._drop_ep(net, c.endpoint_id)
        self._note(index, ChangeKind.ENDPOINT_REMOVED, c.network, c.endpoint_id, ep[HOST])
        return Disconnected(endpoint_id=c.endpoint_id, network=c.network, ip=format_ipv4(net.base + ep[IP]))

    def _drop_ep(self, net: Net, cid: str) -> Ep:
        """Remove one attachment and every index entry of it; no checks."""
        # the indexes first: one not built since a restore is built from the endpoints as they are
        containers, by_name = self._containers, self._named
        if self._services:
            self._drop_services(net, cid)
        ep = net.eps.pop(cid)
        if ep[NAME] is not None:
            named = by_name[ep[NAME]]
            named[cid] -= 1
            if not named[cid]:
                del named[cid]
                if not named:
                    del by_name[ep[NAME]]
        net.vec.clear(ep[IP])
        if ep[MAC] is not None:
            del net.macs[ep[MAC]]
        name = net.net.name
        nets_of = tuple(n for n in containers[cid] if n != name)
        if nets_of:
            containers[cid] = nets_of
        else:
            del containers[cid]
        self._count_host(ep[HOST], name, -1)
        return ep

    def _count_host(self, host: str, name: str, delta: int) -> None:
        """Keep ``_hosts[host][network]`` = number of endpoints of that network on that host
        (when that index is built: else it is built from the networks when first needed)."""
        by_host = self._by_host
        if by_host is None:
            return
        on_host = by_host.setdefault(host, {})
        count = on_host.get(name, 0) + delta
        if count:
            on_host[name] = count
        else:
            del on_host[name]
            if not on_host:
                del by_host[host]

    def _on_move_endpoint(self, c: MoveEndpoint, index: int) -> Moved:
        cid = c.endpoint_id
        nets_of, host, old_host = self._check_move(c)
        if host == old_host:
            return Moved(endpoint_id=cid, host=host, old_host=old_host, networks=nets_of)
        for name in nets_of:
            eps = self._nets[name].eps
            eps[cid] = (host, *eps[cid][IP:])
            self._count_host(old_host, name, -1)
            self._count_host(host, name, +1)
            self._note(index, ChangeKind.ENDPOINT_MOVED, name, cid, host, old_host)
        return Moved(endpoint_id=cid, host=host, old_host=old_host, networks=nets_of)

    def _check_move(self, c: MoveEndpoint) -> tuple[tuple[str, ...], str, str]:
        """(the endpoint's networks, the new host, the old host), or the move's refusal; changes nothing."""
        cid = c.endpoint_id
        nets_of = self._containers.get(cid)
        if nets_of is None:
            raise Reject(
                ErrorCode.UNKNOWN_ENDPOINT,
                f"endpoint {cid!r} is not connected to any network: connect it instead of moving it",
            )
        host = v.check_id(f"host of endpoint {cid!r}", c.host)
        old_host = self._nets[nets_of[0]].eps[cid][HOST]
        if host != old_host and host in self._stale:
            raise Reject(
                ErrorCode.HOST_STALE,
                f"host {host!r} is marked stale: clear the mark before moving {cid!r} there",
            )
        return nets_of, host, old_host

    def _on_set_qos(self, c: SetQos, index: int) -> QosUpdated:
        net = self._net(c.network)
        ep = self._ep(net, c.endpoint_id)
        qos = self._qos_key(f"endpoint {c.endpoint_id!r}", c.qos)
        if qos != ep[QOS]:
            net.eps[c.endpoint_id] = (*ep[:QOS], qos, ep[NAME])
            self._note(index, ChangeKind.ENDPOINT_QOS, c.network, c.endpoint_id, ep[HOST])
        return QosUpdated(endpoint_id=c.endpoint_id, network=c.network)

    def _qos_key(self, where: str, qos: object) -> tuple[int, int, int] | None:
        """Validate a QoS and return its internal form, interned (equal values share one tuple)."""
        key = qos_key(v.check_qos(where, qos))
        return None if key is None else self._qos_pool.setdefault(key, key)

    def _ep(self, net: Net, cid: str) -> Ep:
        ep = net.eps.get(cid)
        if ep is None:
            elsewhere = self._containers.get(cid) if isinstance(cid, str) else None
            hint = f"it is in {', '.join(map(repr, elsewhere))}" if elsewhere else "check the container id"
            raise Reject(
                ErrorCode.UNKNOWN_ENDPOINT,
                f"endpoint {cid!r} is not connected to network {net.net.name!r}: {hint}",
            )
        return ep

"""The DHCP leases of this host's endpoints on dhcp networks: obtained, kept alive, released.

:class:`DhcpLeases` is the one owner of this host's DHCP clients
(:mod:`meshd.dhcp`). Three duties:

* **connect** (:meth:`DhcpLeases.connect`; the API, the control socket and
  Docker all connect through it): on the container's own host, a lease is
  obtained *inside the container's netns* on a temporary probe macvlan with the
  endpoint's MAC (``dhcp_mac(endpoint, network)``, or the one asked for), then
  ``Connect(ip=lease, mac=mac)`` is committed; the reconciler builds the real
  interface as for a flat network. A lease whose router or mask disagrees with
  the network, or whose connect the state refuses, is released again.
* **supervision**: every built local endpoint of a dhcp network (from the
  endpoint tracker: netns, interface, address, MAC) gets a client on a UDP
  socket bound to its real interface: it renews at T1 (unicast from the leased
  address), rebinds at T2; after an agent restart (or a container restart) it
  confirms the same address (INIT-REBOOT) instead of asking for a new one.
  A NAK, an expiry or an unconfirmed reboot marks the endpoint failed (an
  ``error`` event, ``meshd why``) and the client keeps asking for the same
  address every ``failed_retry_s``; an ACK later clears the failure.
* **release** (:meth:`DhcpLeases.release`, before a Disconnect is committed):
  a RELEASE from the endpoint's own interface when its client runs, else (the
  container exited) from a probe interface with its MAC in the host netns.
  A disconnect committed on another host is released when this host sees it
  applied, if the interface is still there by then (best effort).
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec
import trio

from meshd import dhcp
from meshd import state as st
from meshd._attach import INTERFACE
from meshd.reconcile import LocalEndpoint

from ._endpoints import EndpointTracker
from ._events import Events
from ._replica import Replica

if TYPE_CHECKING:
    from ._containers import LocalContainers  # which imports this module

log = logging.getLogger("meshd.agent.dhcp")

Key = tuple[str, str]  #: (endpoint id, network)


class LeaseRefused(Exception):
    """A connect on a dhcp network cannot go ahead; the message names why and the fix.
    ``no_lease``: the DHCP exchange itself failed (else the request was wrong)."""

    def __init__(self, message: str, *, no_lease: bool = False) -> None:
        super().__init__(message)
        self.no_lease = no_lease


def probe_name(endpoint_id: str, network: str) -> str:
    """The temporary interface a lease is asked for on: ``mdh`` + 9 hex digits (15 at most)."""
    return "mdh" + hashlib.blake2b(f"{endpoint_id}\0{network}".encode(), digest_size=5).hexdigest()[:9]


@dataclasses.dataclass(slots=True)
class _Client:
    """One supervised endpoint: its interface, and once running its client and socket."""

    ep: LocalEndpoint
    scope: trio.CancelScope
    client: dhcp.DhcpClient | None = None
    sock: dhcp.DhcpSocket | None = None


class DhcpLeases:
    """See the module docstring. ``parent``: this host's NIC for networks without a ``parent`` option."""

    def __init__(self, *, host: str, replica: Replica, containers: LocalContainers, tracker: EndpointTracker,
                 events: Events, parent: str, timing: dhcp.DhcpTiming | None = None) -> None:
        self._host = host
        self._replica = replica
        self._containers = containers
        self._tracker = tracker
        self._events = events
        self._parent = parent
        self.timing = timing or dhcp.DhcpTiming()
        self._rng = random.Random()
        self._clients: dict[Key, _Client] = {}
        self._leases: dict[Key, dhcp.Lease] = {}  #: the last lease each endpoint had (for a later release)
        self._fresh: dict[Key, dhcp.Lease] = {}  #: leases just obtained, for the supervisor to go on from
        self._failed: set[Key] = set()
        self._released: set[Key] = set()  #: released, Disconnect pending: not supervised again meanwhile
        self._changed = trio.Event()
        self._nursery: trio.Nursery | None = None

    # --- connect -----------------------------------------------------------------------

    def _dhcp_network(self, name: str) -> st.Network | None:
        net = self._replica.state.network_spec(name)
        return net if net is not None and net.mode is st.Mode.DHCP else None

    async def connect(self, c: st.Connect, commit: Callable[[Any], Awaitable[Any]]) -> Any:
        """Commit ``c`` through ``commit``; on a dhcp network, with a lease obtained first.

        Raises:
            LeaseRefused: the connect cannot be made here (the message says why and what to do).
            meshd.api.Unavailable: from ``commit`` (the lease is released first).
        """
        net = self._dhcp_network(c.network)
        if net is None:
            return await commit(c)
        if c.ip is not None:
            raise LeaseRefused(f"addresses of dhcp network {c.network!r} come from its DHCP server: drop the ip "
                               f"({c.ip}) and the agent leases one")
        if c.host != self._host:
            raise LeaseRefused(f"a dhcp network's address is leased inside the container's netns, on its host: "
                               f"connect {c.endpoint_id[:12]} to {c.network!r} through host {c.host!r}'s agent "
                               f"(its API or `meshd` there), not {self._host!r}'s")
        known = [e for e in self._replica.state.endpoints(network=c.network) if e.endpoint_id == c.endpoint_id]
        if known:  # connected already: the state answers a retry (no second lease for one MAC)
            return await commit(msgspec.structs.replace(c, ip=known[0].ip, mac=known[0].mac))
        netns = self._containers.netns.get(c.endpoint_id)
        if netns is None:
            raise LeaseRefused(f"container {c.endpoint_id[:12]} is not running on {self._host}: a dhcp network's "
                               "address is leased inside its netns; start it first")
        key = (c.endpoint_id, c.network)
        mac = (c.mac or st.dhcp_mac(c.endpoint_id, c.network)).lower()
        parent = net.options.get("parent", self._parent)
        try:
            lease = await dhcp.acquire(netns=netns, parent=parent, probe=probe_name(*key), mac=mac,
                                       timing=self.timing, rng=self._rng)
        except dhcp.DhcpError as exc:
            raise LeaseRefused(f"no DHCP lease for {c.endpoint_id[:12]} on dhcp network {c.network!r}: {exc}",
                               no_lease=True) from None
        why = _mismatch(net, lease)
        if why is not None:
            await self._release_probe(key, netns, parent, lease, mac)
            raise LeaseRefused(why, no_lease=True)
        try:
            result = await commit(msgspec.structs.replace(c, ip=lease.ip, mac=mac))
        except BaseException:
            with trio.CancelScope(shield=True):
                await self._release_probe(key, netns, parent, lease, mac)
            raise
        if isinstance(result, st.CommandError):
            await self._release_probe(key, netns, parent, lease, mac)
            return result
        self._fresh[key] = self._leases[key] = lease
        log.info("dhcp leased endpoint=%s network=%s ip=%s mac=%s server=%s lease_s=%g",
                 c.endpoint_id[:12], c.network, lease.ip, mac, lease.server, lease.lease_s)
        self._events.note("endpoint", f"{c.endpoint_id[:12]} leased {lease.ip} in {c.network} from DHCP server "
                                      f"{lease.server} (lease {lease.lease_s:g}s)")
        return result

    async def _release_probe(self, key: Key, netns: str, parent: str, lease: dhcp.Lease, mac: str) -> None:
        await dhcp.release(netns=netns, ifname=probe_name(*key), lease=lease, mac=mac, probe_parent=parent)

    # --- release -----------------------------------------------------------------------

    async def disconnect(self, d: st.Disconnect, commit: Callable[[Any], Awaitable[Any]]) -> Any:
        """Commit ``d`` through ``commit``; a local endpoint of a dhcp network releases its lease first
        (and is supervised again if the disconnect is not committed after all)."""
        mine = any(e.endpoint_id == d.endpoint_id for e in self._replica.state.endpoints(host=self._host,
                                                                                        network=d.network))
        if not mine or self._dhcp_network(d.network) is None:
            return await commit(d)
        await self.release(d.endpoint_id, d.network)
        done = False
        try:
            result = await commit(d)
            done = not isinstance(result, st.CommandError)
            return result
        finally:
            if not done:  # still connected: keep its lease alive again (INIT-REBOOT of the same address)
                self._released.discard((d.endpoint_id, d.network))
                self._changed.set()

    async def release(self, endpoint_id: str, network: str) -> None:
        """Give the endpoint's lease back before its Disconnect is committed (no-op on other networks);
        it is not supervised again until it is gone from this host's built endpoints."""
        key = (endpoint_id, network)
        self._released.add(key)
        self._fresh.pop(key, None)
        self._failed.discard(key)
        sup = self._clients.pop(key, None)
        lease = self._leases.pop(key, None)
        if sup is not None:
            sup.scope.cancel()
            if sup.client is not None and sup.sock is not None and sup.client.lease is not None:
                out = sup.client.release(trio.current_time())
                for s in out.sends:
                    await sup.sock.send(s)
                sup.sock.close()
                log.info("dhcp released endpoint=%s network=%s ip=%s", endpoint_id[:12], network, s.msg.ciaddr)
                return
        net = self._dhcp_network(network)
        if lease is None or net is None:
            if net is not None:
                log.info("dhcp release skipped endpoint=%s network=%s: no lease known since the agent started "
                         "(the server expires it)", endpoint_id[:12], network)
            return
        parent = net.options.get("parent", self._parent)
        mac = next((e.mac for e in self._replica.state.endpoints(network=network) if e.endpoint_id == endpoint_id),
                   st.dhcp_mac(*key))
        # the container's interface is gone (it exited): a probe with its MAC in this host's netns
        sent = await dhcp.release(netns=None, ifname=probe_name(*key), lease=lease, mac=mac, probe_parent=parent)
        log.info("dhcp released endpoint=%s network=%s ip=%s from=host sent=%s", endpoint_id[:12], network,
                 lease.ip, sent)

    def on_removed(self, endpoint_id: str, network: str) -> None:
        """A Disconnect was applied (maybe committed on another host): release, if still supervised."""
        if (endpoint_id, network) in self._clients and self._nursery is not None:
            self._nursery.start_soon(self.release, endpoint_id, network)

    # --- supervision -------------------------------------------------------------------

    def on_pass(self, report: object) -> None:
        """A reconcile pass ran: the set of built endpoints may have changed."""
        self._changed.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            while True:
                await self._changed.wait()
                self._changed = trio.Event()
                self._sync(nursery)

    def _sync(self, nursery: trio.Nursery) -> None:
        nets = {i.network.vni: i.network.name for i in self._replica.state.networks()
                if i.network.mode is st.Mode.DHCP}
        wanted = {(ep.key, nets[ep.vni]): ep for ep in self._tracker.built() if ep.vni in nets}
        self._released = {key for key in self._released if key in wanted}
        for key in self._released:
            del wanted[key]
        for key, sup in list(self._clients.items()):
            if wanted.get(key) != sup.ep:  # stopped, disconnected, or rebuilt elsewhere
                sup.scope.cancel()
                del self._clients[key]
        for key, ep in wanted.items():
            if key not in self._clients:
                sup = self._clients[key] = _Client(ep, trio.CancelScope())
                nursery.start_soon(self._supervise, key, sup)

    async def _supervise(self, key: Key, sup: _Client) -> None:
        ep = sup.ep
        with sup.scope:
            try:
                sock = await dhcp.DhcpSocket.open(ep.netns, ep.ifname)
            except dhcp.DhcpError as exc:
                self._fail(key, ep, str(exc))
                return
            with sock:
                client = dhcp.DhcpClient(ep.mac, rng=self._rng, timing=self.timing)
                sup.client, sup.sock = client, sock
                fresh = self._fresh.pop(key, None)
                if fresh is not None and fresh.ip == ep.ip:
                    client.resume(fresh)
                    first = dhcp.Outbox()
                else:
                    log.info("dhcp confirming endpoint=%s network=%s ip=%s (INIT-REBOOT)", key[0][:12], key[1], ep.ip)
                    first = client.reboot(ep.ip, trio.current_time())
                await dhcp.drive(client, sock, first, lambda e: self._on_event(key, ep, e))

    def _on_event(self, key: Key, ep: LocalEndpoint, event: dhcp.Event) -> bool:
        if isinstance(event, dhcp.Bound):
            self._leases[key] = event.lease
            log.info("dhcp bound endpoint=%s network=%s ip=%s lease_s=%g renewed=%s", key[0][:12], key[1],
                     event.lease.ip, event.lease.lease_s, event.renewed)
            if key in self._failed:
                self._failed.discard(key)
                self._containers.errors.pop(key[0], None)
                self._events.note("endpoint", f"{key[0][:12]}: DHCP server confirmed {ep.ip} in {key[1]} again")
        elif isinstance(event, dhcp.Lost):
            self._leases.pop(key, None)
            self._fail(key, ep, event.reason)
        return False  # a supervisor runs until cancelled

    def _fail(self, key: Key, ep: LocalEndpoint, reason: str) -> None:
        self._failed.add(key)
        text = (f"{key[0][:12]} in dhcp network {key[1]}: {reason}; {ep.ip} is kept on its interface but is no "
                "longer leased: fix the DHCP server, or disconnect and connect again for a new lease")
        log.warning("dhcp endpoint failed endpoint=%s network=%s ip=%s reason=%r", key[0][:12], key[1], ep.ip, reason)
        self._events.note("error", text)
        self._containers.failed(key[0], INTERFACE, text, key[1])

    def status(self) -> list[dict[str, Any]]:
        """One map per supervised endpoint: its client's state and lease times (none outside trio:
        the lease times are on trio's clock)."""
        try:
            now: float | None = trio.current_time()
        except RuntimeError:
            now = None
        out = []
        for (eid, network), sup in sorted(self._clients.items()):
            client, lease = sup.client, sup.client.lease if sup.client is not None else None
            out.append({"endpoint_id": eid, "network": network, "ip": sup.ep.ip,
                        "state": client.state.value if client is not None else "starting",
                        "server": lease.server if lease else None,
                        "renew_in_s": round(lease.renew_at - now, 1) if lease and now is not None else None,
                        "expires_in_s": round(lease.expires_at - now, 1) if lease and now is not None else None})
        return out


def _mismatch(net: st.Network, lease: dhcp.Lease) -> str | None:
    """Why ``lease`` does not fit dhcp network ``net`` (its subnet and gateway), or None."""
    subnet = ipaddress.IPv4Network(net.subnet)
    if ipaddress.IPv4Address(lease.ip) not in subnet or lease.prefix_len != subnet.prefixlen:
        return (f"the DHCP server (at {lease.server}) leased {lease.ip}/{lease.prefix_len}, outside dhcp network "
                f"{net.name!r}'s subnet {net.subnet}: create the network with the subnet the server serves")
    if lease.router is not None and lease.router != net.gateway:
        return (f"the DHCP server (at {lease.server}) names router {lease.router}, but dhcp network {net.name!r}'s "
                f"gateway is {net.gateway}: create the network with --gateway {lease.router}")
    return None

"""DNS for this host's containers, and the health of their published services (issue 17, docs/dns.md).

:class:`DnsAgent` runs three loops in one nursery:

* **listeners**: for every vxlan network with a container running on this
  host, a :class:`meshd.dns.DnsServer` socket bound to the network's gateway,
  port 53, inside the tenant's router netns (IP_FREEBIND: the socket is made
  before the router leg has its address).  A container connected here gets a
  resolv.conf pointing at that gateway (written through /proc/PID/root once
  per container start).
* **health**: the checks of the entries whose container runs here: the
  container runs (its PID is known), and for ``tcp`` a TCP connect to its
  port from inside its netns, each every ``interval_s``.  Only a change of
  the recorded health is committed (SetServiceHealth).
* **reaper** (on the Raft leader only): an entry whose host is not live has
  been left out of every view at once (views are built with the live hosts);
  once it has been down for its ``ttl_s`` the leader unpublishes it.

Views are cached per network and rebuilt when the state's applied index or
the set of live hosts changes.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

import consensus
import netops
from meshd import dns
from meshd import state as st
from meshd.config import DnsConfig
from meshd.reconcile import router_name
from meshd.runtime import ContainerSpec

from ._commit import Committer
from ._replica import Replica

if TYPE_CHECKING:  # _containers imports this module (publish_from_spec)
    from ._containers import LocalContainers

log = logging.getLogger("meshd.agent.dns")

#: after a wake, wait this long so that a burst of applied entries costs one pass (seconds); it adds
#: at most this much to publish → resolvable
_COALESCE_S = 0.02

def _tcp_check(netns: str, ip: str, port: int, timeout_s: float) -> bool:
    """A TCP connect to ``ip:port`` from inside the netns at path ``netns`` succeeds."""
    try:
        with netops.in_netns(netns):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    except OSError:
        return False
    with sock:
        sock.settimeout(timeout_s)
        try:
            sock.connect((ip, port))
            return True
        except OSError:
            return False


def _write_resolv_conf(pid: int, text: str) -> bool:
    """Write the container's resolv.conf; False (nothing written) when process ``pid`` shares this
    process's mount namespace: its /etc is the host's (a bare netns sandbox, not a container)."""
    if os.stat(f"/proc/{pid}/ns/mnt").st_ino == os.stat("/proc/self/ns/mnt").st_ino:
        return False
    path = f"/proc/{pid}/root/etc/resolv.conf"
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    return True


async def publish_from_spec(spec: ContainerSpec, replica: Replica, committer: Committer) -> None:
    """A started container with ``meshd.service``/``meshd.port`` labels (or seed-002 DISCOVER/PORT):
    publish it in each of its networks (again after a restart: publishing is idempotent)."""
    svc = spec.service
    if svc is None:
        return
    for network in replica.state.networks_of(spec.container_id):
        cmd = st.PublishService(name=svc.name, network=network, endpoint_id=spec.container_id, port=svc.port,
                                check=svc.check, ttl_s=svc.ttl_s)
        try:
            result = await committer.commit(cmd)
        except Exception as exc:  # Unavailable: the container stays unpublished; said in the log
            log.warning("publish from labels failed container=%s service=%s error=%s", spec.container_name,
                        svc.name, exc)
            continue
        if isinstance(result, st.CommandError):
            log.warning("publish from labels refused container=%s service=%s error=%s", spec.container_name,
                        svc.name, result.message)


class DnsAgent:
    """See the module docstring.  ``live_hosts()`` names the hosts whose entries count now."""

    def __init__(self, *, host: str, cfg: DnsConfig, replica: Replica, containers: LocalContainers,
                 committer: Committer, live_hosts: Callable[[], frozenset[str]],
                 router_prefix: str | None = None) -> None:
        self.host = host
        self.cfg = cfg
        self._replica = replica
        self._containers = containers
        self._committer = committer
        self._live_hosts = live_hosts
        self._router_prefix = router_prefix
        self.server = dns.DnsServer(self.view_of, forwarders=dns.host_resolvers() if cfg.forward else (),
                                    forward_timeout_s=cfg.forward_timeout_s, max_forwards=cfg.max_forwards)
        self._views: dict[str, dns.View] = {}
        self._views_key: tuple[int, frozenset[str]] = (-1, frozenset())
        self._listeners: dict[tuple[str, str, str], trio.CancelScope] = {}
        self._resolv_done: dict[str, int] = {}
        self._last_check: dict[tuple[str, str, str], float] = {}
        self._down_since: dict[tuple[str, str, str], float] = {}
        self._wake = trio.Event()
        self.counters: dict[str, int] = {"listen_errors": 0, "resolv_errors": 0, "health_commits": 0,
                                         "reaped": 0, "commit_errors": 0}

    def wake(self) -> None:
        """The state or the live hosts changed: look again now."""
        self._wake.set()

    def status(self) -> dict[str, Any]:
        s = self.server.status()
        return {"listeners": sorted(f"{n}@{gw}" for _, n, gw in self._listeners), "forwarders":
                list(self.server.forwarders), "counts": s.counts, **self.counters}

    def view_of(self, network: str) -> dns.View:
        key = (self._replica.state.last_index, self._live_hosts())
        if key != self._views_key:
            self._views, self._views_key = {}, key
        view = self._views.get(network)
        if view is None:
            view = self._views[network] = dns.build_view(
                self._replica.state, network, key[1], domain=self.cfg.domain, ttl_s=self.cfg.ttl_s,
                forward=self.cfg.forward)
        return view

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            task_status.started()
            while True:
                with trio.move_on_after(self.cfg.check_tick_s):
                    await self._wake.wait()
                    await trio.sleep(_COALESCE_S)  # a burst of applied entries: one pass for all of them
                self._wake = trio.Event()
                if not self._replica.started:
                    continue
                try:
                    await self._listen(nursery)
                    await self._health(nursery)
                    await self._reap()
                except (OSError, RuntimeError) as exc:  # never let one bad step stop DNS for the host
                    log.warning("dns pass failed error=%s", exc)

    # --- listeners and resolv.conf ------------------------------------------------------

    def _wanted(self) -> set[tuple[str, str, str]]:
        """(router netns path, network, gateway) of every vxlan network with a container running here
        (by PID, or attached by netns path: the CNI plugin and the Docker driver)."""
        state = self._replica.state
        wanted: set[tuple[str, str, str]] = set()
        done: set[str] = set()  # networks decided: each costs lookups once, whatever its endpoint count
        for cid in self._containers.netns:  # running here: lookups, no scan of the host's endpoints
            for name in state.networks_of(cid):
                if name in done:
                    continue
                net = state.network_spec(name)
                if net is None or net.mode is not st.Mode.VXLAN or not net.gateway:
                    done.add(name)
                    continue
                ep = state.endpoint(cid, name)
                if ep is None or ep.host != self.host:
                    continue  # another running container may still make this network wanted here
                done.add(name)
                wanted.add((f"/run/netns/{router_name(net.tenant, **self._prefix())}", name, net.gateway))
        return wanted

    def _prefix(self) -> dict[str, str]:
        return {} if self._router_prefix is None else {"prefix": self._router_prefix}

    async def _listen(self, nursery: trio.Nursery) -> None:
        wanted = self._wanted()
        for key in [k for k in self._listeners if k not in wanted]:
            self._listeners.pop(key).cancel()
            log.info("dns stops answering network=%s at=%s", key[1], key[2])
        for key in wanted:
            if key in self._listeners:
                continue
            try:
                sock = await trio.to_thread.run_sync(
                    functools.partial(dns.open_socket, key[0], key[2], freebind=True))
            except OSError as exc:
                self.counters["listen_errors"] += 1
                if exc.errno != errno.ENOENT:
                    log.warning("dns cannot listen network=%s at=%s:53 error=%s", key[1], key[2], exc)
                continue
            scope = trio.CancelScope()
            self._listeners[key] = scope
            nursery.start_soon(self._serve, scope, sock, key[1])
            log.info("dns answers network=%s at=%s:53", key[1], key[2])
        await self._resolv_confs()

    async def _serve(self, scope: trio.CancelScope, sock: socket.socket, network: str) -> None:
        with scope:
            await self.server.serve(sock, network)

    async def _resolv_confs(self) -> None:
        state, pids = self._replica.state, self._containers.pids
        for cid in [c for c in self._resolv_done if c not in pids]:
            del self._resolv_done[cid]
        for cid, pid in [(c, p) for c, p in pids.items() if self._resolv_done.get(c) != p]:  # new ones only
            names = state.networks_of(cid)
            if not any((e := state.endpoint(cid, n)) is not None and e.host == self.host for n in names):
                continue
            nets = [state.network_spec(n) for n in names]
            gws = [n.gateway for n in nets if n is not None and n.mode is st.Mode.VXLAN and n.gateway]
            if not gws:
                continue
            text = dns.resolv_conf(gws[0], self.cfg.domain)
            try:
                if not await trio.to_thread.run_sync(_write_resolv_conf, pid, text):
                    self.counters["resolv_skipped_shared_mnt"] = self.counters.get("resolv_skipped_shared_mnt", 0) + 1
            except OSError as exc:
                self.counters["resolv_errors"] += 1
                log.debug("resolv.conf not written endpoint=%s error=%s", cid[:12], exc)
            self._resolv_done[cid] = pid

    # --- health checks ------------------------------------------------------------------

    async def _health(self, nursery: trio.Nursery) -> None:
        now = trio.current_time()
        running = self._containers.netns
        for e in self._replica.state.services():
            if e.host != self.host:
                continue
            key = (e.network, e.name, e.endpoint_id)
            if now - self._last_check.get(key, -1e9) < e.interval_s:
                continue
            self._last_check[key] = now
            netns = running.get(e.endpoint_id)
            healthy = netns is not None
            if netns is not None and e.check == "tcp":
                healthy = await trio.to_thread.run_sync(_tcp_check, netns, e.ip, e.port, min(1.0, e.interval_s / 2))
            if healthy != e.healthy:
                nursery.start_soon(self._commit, st.SetServiceHealth(
                    name=e.name, network=e.network, endpoint_id=e.endpoint_id, healthy=healthy), "health_commits")

    async def _commit(self, command: Any, counter: str) -> None:
        try:
            result = await self._committer.commit(command)
        except Exception as exc:  # Unavailable, or anything else: the next pass tries again
            self.counters["commit_errors"] += 1
            log.debug("dns commit failed command=%s error=%s", type(command).__name__, exc)
            return
        if isinstance(result, st.CommandError):
            log.debug("dns commit refused command=%s error=%s", type(command).__name__, result.message)
            return
        self.counters[counter] += 1
        log.info("%s", " ".join(f"{k}={v}" for k, v in (("committed", type(command).__name__),
                                                          ("service", command.name), ("network", command.network),
                                                          ("endpoint", (command.endpoint_id or "")[:12]))))

    # --- reaper (leader) ----------------------------------------------------------------

    async def _reap(self) -> None:
        if self._replica.raft.core.role is not consensus.Role.LEADER:
            self._down_since.clear()
            return
        now, live = trio.current_time(), self._live_hosts()
        seen = set()
        for e in self._replica.state.services():
            if e.host in live:
                continue
            key = (e.network, e.name, e.endpoint_id)
            seen.add(key)
            since = self._down_since.setdefault(key, now)
            if now - since >= e.ttl_s:
                del self._down_since[key]
                await self._commit(st.UnpublishService(name=e.name, network=e.network, endpoint_id=e.endpoint_id),
                                   "reaped")
        for key in [k for k in self._down_since if k not in seen]:
            del self._down_since[key]

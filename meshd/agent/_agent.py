"""The meshd agent: one trio nursery running every part of a host.

Theory of operation
-------------------
The agent composes small parts, each the one owner of its piece of state,
and wires their reactions; it holds no protocol or kernel logic itself:

============================  =====================================================
part                          owns
============================  =====================================================
:class:`Replica`              the Raft node and the :class:`meshd.state.NetworkState`
:class:`MemberBook`           gossip membership (VTEPs, Raft addresses)
:class:`LocalContainers`      the containers running here and their PIDs
:class:`Committer`            the one commit path (API, control socket, Docker)
:class:`Reconciler`           the one reconcile loop (coalescing, skips, repair)
:class:`EndpointTracker`      which local endpoints are up, and why not
:class:`Events`               the event stream every view reads
:class:`Autopilot`            Raft membership changes on the leader
:class:`Liveness`             whether each host's data plane counts as live
:class:`WebServer`            the web view (``api.web_port``; fed by the event stream)
============================  =====================================================

Reactions: a member event sets the Raft peers, wakes the autopilot, updates
the host's liveness and becomes an event; a liveness change (a host failed,
or only its agent is down) triggers a reconcile pass; an applied Raft entry triggers a pass
and its state changes become events; a Docker event updates the local
containers (and may commit a connect); every pass report updates the
endpoint tracker, which announces endpoints up and down.

Joining: the first host bootstraps a one-voter Raft cluster.  A host started
with join addresses joins gossip through any of them and waits: the leader's
autopilot sees it alive, adds it as a Raft learner (it catches up by snapshot
and log) and promotes it when the cluster needs voters.

A host is not its agent: when gossip declares a host's agent dead, the
other hosts keep its entries while its kernel answers an ICMP probe to its
VTEP (*agent down*), and withdraw them when it does not (*failed*); see
:mod:`~meshd.agent._liveness`.

Stopping (SIGTERM/SIGINT): a leader hands leadership to another voter, then
everything stops without leaving the cluster (``agent.leave_on_terminate``
leaves instead): the others see the agent down and keep its host's
containers reachable until it is back.  ``meshd leave`` leaves gracefully
(confirmed, so others report a *leave* and withdraw at once).  Kernel state is
left as it is: a restarted agent finds it right and changes nothing, so
containers keep their traffic.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable, Sequence
from typing import Any

import trio

import consensus
import netops
from meshd import __version__
from meshd import state as st
from meshd.api import ApiError, ControlServer, FrameError, MsgType, SchedulerApi, SchedulerService
from meshd.config import LOG_LEVELS, Config
from meshd.metrics import AgentMetrics, MetricsServer
from meshd.reconcile import HostDesired, PassKind, PassReport, Reconciler
from meshd.runtime import DockerRuntime, RuntimeWatcher
from meshd.transport import ClusterKeys, Mesh, PeerTransport, ZmqHost, load_client_keys, read_secret

from . import _autopilot as ap
from ._backend import AgentBackend
from ._commit import Committer
from ._containers import DockerListener, LocalContainers
from ._dataplane import unbuildable
from ._dhcp import DhcpLeases
from ._dns import DnsAgent
from ._endpoints import EndpointTracker
from ._events import Event, Events
from ._liveness import Gossip, HostState, Liveness, Transition
from ._local import DataDirLock, detect_advertise_address
from ._members import JoinError, MemberBook, MemberEvent
from ._mtu import UnderlayProblem, mode_overhead, underlay_problems
from ._pilot import Autopilot
from ._plugin import DriverPortsOfAgent, docker_plugin
from ._probe import DataPlaneProbe
from ._replica import Replica
from ._stats import EndpointStats
from ._status import metric_sources, status_map
from ._translate import DesiredBuilder
from ._web import web_server

log = logging.getLogger("meshd.agent")


class Agent:
    """Everything one host runs; ``await nursery.start(agent.run)`` or ``meshd agent``."""

    def __init__(self, cfg: Config, *, join: Sequence[str] = (), router_prefix: str | None = None,
                 docker: bool = True) -> None:
        self.cfg = cfg
        self.name = cfg.node_name
        self.join_addrs = tuple(join) or cfg.agent.join
        self.router_prefix = router_prefix
        self.started = time.time()
        self.events = Events()
        self.containers = LocalContainers(labels=cfg.agent.container_labels, docker=docker,
                                          netns_file=os.path.join(cfg.agent.run_dir, "netns.json"))
        self.runtime = DockerRuntime() if docker else None
        #: the desired state is folded from what changed since the last pass (see DesiredBuilder)
        self._desired_builder, self._desired_version = DesiredBuilder(), -1
        self.reconciler = Reconciler(self._desired, interval_s=cfg.dataplane.reconcile_interval_s,
                                     ready=self._wait_ready_to_reconcile)
        #: latency histograms and the collector of every status; served when api.metrics_port != 0
        self.metrics = AgentMetrics(metric_sources(self))
        self.tracker = EndpointTracker(self.name, self.events, self.reconciler.trigger,
                                       observe_attach=self.metrics.attach_seconds.observe)
        self.reconciler.listen(self._on_pass)
        self.reconciler.listen_mtu(self._on_mtu_check)
        self.stats = EndpointStats(self.name, self.tracker, self.events, cfg.api.stats_interval_s)
        d = cfg.dataplane
        self.liveness = Liveness(timeout_s=d.probe_timeout_s, grace_s=d.agent_down_grace_s,
                                 interval_s=d.probe_interval_s, agent_down_interval_s=d.agent_down_probe_interval_s)
        self.probe = DataPlaneProbe(self.liveness, cfg.dataplane.probe_interval_s, self._on_liveness)
        # made in run(): they need the data dir lock, the secret, the advertise address or the transport
        self.advertise = ""
        self.host: ZmqHost | None = None
        self._client_keys: dict[bytes, str] = {}
        self.underlay: netops.Underlay | None = None
        #: the kernel link kinds this host can create, probed at start (see :mod:`._dataplane`)
        self.dataplane: frozenset[str] = frozenset()
        self.replica: Replica | None = None
        self.members: MemberBook | None = None
        self.api: SchedulerApi | None = None
        self.control: SchedulerService | None = None
        self.autopilot: Autopilot | None = None
        self.committer: Committer | None = None
        self.dhcp: DhcpLeases | None = None
        self.dns: DnsAgent | None = None
        self._nursery: trio.Nursery | None = None
        self._underlays_told: set[tuple[str, str, int]] = set()
        self._unbuildable_told: set[tuple[str, str]] = set()

    # --- lifecycle --------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        cfg = self.cfg
        with DataDirLock(cfg.agent.data_dir):
            keys = ClusterKeys.from_secret(read_secret(cfg.agent.secret_file))
            self._client_keys = load_client_keys(cfg.api.clients_dir)  # a NAME.key there stops the start now
            self.advertise = cfg.agent.advertise_address or await trio.to_thread.run_sync(detect_advertise_address)
            self.underlay = await trio.to_thread.run_sync(netops.underlay_for, self.advertise)
            self.dataplane = await trio.to_thread.run_sync(netops.probe_link_kinds)
            host = self.host = ZmqHost(keys, cfg.transport)
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await nursery.start(host.run)
                await self._start_parts(nursery, host, keys)
                nursery.start_soon(self._signals, nursery)
                log.info("agent started name=%s advertise=%s underlay=%s mtu=%d version=%s",
                         self.name, self.advertise, self.underlay.dev, self.underlay.mtu, __version__)
                log.info("data plane: this kernel creates %s links; missing: %s",
                         ", ".join(sorted(self.dataplane)) or "no",
                         ", ".join(netops.describe_link_kind(k) for k in netops.LINK_KINDS
                                   if k not in self.dataplane) or "nothing")
                task_status.started()

    async def _start_parts(self, nursery: trio.Nursery, host: ZmqHost, keys: ClusterKeys) -> None:
        cfg = self.cfg
        assert self.underlay is not None  # run() finds it before the parts start
        raft_mesh = Mesh(host, self.name, f"tcp://{cfg.agent.bind_address}:{cfg.agent.raft_port}")
        raft_mesh.open()
        replica = self.replica = Replica(self.name, cfg, PeerTransport(raft_mesh), self)
        await replica.start(nursery, may_bootstrap=not self.join_addrs)
        members = self.members = MemberBook(host, self.name, cfg, advertise=self.advertise, version=__version__,
                                                  underlay_mtu=self.underlay.mtu, dataplane=self.dataplane)
        await nursery.start(self.probe.run)
        await nursery.start(members.run)
        nursery.start_soon(self._on_members, members.subscribe())
        if self.join_addrs:
            await members.join(self.join_addrs)
        else:
            nursery.start_soon(self._rejoin)
        committer = self.committer = Committer(replica, timeout_s=cfg.raft.propose_timeout_s)
        parent = cfg.dataplane.parent or self.underlay.dev
        dhcp = self.dhcp = DhcpLeases(host=self.name, replica=replica, containers=self.containers,
                                      tracker=self.tracker, events=self.events, parent=parent)
        await nursery.start(dhcp.run)
        await nursery.start(self.reconciler.run)
        if cfg.dns.enabled:
            self.dns = DnsAgent(host=self.name, cfg=cfg.dns, replica=replica, containers=self.containers,
                                committer=committer, live_hosts=self._live_hosts, router_prefix=self.router_prefix)
            await nursery.start(self.dns.run)
        if self.runtime is not None:
            listener = DockerListener(host=self.name, containers=self.containers, committer=committer,
                                      replica=replica, events=self.events, trigger=self.reconciler.trigger,
                                      dhcp=dhcp, dataplane=self.dataplane, parent=parent)
            nursery.start_soon(RuntimeWatcher(self.runtime, listener).run)
        backend = AgentBackend(local_host=self.name, replica=replica, committer=committer, members=members,
                               liveness=self.liveness, containers=self.containers, tracker=self.tracker,
                               runtime=self.runtime, dhcp=dhcp,
                               control=self, interface_timeout_s=cfg.api.interface_timeout_s)
        api = self.api = SchedulerApi(host, SchedulerService(backend, max_frame_bytes=cfg.api.max_frame_bytes),
                                      cfg.api, server_keys=keys.api, client_keys=self._client_keys)
        self.events.subscribe(_publisher(api))
        await nursery.start(api.run)
        self.control = SchedulerService(backend, max_frame_bytes=cfg.api.max_frame_bytes, control=True)
        await nursery.start(ControlServer(host, self.control, cfg.agent.run_dir).run)
        if cfg.api.docker_plugin and self.runtime is not None:
            ports = DriverPortsOfAgent(service=self.control, backend=backend, containers=self.containers,
                                       trigger=self.reconciler.trigger, nursery=nursery)
            await nursery.start(docker_plugin(cfg.api.docker_plugin, cfg.api.docker_plugin_dir,
                                              cfg.agent.data_dir, ports).run)
            log.info("Docker network and IPAM driver %r on %s", cfg.api.docker_plugin, cfg.api.docker_plugin_dir)
        if cfg.api.metrics_port:
            await nursery.start(MetricsServer(self.metrics.registry, cfg.api.metrics_address,
                                              cfg.api.metrics_port).run)
        if cfg.api.web_port:
            await nursery.start(web_server(self).run)
        self.autopilot = Autopilot(self.name, replica, members, self.events,
                                   ap.AutopilotConfig(fail_grace_s=cfg.agent.voter_fail_grace_s,
                                                      stable_s=cfg.agent.learner_stable_s))
        nursery.start_soon(self.autopilot.run)
        nursery.start_soon(self.stats.run)

    async def join(self, addresses: Sequence[str]) -> dict[str, Any]:
        """Join gossip through ``addresses`` (the CONTROL_JOIN request of ``meshd join``).

        A host that bootstrapped a cluster of its own which holds nothing yet
        drops that cluster first and joins as a new member; one that holds
        networks refuses (merging two clusters' state is not possible).
        """
        assert self.replica is not None and self.members is not None and self._nursery is not None
        if not self.replica.others():
            networks = self.replica.state.status().networks
            if networks:
                raise FrameError(ApiError.NOT_ALLOWED, f"this host runs its own cluster with {networks} "
                                 f"network(s); to join another one, stop the agent, remove "
                                 f"{self.cfg.agent.data_dir}/raft and run `meshd join` again", MsgType.CONTROL_JOIN)
            log.info("dropping this host's own empty one-voter cluster to join another")
            await self.replica.reset(self._nursery)
        try:
            members = await self.members.join(addresses)
        except JoinError as exc:
            raise FrameError(ApiError.UNAVAILABLE, str(exc), MsgType.CONTROL_JOIN) from None
        return {"members": members}

    async def leave(self) -> dict[str, Any]:
        """Leave gracefully and stop (the CONTROL_LEAVE request of ``meshd leave``)."""
        await self.shutdown()
        assert self._nursery is not None
        self._nursery.start_soon(self._stop_soon)
        return {"left": True}

    def set_log_level(self, level: str) -> dict[str, Any]:
        """Change this process's log level now (CONTROL_LOG_LEVEL, ``meshd log-level``); not persisted:
        a restart uses ``agent.log_level`` again."""
        if level not in LOG_LEVELS:
            raise FrameError(ApiError.INVALID_VALUE, f"log level {level!r} is unknown; use one of "
                             f"{', '.join(LOG_LEVELS)}", MsgType.CONTROL_LOG_LEVEL)
        root = logging.getLogger()
        previous = logging.getLevelName(root.level).lower()
        root.setLevel(level.upper())
        log.warning("log level changed from %s to %s (until the agent restarts)", previous, level)
        return {"level": level, "previous": previous}

    async def _stop_soon(self) -> None:
        await trio.sleep(0.2)  # let the reply go out
        assert self._nursery is not None
        self._nursery.cancel_scope.cancel()

    async def _signals(self, nursery: trio.Nursery) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                name = signal.Signals(signum).name
                if self.cfg.agent.leave_on_terminate:
                    log.info("signal=%s: leaving the cluster (agent.leave_on_terminate)", name)
                    await self.shutdown()
                else:
                    log.info("signal=%s: stopping without leaving; the other hosts keep this host's containers "
                             "reachable (`meshd leave` leaves the cluster)", name)
                    await self.shutdown(leave=False)
                nursery.cancel_scope.cancel()
                return

    async def shutdown(self, *, leave: bool = True) -> None:
        """Hand over leadership and (with ``leave``) leave gossip gracefully; bounded in time."""
        with trio.move_on_after(5):
            await self._hand_over_leadership()
            if leave and self.members is not None:
                await self.members.leave()

    async def _hand_over_leadership(self) -> None:
        if self.replica is None or not self.replica.started:
            return
        raft = self.replica.raft
        if raft.status().role != consensus.Role.LEADER:
            return
        alive = self.members.alive_names() if self.members else set()
        for target in [v for v in raft.status().voters if v != self.name]:
            if target in alive:
                try:
                    await raft.transfer_leadership(target, timeout_s=2)
                    return
                except consensus.RaftError as exc:
                    log.warning("leadership transfer failed target=%s error=%s", target, exc)

    async def _rejoin(self) -> None:
        """Restarted without --join: rejoin through the members remembered from the last run,
        again and again (backing off to a minute) while none answers and nobody found this host."""
        assert self.members is not None
        seeds = self.members.remembered()
        pause_s = 1.0
        while seeds and len(self.members.alive_names() - {self.name}) == 0:
            try:
                await self.members.join(seeds)
                return
            except JoinError as exc:
                log.warning("could not rejoin through the remembered members %s; trying again in %.0fs: %s",
                            ", ".join(seeds), pause_s, exc)
            await trio.sleep(pause_s)
            pause_s = min(60.0, pause_s * 2)

    # --- reactions ---------------------------------------------------------------------

    async def _on_members(self, events: trio.MemoryReceiveChannel[MemberEvent]) -> None:
        """Each member event is emitted and told to liveness; what scans every member (the Raft
        peers, the MTU and data-plane checks) runs once per burst of events: a host flapping in a
        large cluster sends bursts, and a scan per event made each agent's work grow as N². The
        Raft peers are scanned only for a burst that can change them (a join, an update, a leave):
        a member that fails and comes back keeps its address and connection."""
        assert self.members is not None and self.replica is not None
        async for first in events:
            burst = [first]
            while len(burst) < _MEMBER_BURST:
                try:
                    burst.append(events.receive_nowait())
                except trio.WouldBlock:
                    break
            if any(event.kind in _PEERS_CHANGE for event in burst):  # fail/suspect/alive keep the address
                self.replica.raft.set_peers(self.members.raft_peers())
            for event in burst:
                msg_type = _MEMBER_EVENTS.get(event.kind)
                self.events.emit(Event(event.kind, f"{event.name} {event.kind} ({event.address})", msg_type,
                                       {"name": event.name, "address": event.address}))
                gossip = _GOSSIP.get(event.kind)
                if gossip is not None and event.name != self.name:
                    self._on_liveness(self.liveness.on_gossip(event.name, event.address, gossip,
                                                              trio.current_time()))
                    self.probe.wake()
            if any(event.kind in ("join", "update") for event in burst):
                self._report_underlays()
                self._report_unbuildable()
            self._kick()

    def _on_liveness(self, transitions: list[Transition]) -> None:
        """A host's data plane became live or not: events, and a pass when its entries change."""
        for t in transitions:
            if t.old is None and t.new is HostState.ALIVE:
                continue  # a new member: its join event said it
            log.info("host=%s vtep=%s state=%s reason=%r", t.name, t.vtep, t.new.value, t.reason)
            msg_type = _LIVENESS_EVENTS.get(t.new)
            self.events.emit(Event(t.new.value, f"{t.name}: {t.reason}", msg_type,
                                   {"name": t.name, "address": t.vtep, "reason": t.reason}))
        if transitions:
            self.reconciler.trigger()
            if self.dns is not None:
                self.dns.wake()

    def on_role_changed(self, event: consensus.RoleChanged) -> None:
        """:class:`~meshd.agent._replica.ReplicaListener`: this host's Raft role changed."""
        self.events.note("raft", f"role={event.role.name.lower()} term={event.term} leader={event.leader}")
        self._kick()

    def on_changes(self, changes: Sequence[st.Change]) -> None:
        """:class:`~meshd.agent._replica.ReplicaListener`: entries were applied to the state."""
        for change in changes:
            self.events.emit(_change_event(change))
            if change.kind is st.ChangeKind.ENDPOINT_REMOVED and change.host == self.name and self.dhcp is not None:
                self.dhcp.on_removed(change.endpoint_id or "", change.network or "")
        if any(c.kind in (st.ChangeKind.NETWORK_CREATED, st.ChangeKind.NETWORK_UPDATED) for c in changes):
            self._report_underlays()
        self.reconciler.trigger()
        if self.dns is not None:
            self.dns.wake()

    def _live_hosts(self) -> frozenset[str]:
        """Hosts whose service entries count in DNS now (this one and those whose entries are kept)."""
        return frozenset(self.liveness.kept_vteps()) | {self.name}

    def _on_pass(self, report: PassReport) -> None:
        self.tracker.on_pass(report)
        if self.dhcp is not None:
            self.dhcp.on_pass(report)
        if report.kind is not PassKind.SKIPPED:
            self.metrics.reconcile_seconds.observe(report.duration_s)
        if report.applied:
            log.debug("reconcile applied %s", ", ".join(_describe(op) for op in report.applied))

    def _on_mtu_check(self, check: netops.MtuCheck) -> None:
        if check.full_size_passes:
            return
        problem = self.mtu_problem(check)
        self.events.emit(Event("mtu", problem["text"], MsgType.EVENT_MTU_PROBLEM, problem))

    def mtu_problem(self, check: netops.MtuCheck) -> dict[str, Any]:
        """A failed path-MTU check as the operator reads it: which host, which networks, the fix."""
        hosts = {vtep: name for name, vtep in self.liveness.kept_vteps().items()}
        host = hosts.get(check.remote_ip, check.remote_ip)
        overhead = netops.VXLAN_OVERHEAD
        assert self.underlay is not None and self.replica is not None
        nets = sorted(i.network.name for i in self.replica.state.networks()
                      if (i.network.mtu or self.underlay.mtu - overhead) + overhead == check.mtu)
        text = (f"frames of {check.mtu} bytes do not reach {host} ({check.remote_ip}): networks "
                f"{', '.join(nets) or '?'} (MTU {check.mtu - overhead}) lose every packet larger than the underlay "
                f"carries; lower their MTU (`meshd network update NAME --mtu N`, at most the underlay MTU minus "
                f"{overhead}) or raise the underlay MTU")
        return {"remote": check.remote_ip, "host": host, "frame_bytes": check.mtu, "networks": nets, "text": text}

    def underlay_problems(self) -> list[UnderlayProblem]:
        """Networks whose MTU some member's underlay cannot carry (see :mod:`._mtu`)."""
        if self.members is None or self.replica is None or not self.replica.started:
            return []
        nets = [(i.network.name, i.network.mtu, mode_overhead(i.network.mode)) for i in self.replica.state.networks()]
        return underlay_problems(nets, self.members.underlay_mtus()) if nets else []

    def _report_unbuildable(self) -> None:
        """A member joined whose kernel cannot build a network's mode (or a network was created
        while it was away): a warning and an `error` event, once per (host, network)."""
        if self.members is None or self.replica is None or not self.replica.started:
            return
        nets = [(i.network.name, i.network.mode.value) for i in self.replica.state.networks()]
        if not nets:
            return
        for host, network, text in unbuildable(nets, self.members.dataplanes()):
            if (host, network) not in self._unbuildable_told:
                self._unbuildable_told.add((host, network))
                log.warning("%s", text)
                self.events.note("error", text)

    def _report_underlays(self) -> None:
        """A member joined (or a network changed) so that a network's MTU is too large for a
        member's underlay: an event and a warning, once per (host, network, MTU)."""
        for problem in self.underlay_problems():
            new = {(problem.host, net, problem.underlay_mtu) for net in problem.networks} - self._underlays_told
            if new:
                self._underlays_told |= new
                log.warning("%s", problem.text)
                self.events.emit(Event("mtu", problem.text, MsgType.EVENT_MTU_PROBLEM, problem.as_map()))

    def _kick(self) -> None:
        if self.autopilot is not None:
            self.autopilot.wake()
        self.reconciler.trigger()

    # --- reconcile ---------------------------------------------------------------------

    def _desired(self) -> HostDesired:
        assert self.underlay is not None and self.members is not None and self.replica is not None
        changed = self.containers.changed_since(self._desired_version)
        self._desired_version = self.containers.version
        return self._desired_builder.build(
            now=trio.current_time(), containers_changed=changed, host=self.name, state=self.replica.state,
            live_vteps=self.liveness.kept_vteps(), pids=self.containers.pids, netns=self.containers.netns,
            ifnames=self.containers.ifnames, underlay_ip=self.advertise, underlay_dev=self.underlay.dev,
            underlay_mtu=self.underlay.mtu, router_prefix=self.router_prefix, parent=self.cfg.dataplane.parent or None,
            records_dir=os.path.join(self.cfg.agent.run_dir, "endpoints"), underlay_subnet=self.underlay.subnet)

    async def _wait_ready_to_reconcile(self) -> None:
        """After a restart the kernel already holds this host's data plane.  Before the
        first pass: a Raft read barrier has confirmed that the state holds every write
        committed anywhere (until a quorum answers, the kernel is left exactly as it is:
        a replica that only has its own log may lack what its containers need), Docker
        has listed the running containers (their PIDs), and gossip has found the other
        hosts (bounded), so the first pass does not tear down what is right."""
        assert self.replica is not None and self.members is not None
        timeout_s = max(5.0, self.cfg.raft.propose_timeout_s)
        warned = False
        while True:
            try:
                await self.replica.raft.read_barrier(timeout_s=timeout_s)
                break
            except consensus.RaftError:
                if not warned:
                    log.warning("no Raft quorum to confirm the state: the data plane is left as it is (running "
                                "containers keep their interfaces) until a quorum answers")
                    self.events.note("raft", "no quorum: the data plane waits, unchanged")
                    warned = True
        await self.containers.wait_listed()
        others = {e.host for e in self.replica.state.endpoints()} - {self.name}
        with trio.move_on_after(max(3.0, 10 * self.cfg.gossip.probe_interval_s)):
            while others - set(self.liveness.kept_vteps()):  # noqa: ASYNC110 (probes answer from other hosts)
                await trio.sleep(0.05)
        log.info("data plane: first reconcile pass (state at index %d, %d local containers known)",
                 self.replica.state.last_index, len(self.containers.pids))

    # --- status ------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return status_map(self)


def _publisher(api: SchedulerApi) -> Callable[[Event], None]:
    def publish(event: Event) -> None:
        if event.msg_type is not None:
            api.publish(event.msg_type, dict(event.body))
    return publish


#: most member events handled as one burst (one scan of the members for all of them)
_MEMBER_BURST = 256
#: member events that can change the Raft peers' addresses (see MemberBook.raft_peers)
_PEERS_CHANGE = frozenset({"join", "update", "leave"})
#: gossip's member events that go to the PUB socket as they are (a failed agent is told by liveness)
_MEMBER_EVENTS = {"join": MsgType.EVENT_MEMBER_JOIN, "leave": MsgType.EVENT_MEMBER_LEAVE}
_GOSSIP = {"join": Gossip.ALIVE, "alive": Gossip.ALIVE, "update": Gossip.ALIVE, "suspect": Gossip.SUSPECT,
           "fail": Gossip.DEAD, "leave": Gossip.LEFT}
_LIVENESS_EVENTS = {HostState.FAILED: MsgType.EVENT_MEMBER_FAIL, HostState.AGENT_DOWN: MsgType.EVENT_MEMBER_AGENT_DOWN}

_CHANGE_EVENTS = {st.ChangeKind.NETWORK_CREATED: MsgType.EVENT_NETWORK_CREATED,
                  st.ChangeKind.NETWORK_DELETED: MsgType.EVENT_NETWORK_DELETED,
                  st.ChangeKind.POLICY_ADDED: MsgType.EVENT_POLICY_CHANGED,
                  st.ChangeKind.POLICY_REMOVED: MsgType.EVENT_POLICY_CHANGED,
                  st.ChangeKind.SERVICE_REGISTERED: MsgType.EVENT_SERVICE_REGISTERED,
                  st.ChangeKind.SERVICE_HEALTH: MsgType.EVENT_SERVICE_HEALTH,
                  st.ChangeKind.SERVICE_REMOVED: MsgType.EVENT_SERVICE_REMOVED}


def _change_event(change: st.Change) -> Event:
    """A state change as an event: every change is in the history; some are published."""
    what = " ".join(f"{k}={v}" for k, v in (("network", change.network), ("endpoint", (change.endpoint_id or "")[:12]),
                                              ("host", change.host), ("policy", change.policy_id)) if v)
    kind = change.kind.value.split("-")[0]
    body = {"index": change.index, "change": change.kind.value, "network": change.network,
            "policy_id": change.policy_id}
    if change.service is not None:
        what += f" service={change.service}"
        body |= {"service": change.service, "endpoint_id": change.endpoint_id, "host": change.host}
    return Event(kind, f"{change.kind.value} {what} (index {change.index})", _CHANGE_EVENTS.get(change.kind), body)


def _describe(op: Any) -> str:
    """``AttachLeg(router=..., vni=1)``: an operation with its identifying fields."""
    fields = getattr(op, "__dataclass_fields__", {})
    keys = [k for k in fields if k in ("name", "vni", "key", "dev", "ip", "mac", "router", "dst")]
    return f"{type(op).__name__}({', '.join(f'{k}={getattr(op, k)!r}' for k in keys)})"

"""The meshd agent: one trio nursery running every part of a host.

Theory of operation
-------------------
Tasks (each thin; the logic lives in the parts they drive):

* transport host (ZAP handler) and the two meshes: gossip and Raft;
* gossip (:mod:`meshd.gossip`): membership; its events update the Raft peer
  addresses, trigger a reconcile pass, run the autopilot and are published
  on the scheduler PUB socket;
* Raft (:class:`consensus.RaftNode`) with :class:`meshd.state.NetworkState`
  as its state machine; every applied entry triggers a reconcile pass and is
  turned into network events from the state's change stream;
* the reconciler (:class:`meshd.reconcile.Reconciler`) builds this host's data
  plane from :func:`~meshd.agent._desired.host_desired`;
* the Docker watcher: containers with ``meshd.*`` labels are connected when
  they start and released when removed; the PIDs of local containers feed
  the desired state;
* the scheduler API, the local control socket and the metrics endpoint;
* the autopilot on the Raft leader (:mod:`meshd.agent._autopilot`).

Joining: the first host bootstraps a one-voter Raft cluster.  A host started
with join addresses joins gossip through any of them and waits: the leader's
autopilot sees it alive, adds it as a Raft learner (it catches up by snapshot
and log) and promotes it when the cluster needs voters.

Shutdown (SIGTERM/SIGINT or cancellation): a leader hands leadership to
another voter, gossip leaves gracefully (confirmed, so others report a
*leave*), then everything stops.  Kernel state is left as it is: a restarted
agent finds it right and changes nothing, so containers keep their traffic.
"""

from __future__ import annotations

import logging
import math
import shutil
import signal
import time
from collections import deque
from pathlib import Path
from typing import Any, Sequence

import trio

import consensus
import netops
from meshd import __version__
from meshd import state as st
from meshd.api import ApiError, FrameError, MsgType, SchedulerApi, SchedulerService
from meshd.api._control import ControlServer
from meshd.config import LOG_LEVELS, Config
from meshd.metrics import AgentMetrics, MetricsServer
from meshd.reconcile import HostDesired, Reconciler, plan_additions
from meshd.runtime import DockerRuntime, RuntimeWatcher
from meshd.transport import ClusterKeys, Mesh, PeerTransport, ZmqHost, load_client_keys, read_secret

from . import _autopilot as ap
from ._backend import AgentBackend
from ._containers import ContainerListener
from ._desired import host_desired
from ._local import DataDirLock, detect_advertise_address
from ._status import metric_sources
from ._members import JoinError, MemberBook

log = logging.getLogger("meshd.agent")

#: recent events kept for ``meshd top``
_EVENT_HISTORY = 50


class Agent(ContainerListener):
    """Everything one host runs; ``await nursery.start(agent.run)`` or ``meshd agent``."""

    def __init__(self, cfg: Config, *, join: Sequence[str] = (), router_prefix: str | None = None,
                 docker: bool = True) -> None:
        self.cfg = cfg
        self.name = cfg.node_name
        self.join_addrs = tuple(join) or cfg.agent.join
        self.router_prefix = router_prefix
        self.use_docker = docker
        self.state = st.NetworkState()
        self.pids: dict[str, int] = {}
        #: this host's containers: their names, and the last error that stopped an attach
        #: ({"step", "network", "error", "time"}; see _status.py, key ``attach``)
        self.container_names: dict[str, str] = {}
        self.container_errors: dict[str, dict[str, Any]] = {}
        self.events: deque[dict[str, Any]] = deque(maxlen=_EVENT_HISTORY)
        self.started = time.time()
        self.advertise = ""
        self.underlay: netops.Underlay | None = None
        self.raft: consensus.RaftNode | None = None
        self.members: MemberBook | None = None
        self.reconciler: Reconciler | None = None
        self.api: SchedulerApi | None = None
        self.host: ZmqHost | None = None
        self._control_service: SchedulerService | None = None
        self._client_keys: dict[bytes, str] = {}
        #: latency histograms and the collector of every status; served when api.metrics_port != 0
        self.metrics = AgentMetrics(metric_sources(self))
        self.runtime: DockerRuntime | None = None
        self._autopilot_wake = trio.Event()
        self._reconcile_wake = trio.Event()
        self._up: set[tuple[str, int]] = set()
        self._attach_errors: dict[tuple[str, int], str] = {}
        self._pass_done = trio.Event()
        self._passes_skipped = 0  # triggered passes with nothing new to build (see _reconcile_loop)
        self._nursery: trio.Nursery | None = None
        self._runtime_synced = trio.Event()
        self.endpoint_stats: dict[tuple[str, int], dict[str, Any]] = {}
        self._resync_pending: set[str | None] = {None}
        self._commit_at_start = 0
        self._raft_transport: PeerTransport | None = None
        self._raft_stop: tuple[trio.CancelScope, trio.Event] | None = None
        self._autopilot_cfg = ap.AutopilotConfig(fail_grace_s=cfg.agent.voter_fail_grace_s,
                                                 stable_s=cfg.agent.learner_stable_s)

    # --- lifecycle --------------------------------------------------------------------

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        cfg = self.cfg
        with DataDirLock(cfg.agent.data_dir):
            keys = ClusterKeys.from_secret(read_secret(cfg.agent.secret_file))
            self._client_keys = load_client_keys(cfg.api.clients_dir)  # a NAME.key there stops the start now
            self.advertise = cfg.agent.advertise_address or await trio.to_thread.run_sync(detect_advertise_address)
            self.underlay = await trio.to_thread.run_sync(netops.underlay_for, self.advertise)
            host = self.host = ZmqHost(keys, cfg.transport)
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await nursery.start(host.run)
                await self._start_parts(nursery, host, keys)
                nursery.start_soon(self._signals, nursery)
                log.info("agent started name=%s advertise=%s underlay=%s mtu=%d version=%s",
                         self.name, self.advertise, self.underlay.dev, self.underlay.mtu, __version__)
                task_status.started()

    async def _start_parts(self, nursery: trio.Nursery, host: ZmqHost, keys: ClusterKeys) -> None:
        cfg = self.cfg
        raft_mesh = Mesh(host, self.name, f"tcp://{cfg.agent.bind_address}:{cfg.agent.raft_port}")
        raft_mesh.open()
        self._raft_transport = PeerTransport(raft_mesh)
        await self._start_raft(nursery, may_bootstrap=not self.join_addrs)
        self.members = MemberBook(host, self.name, self.cfg, advertise=self.advertise, version=__version__)
        await nursery.start(self.members.run)
        nursery.start_soon(self._on_members, self.members.subscribe())
        if self.join_addrs:
            await self.members.join(self.join_addrs)
        else:
            nursery.start_soon(self._rejoin)
        self.reconciler = Reconciler(self._desired)
        nursery.start_soon(self._reconcile_loop)
        await self._start_runtime(nursery)
        backend = AgentBackend(agent=self, local_host=self.name, runtime=self.runtime,
                               container_labels=cfg.agent.container_labels,
                               propose_timeout_s=cfg.raft.propose_timeout_s,
                               interface_timeout_s=cfg.api.interface_timeout_s)
        service = SchedulerService(backend, max_frame_bytes=cfg.api.max_frame_bytes)
        self.api = SchedulerApi(host, service, cfg.api, server_keys=keys.api, client_keys=self._client_keys)
        await nursery.start(self.api.run)
        control = self._control_service = SchedulerService(backend, max_frame_bytes=cfg.api.max_frame_bytes,
                                                           control=True)
        await nursery.start(ControlServer(host, control, cfg.agent.run_dir).run)
        if cfg.api.metrics_port:
            await nursery.start(MetricsServer(self.metrics.registry, cfg.api.metrics_address, cfg.api.metrics_port).run)
        nursery.start_soon(self._autopilot)
        nursery.start_soon(self._endpoint_stats)

    async def _start_raft(self, nursery: trio.Nursery, *, may_bootstrap: bool) -> None:
        """Open the log and start a Raft node (with its event consumer) in its own cancel scope."""
        storage = consensus.Storage.open(Path(self.cfg.agent.data_dir) / "raft")
        self._commit_at_start = storage.hard_state.commit
        fresh = not storage.last_index() and not storage.hard_state.term
        bootstrap = [self.name] if fresh and may_bootstrap else None
        raft = consensus.RaftNode(self.name, config=self.cfg.raft, transport=self._raft_transport,
                                  storage=storage, state_machine=self.state, bootstrap=bootstrap)
        scope, closed = trio.CancelScope(), trio.Event()

        async def run(task_status=trio.TASK_STATUS_IGNORED) -> None:
            with scope:
                try:
                    async with trio.open_nursery() as inner:
                        await inner.start(raft.run)
                        inner.start_soon(self._on_raft, raft)
                        task_status.started()
                finally:
                    storage.close()
                    closed.set()

        await nursery.start(run)
        self.raft, self._raft_stop = raft, (scope, closed)
        if bootstrap:
            await raft.campaign()
            log.info("bootstrapped a new cluster with this host as its only voter")

    async def join(self, addresses: Sequence[str]) -> dict[str, Any]:
        """Join gossip through ``addresses`` (the CONTROL_JOIN request of ``meshd join``).

        A host that bootstrapped a cluster of its own which holds nothing yet
        drops that cluster first and joins as a new member; one that holds
        networks refuses (merging two clusters' state is not possible).
        """
        assert self.raft is not None and self.members is not None and self._nursery is not None
        status = self.raft.status()
        others = [n for n in (*status.voters, *status.learners) if n != self.name]
        if not others:
            if self.state.status().networks:
                raise FrameError(ApiError.NOT_ALLOWED, f"this host runs its own cluster with "
                                 f"{self.state.status().networks} network(s); to join another one, stop the "
                                 f"agent, remove {self.cfg.agent.data_dir}/raft and run `meshd join` again",
                                 MsgType.CONTROL_JOIN)
            log.info("dropping this host's own empty one-voter cluster to join another")
            scope, closed = self._raft_stop
            scope.cancel()
            await closed.wait()
            shutil.rmtree(Path(self.cfg.agent.data_dir) / "raft")
            self.state = st.NetworkState()
            await self._start_raft(self._nursery, may_bootstrap=False)
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

    async def _start_runtime(self, nursery: trio.Nursery) -> None:
        if not self.use_docker:
            return
        self.runtime = DockerRuntime()
        nursery.start_soon(RuntimeWatcher(self.runtime, self).run)

    async def _signals(self, nursery: trio.Nursery) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                log.info("signal=%s: leaving the cluster", signal.Signals(signum).name)
                await self.shutdown()
                nursery.cancel_scope.cancel()
                return

    async def shutdown(self) -> None:
        """Hand over leadership and leave gossip gracefully (bounded in time)."""
        with trio.move_on_after(5):
            await self._hand_over_leadership()
            if self.members is not None:
                await self.members.leave()

    async def _hand_over_leadership(self) -> None:
        if self.raft is None or self.raft.status().role != consensus.Role.LEADER:
            return
        voters = [v for v in self.raft.status().voters if v != self.name]
        alive = self.members.alive_names() if self.members else set()
        for target in voters:
            if target in alive:
                try:
                    await self.raft.transfer_leadership(target, timeout_s=2)
                    return
                except consensus.RaftError as exc:
                    log.warning("leadership transfer failed target=%s error=%s", target, exc)

    # --- reactions ---------------------------------------------------------------------

    async def _on_members(self, events: trio.MemoryReceiveChannel) -> None:
        assert self.members is not None and self.raft is not None
        async for event in events:
            self.raft.set_peers(self.members.raft_peers())
            self._note(event.kind, f"{event.name} {event.kind} ({event.address})")
            if self.api is not None and event.kind in _MEMBER_EVENTS:
                self.api.publish(_MEMBER_EVENTS[event.kind], {"name": event.name, "address": event.address})
            self._kick()

    async def _on_raft(self, raft: consensus.RaftNode) -> None:
        seen = self.state.last_index
        async for event in raft.subscribe():
            if isinstance(event, consensus.RoleChanged):
                self._note("raft", f"role={event.role.name.lower()} term={event.term} leader={event.leader}")
                self._kick()
                continue
            changes = self.state.changes_since(seen)
            seen = changes.last_index
            for change in changes.changes:
                self._publish_change(change)
            self._reconcile_wake.set()

    def _publish_change(self, change: st.Change) -> None:
        kind = {st.ChangeKind.NETWORK_CREATED: MsgType.EVENT_NETWORK_CREATED,
                st.ChangeKind.NETWORK_DELETED: MsgType.EVENT_NETWORK_DELETED,
                st.ChangeKind.POLICY_ADDED: MsgType.EVENT_POLICY_CHANGED,
                st.ChangeKind.POLICY_REMOVED: MsgType.EVENT_POLICY_CHANGED}.get(change.kind)
        if kind is not None and self.api is not None:
            self.api.publish(kind, {"index": change.index, "change": change.kind.value,
                                    "network": change.network, "policy_id": change.policy_id})
        if change.kind in (st.ChangeKind.NETWORK_CREATED, st.ChangeKind.NETWORK_DELETED):
            self._note("state", f"{change.kind.value} {change.network} at index {change.index}")

    def _kick(self) -> None:
        self._autopilot_wake.set()
        self._reconcile_wake.set()

    def _note(self, kind: str, text: str) -> None:
        self.events.append({"time": time.time(), "kind": str(kind), "text": text})

    # --- reconcile ---------------------------------------------------------------------

    def _desired(self):
        assert self.underlay is not None and self.members is not None
        return host_desired(host=self.name, state=self.state, live_vteps=self.members.live_vteps(),
                            pids=self.pids, underlay_ip=self.advertise, underlay_dev=self.underlay.dev,
                            underlay_mtu=self.underlay.mtu, router_prefix=self.router_prefix)

    async def _reconcile_loop(self) -> None:
        """Passes coalesced: any number of triggers during a pass cause one more pass;
        at least one pass every ``dataplane.reconcile_interval_s``.  The first pass
        waits until this host knows enough not to undo right kernel state.

        Between periodic passes the kernel is taken to match the desired state
        of the last clean pass (drift made outside meshd is repaired by the
        periodic pass): a triggered pass with the same desired state is skipped
        (most commits in a large cluster concern other hosts' networks), and
        one that only adds local endpoints to networks already built applies
        just their veths (:func:`~meshd.reconcile.plan_additions`), so an
        attach does not cost a dump of every link on the host."""
        assert self.reconciler is not None
        await self._wait_ready_to_reconcile()
        clean: HostDesired | None = None  # the desired state of the last pass without errors
        report, last_full = None, -math.inf
        interval = self.cfg.dataplane.reconcile_interval_s
        while True:
            self._reconcile_wake = trio.Event()
            desired = self._desired()
            due = trio.current_time() - last_full >= interval  # a full pass, however busy the triggers
            if not due and report is not None and desired == clean:
                self._passes_skipped += 1
            else:
                passes = self.reconciler.status().passes
                report = await self._reconcile(desired, None if due else clean)
                clean = None if report.errors else desired
                if self.reconciler.status().passes > passes:
                    last_full = trio.current_time()
            self._publish_endpoints(report, desired)
            with trio.move_on_after(max(0.0, last_full + interval - trio.current_time())):
                await self._reconcile_wake.wait()

    async def _reconcile(self, desired: HostDesired, clean: HostDesired | None) -> Any:
        """Build ``desired``: only the additions to ``clean`` when that is all that changed,
        else (or when applying them failed) a full pass."""
        assert self.reconciler is not None
        ops = None if clean is None else plan_additions(clean, desired)
        report = None if ops is None else await self.reconciler.apply_ops(ops)
        if report is None or report.errors:
            report = await self.reconciler.run_pass(desired)
        if self.reconciler.mtu_pending and self._nursery is not None:
            self._nursery.start_soon(self.reconciler.check_pending_mtu)
        self.metrics.reconcile_seconds.observe(report.duration_s)
        if report.ops:
            log.debug("reconcile applied %s", ", ".join(_describe(op) for op in report.ops))
        return report

    async def _wait_ready_to_reconcile(self) -> None:
        """After a restart the kernel already holds this host's data plane.  Before the
        first pass: the state has replayed the log up to the commit index it had, Docker
        has listed the running containers (their PIDs), and gossip has found the other
        hosts (bounded), so the first pass does not tear down what is right."""
        assert self.raft is not None and self.members is not None
        try:  # every write committed anywhere before now is in the local state
            await self.raft.read_barrier(timeout_s=max(5.0, self.cfg.raft.propose_timeout_s))
        except consensus.RaftError:
            log.warning("no Raft quorum to confirm the state: building from the local log (index %d)",
                        self._commit_at_start)
            await self.raft.wait_applied(self._commit_at_start)
        if self.runtime is not None:
            while not self._runtime_synced.is_set():
                with trio.move_on_after(10):
                    await self._runtime_synced.wait()
                if not self._runtime_synced.is_set():
                    log.warning("waiting for Docker to list containers before building interfaces")
        others = {e.host for e in self.state.endpoints()} - {self.name}
        with trio.move_on_after(max(3.0, 10 * self.cfg.gossip.probe_interval_s)):
            while others - set(self.members.live_vteps()):
                await trio.sleep(0.05)
        log.info("data plane: first reconcile pass (state at index %d, %d local containers known)",
                 self.state.last_index, len(self.pids))

    async def _rejoin(self) -> None:
        """Restarted without --join: rejoin through the members remembered from the last run."""
        assert self.members is not None
        seeds = self.members.remembered()
        if not seeds:
            return
        try:
            await self.members.join(seeds)
        except JoinError as exc:
            log.warning("could not rejoin through the remembered members (they will find this host): %s", exc)

    def _publish_endpoints(self, report: Any, desired: HostDesired) -> None:
        """Endpoint up/down events: an endpoint is up once a pass built it without an error naming it.

        ``desired`` is what that pass built (not the state now: an endpoint
        committed while the pass ran is not up yet)."""
        local = {(e.key, e.vni): e for e in desired.local}
        self._attach_errors = {}
        for key, vni in sorted(set(local) - self._up):
            ep = local[key, vni]
            failed = [e for e in report.errors if ep.host_if in e or key[:12] in e]
            if failed:
                self._attach_errors[key, vni] = failed[0]
                continue
            self._up.add((key, vni))
            if self.api is not None:
                self.api.publish(MsgType.EVENT_ENDPOINT_UP, {"endpoint_id": key, "vni": vni, "ip": ep.ip,
                                                             "mac": ep.mac, "host": self.name})
        for key, vni in sorted(self._up - set(local)):
            self._up.discard((key, vni))
            if self.api is not None:
                self.api.publish(MsgType.EVENT_ENDPOINT_DOWN, {"endpoint_id": key, "vni": vni, "host": self.name})
        self._pass_done.set()
        self._pass_done = trio.Event()

    async def wait_endpoint_up(self, endpoint_id: str, vni: int, timeout_s: float) -> str | None:
        """Wait until this host built the endpoint's interface: None, or why it is not up."""
        start = trio.current_time()
        self._reconcile_wake.set()  # a pass after the commit (applying it already asked for one)
        with trio.move_on_after(timeout_s):
            while True:
                if (endpoint_id, vni) in self._up:
                    self.metrics.attach_seconds.observe(trio.current_time() - start)
                    return None
                if (endpoint_id, vni) in self._attach_errors:
                    return self._attach_errors[endpoint_id, vni]
                await self._pass_done.wait()
        if endpoint_id not in self.pids:
            return f"container {endpoint_id[:12]} is not running on {self.name} (no PID known)"
        return f"the interface was not built within {timeout_s:.0f}s; see the agent log"

    async def _endpoint_stats(self) -> None:
        """Every ``api.stats_interval_s``: rx/tx bytes and rates of local endpoints, read from
        netlink (host-side veth: its tx is the container's rx), kept for ``meshd top`` and
        published as EVENT_ENDPOINT_STATS."""
        prev: dict[str, tuple[float, Any]] = {}
        while True:
            await trio.sleep(self.cfg.api.stats_interval_s)
            if self.underlay is None or self.members is None:
                continue
            local = {e.host_if: e for e in self._desired().local}
            found = await trio.to_thread.run_sync(netops.counters, list(local))
            now = trio.current_time()
            stats: dict[tuple[str, int], dict[str, Any]] = {}
            for name, c in found.items():
                ep = local[name]
                then, old = prev.get(name, (now, c))
                dt = max(now - then, 1e-6)
                entry = {"endpoint_id": ep.key, "vni": ep.vni, "ip": ep.ip, "host": self.name,
                         "rx_bytes": c.tx_bytes, "tx_bytes": c.rx_bytes,
                         "rx_bps": (c.tx_bytes - old.tx_bytes) / dt if then != now else 0.0,
                         "tx_bps": (c.rx_bytes - old.rx_bytes) / dt if then != now else 0.0}
                stats[ep.key, ep.vni] = entry
                prev[name] = (now, c)
                if self.api is not None:
                    self.api.publish(MsgType.EVENT_ENDPOINT_STATS, entry)
            self.endpoint_stats = stats

    # --- autopilot ---------------------------------------------------------------------

    async def _autopilot(self) -> None:
        assert self.raft is not None and self.members is not None
        while True:
            with trio.move_on_after(1.0):
                await self._autopilot_wake.wait()
            self._autopilot_wake = trio.Event()
            self.raft.set_peers(self.members.raft_peers())  # also heals a missed member event
            status = self.raft.status()
            if status.role != consensus.Role.LEADER:
                continue
            lags = {p.id: status.last_index - p.match for p in status.peers}
            lags[self.name] = 0
            action = ap.decide(leader=self.name, voters=status.voters, learners=status.learners,
                               members=self.members.views(lags, (*status.voters, *status.learners)),
                               now=trio.current_time(), cfg=self._autopilot_cfg)
            if action is not None:
                await self._carry_out(action)

    async def _carry_out(self, action: ap.Action) -> None:
        assert self.raft is not None
        op = {ap.Op.ADD_LEARNER: self.raft.add_learner, ap.Op.PROMOTE: self.raft.promote,
              ap.Op.REMOVE: self.raft.remove}[action.op]
        try:
            await op(action.node)
        except consensus.RaftError as exc:
            log.info("autopilot step failed op=%s node=%s error=%s", action.op.value, action.node, exc)
            return
        log.info("autopilot op=%s node=%s reason=%r", action.op.value, action.node, action.reason)
        self._note("raft", f"{action.op.value} {action.node}: {action.reason}")
        self._autopilot_wake.set()

    # --- status ------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        from ._status import status_map

        return status_map(self)


def _describe(op: Any) -> str:
    """``AttachLeg(router=..., vni=1)``: an operation with its identifying fields."""
    fields = getattr(op, "__dataclass_fields__", {})
    keys = [k for k in fields if k in ("name", "vni", "key", "dev", "ip", "mac", "router", "dst")]
    return f"{type(op).__name__}({', '.join(f'{k}={getattr(op, k)!r}' for k in keys)})"


_MEMBER_EVENTS = {"join": MsgType.EVENT_MEMBER_JOIN, "fail": MsgType.EVENT_MEMBER_FAIL,
                  "leave": MsgType.EVENT_MEMBER_LEAVE}

"""Prometheus metrics: component status snapshots exposed as text over HTTP.

Theory of operation
-------------------
Components do not update metric objects; each has ``status()`` or
``statistics()`` returning a frozen dataclass (STYLE §9).  At scrape time
:class:`AgentCollector` (a prometheus_client custom collector) calls each
*source* once and turns the snapshots into the metric families of
:data:`CATALOGUE`: each metric has one fixed name, type, help text and label
set, following the Prometheus conventions (counters end in ``_total``, units
are base units in the name — ``_seconds``, ``_bytes`` —, a label instead of
one series name per value).  The two latency histograms are ordinary
``prometheus_client.Histogram`` objects in the same registry.

:class:`AgentMetrics` always exists, also when ``api.metrics_port = 0``
disables the HTTP endpoint: the agent observes latencies without asking
whether anybody will read them.

:class:`MetricsServer` answers ``GET /metrics`` with the text exposition
format, as a trio task (no extra thread).  Requests are small and served one
at a time; anything but ``GET /metrics`` gets 404.

docs/operators-guide.md lists every metric; a test keeps that list equal to
:func:`metric_names`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import trio
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.core import Metric as Family
from prometheus_client.registry import Collector

log = logging.getLogger("meshd.metrics")

_MAX_REQUEST_BYTES = 8192
COUNTER, GAUGE = "counter", "gauge"

#: a source name -> what its reader returns (a status dataclass, a map, a list of rows), or None
Sources = Mapping[str, Callable[[], Any]]
Samples = Iterable[tuple[tuple[str, ...], float]]


@dataclass(frozen=True)
class Metric:
    """One metric family: ``name`` without the ``_total`` a counter gets in the exposition."""

    name: str
    kind: str
    help: str
    read: Callable[[Mapping[str, Any]], Samples]
    labels: tuple[str, ...] = ()


def _get(obj: Any, path: str) -> Any:
    for part in path.split("."):
        if obj is None:
            return None
        obj = obj.get(part) if isinstance(obj, Mapping) else getattr(obj, part, None)
    return obj


def field(source: str, path: str, scale: float = 1.0) -> Callable[[Mapping[str, Any]], Samples]:
    """A reader of one number at ``path`` (dotted) in a source's snapshot; nothing while the
    source is absent.  A counter map (``collections.Counter``) without the key reads 0."""
    def read(snap: Mapping[str, Any]) -> Samples:
        obj = snap.get(source)
        value = _get(obj, path)
        if value is None and isinstance(obj, Mapping) and "." not in path:
            value = 0
        if isinstance(value, (int, float)):
            yield (), float(value) * scale

    return read


def by_label(source: str, mapping: Mapping[str, str]) -> Callable[[Mapping[str, Any]], Samples]:
    """One sample per ``{label value: path}`` entry (e.g. members by state)."""
    def read(snap: Mapping[str, Any]) -> Samples:
        for label, path in mapping.items():
            value = _get(snap.get(source), path)
            if isinstance(value, (int, float)):
                yield (label,), float(value)

    return read


def _counts(source: str, keys: Mapping[str, str] | None = None) -> Callable[[Mapping[str, Any]], Samples]:
    """A ``Counter`` of outcomes as one sample per outcome (``keys`` renames/filters them)."""
    def read(snap: Mapping[str, Any]) -> Samples:
        counts = snap.get(source) or {}
        for key, value in sorted(counts.items()):
            label = key if keys is None else keys.get(key)
            if label is not None:
                yield (label,), float(value)

    return read


def _admitted(snap: Mapping[str, Any]) -> Samples:
    for domain, count in sorted((_get(snap.get("transport"), "security.admitted_by_domain") or {}).items()):
        yield (domain,), float(count)


def _refusals(snap: Mapping[str, Any]) -> Samples:
    for reason, count in sorted((_get(snap.get("transport"), "security.refused_by_reason") or {}).items()):
        yield (reason,), float(count)


def _api_outcomes(snap: Mapping[str, Any]) -> Samples:
    for socket in ("scheduler", "control"):
        for key, value in sorted((snap.get(f"{socket}_service") or {}).items()):
            yield (socket, key), float(value)


def _last_errors(snap: Mapping[str, Any]) -> Samples:
    if snap.get("reconcile") is not None:
        yield (), float(len(snap["reconcile"].get("last_errors") or ()))


def _raft_role(snap: Mapping[str, Any]) -> Samples:
    raft = snap.get("raft")
    if raft is not None:
        yield (), float(getattr(raft.role, "name", str(raft.role)).lower() == "leader")


def _raft_has_leader(snap: Mapping[str, Any]) -> Samples:
    raft = snap.get("raft")
    if raft is not None:
        yield (), float(raft.leader is not None)


def _raft_sizes(attr: str) -> Callable[[Mapping[str, Any]], Samples]:
    def read(snap: Mapping[str, Any]) -> Samples:
        raft = snap.get("raft")
        if raft is not None:
            yield (), float(len(getattr(raft, attr)))

    return read


def _follower_lag(snap: Mapping[str, Any]) -> Samples:
    raft = snap.get("raft")
    if raft is None:
        return
    for peer in getattr(raft, "peers", ()) or ():
        yield (peer.id,), float(raft.last_index - peer.match)


def _endpoint(key: str) -> Callable[[Mapping[str, Any]], Samples]:
    def read(snap: Mapping[str, Any]) -> Samples:
        for row in snap.get("endpoints") or ():
            if key in row:
                yield tuple(str(row[label]) for label in ENDPOINT_LABELS), float(row[key])

    return read


#: the labels of per-endpoint series
ENDPOINT_LABELS = ("container", "container_id", "network", "tenant")
#: counters of the scheduler API server (the rest of its counters are request outcomes)
_SERVER_KEYS = {"requests": "router", "published_requests": "sub"}

CATALOGUE: tuple[Metric, ...] = (
    # transport: CURVE/ZAP admission of inter-host and scheduler connections
    Metric("meshd_transport_connections_admitted", COUNTER,
           "Connections the ZAP handler admitted, by ZAP domain: meshd (other hosts' gossip and Raft: "
           "a steady climb means hosts keep reconnecting) and meshd-api (schedulers).",
           _admitted, ("domain",)),
    Metric("meshd_transport_connections_refused", COUNTER,
           "Connections refused, by likely cause (plaintext, hung_up, wrong_server_key, unknown_client_key, "
           "handshake_failed); the log names each refused address once, with the fix.",
           _refusals, ("reason",)),
    Metric("meshd_transport_handshake_failures", COUNTER,
           "CURVE handshakes that failed before the ZAP handler was asked (another cluster secret, "
           "a plaintext client).", field("transport", "handshake_failures")),
    # gossip (SWIM + Lifeguard)
    Metric("meshd_gossip_members", GAUGE, "Gossip members by state, as this host sees them.",
           by_label("gossip", {"alive": "gossip.members_alive", "suspect": "gossip.members_suspect",
                               "failed": "gossip.members_dead", "left": "gossip.members_left"}), ("state",)),
    Metric("meshd_gossip_health_score", GAUGE,
           "Lifeguard local health: 0 is healthy; higher means this host is slow and probes less eagerly.",
           field("gossip", "gossip.health_score")),
    Metric("meshd_gossip_incarnation", GAUGE, "This member's incarnation number (grows when it refutes a "
           "suspicion).", field("gossip", "gossip.incarnation")),
    Metric("meshd_gossip_queued_updates", GAUGE, "Membership updates waiting to be piggybacked.",
           field("gossip", "gossip.queued_updates")),
    Metric("meshd_gossip_probes", COUNTER, "Direct probes sent.", field("gossip", "gossip.probes")),
    Metric("meshd_gossip_indirect_probes", COUNTER, "Indirect probes requested through other members.",
           field("gossip", "gossip.indirect_probes")),
    Metric("meshd_gossip_probe_failures", COUNTER, "Probes that got no ack (the member became suspect).",
           field("gossip", "gossip.probe_failures")),
    Metric("meshd_gossip_late_ticks", COUNTER, "Gossip timer ticks that ran more than a probe timeout late "
           "(this host's loop was starved of CPU; each one raises the health score).",
           field("gossip", "gossip.late_ticks")),
    Metric("meshd_gossip_refutations", COUNTER, "Suspicions of this host it refuted.",
           field("gossip", "gossip.refutations")),
    Metric("meshd_gossip_messages_received", COUNTER, "Gossip messages received.",
           field("gossip", "gossip.messages_in")),
    Metric("meshd_gossip_messages_sent", COUNTER, "Gossip messages sent.", field("gossip", "gossip.messages_out")),
    Metric("meshd_gossip_messages_dropped", COUNTER, "Gossip messages dropped (not for this member, "
           "or the peer was not connected).", field("gossip", "gossip.dropped")),
    Metric("meshd_gossip_received_bytes", COUNTER, "Gossip payload bytes received.",
           field("gossip", "transport.received_bytes")),
    Metric("meshd_gossip_sent_bytes", COUNTER, "Gossip payload bytes sent.", field("gossip", "transport.sent_bytes")),
    Metric("meshd_gossip_bad_frames", COUNTER, "Gossip frames dropped: malformed (framing) or undecodable "
           "(not a gossip message).",
           by_label("gossip", {"malformed": "transport.malformed", "undecodable": "transport.undecodable"}),
           ("kind",)),
    # Raft
    Metric("meshd_raft_term", GAUGE, "Current Raft term.", field("raft", "term")),
    Metric("meshd_raft_is_leader", GAUGE, "1 when this host is the Raft leader.", _raft_role),
    Metric("meshd_raft_has_leader", GAUGE, "1 when this host knows a leader (0: writes are refused).",
           _raft_has_leader),
    Metric("meshd_raft_commit_index", GAUGE, "Highest log index known committed.", field("raft", "commit")),
    Metric("meshd_raft_applied_index", GAUGE, "Highest log index applied to the network state.",
           field("raft", "applied")),
    Metric("meshd_raft_last_index", GAUGE, "Last index of the local log.", field("raft", "last_index")),
    Metric("meshd_raft_snapshot_index", GAUGE, "Log index of the last snapshot.", field("raft", "snapshot_index")),
    Metric("meshd_raft_voters", GAUGE, "Voters in the Raft configuration.", _raft_sizes("voters")),
    Metric("meshd_raft_learners", GAUGE, "Learners in the Raft configuration.", _raft_sizes("learners")),
    Metric("meshd_raft_follower_lag_entries", GAUGE, "Entries each follower is behind (on the leader only).",
           _follower_lag, ("peer",)),
    Metric("meshd_raft_pending_proposals", GAUGE, "Proposals waiting for their commit.",
           field("raft", "pending_proposals")),
    Metric("meshd_raft_fsyncs", COUNTER, "fsync calls of the Raft log.", field("raft", "fsyncs")),
    Metric("meshd_raft_dropped_frames", COUNTER, "Raft frames dropped (undecodable or not for this node).",
           field("raft", "dropped_frames")),
    # the replicated network state
    Metric("meshd_state_networks", GAUGE, "Tenant networks.", field("state", "networks")),
    Metric("meshd_state_endpoints", GAUGE, "Endpoints in all networks, all hosts.", field("state", "endpoints")),
    Metric("meshd_state_hosts", GAUGE, "Hosts holding endpoints.", field("state", "hosts")),
    Metric("meshd_state_stale_hosts", GAUGE, "Hosts marked stale.", field("state", "stale_hosts")),
    Metric("meshd_state_policies", GAUGE, "Isolation policies.", field("state", "policies")),
    Metric("meshd_state_commands_applied", COUNTER, "State commands applied (every host applies every one).",
           field("state", "commands_applied")),
    Metric("meshd_state_commands_rejected", COUNTER, "State commands the state refused when it applied them "
           "(each cost a log entry; most refusals are answered before, see meshd_commit_requests).",
           field("state", "commands_rejected")),
    Metric("meshd_state_undecodable_commands", COUNTER, "Log entries the state could not decode.",
           field("state", "undecodable_commands")),
    # the data plane
    Metric("meshd_reconcile_passes", COUNTER, "Full reconcile passes (kernel dump, plan, apply).",
           field("reconcile", "passes")),
    Metric("meshd_reconcile_passes_skipped", COUNTER, "Triggered passes skipped: nothing new for this host.",
           field("reconcile", "passes_skipped")),
    Metric("meshd_reconcile_additions", COUNTER, "Passes that only added local endpoints (no kernel dump).",
           field("reconcile", "additions_applied")),
    Metric("meshd_reconcile_operations", COUNTER, "Kernel operations applied.", field("reconcile", "ops_applied")),
    Metric("meshd_reconcile_errors", COUNTER, "Kernel operations that failed (the log names each).",
           field("reconcile", "errors_total")),
    Metric("meshd_reconcile_last_errors", GAUGE, "Errors of the last pass (0: the data plane matches the state).",
           _last_errors),
    Metric("meshd_reconcile_mtu_checks", COUNTER, "Path-MTU self-checks of tunnels (a full-size frame to each "
           "new remote VTEP).", field("reconcile", "mtu_checks")),
    Metric("meshd_reconcile_mtu_failures", COUNTER, "Path-MTU self-checks of tunnels that failed.",
           field("reconcile", "mtu_failures")),
    Metric("meshd_reconcile_mtu_postponed", COUNTER, "Path-MTU self-checks put back because their ping did not "
           "finish within 10 s (an overloaded host); each is tried again after the next pass.",
           field("reconcile", "mtu_postponed")),
    Metric("meshd_reconcile_mtu_problems", GAUGE, "MTU problems now: remote VTEPs that a network's full-size frames "
           "do not reach (path-MTU check), and members whose advertised underlay MTU is too small for a network "
           "(meshd status names the host, the networks and the fix).",
           field("reconcile", "mtu_problems")),
    Metric("meshd_reconcile_last_pass_duration_seconds", GAUGE, "Duration of the last full pass.",
           field("reconcile", "last_pass_ms", scale=0.001)),
    # the one commit path (scheduler API, control socket, Docker)
    Metric("meshd_commit_requests", COUNTER, "State commands by outcome: committed, rejected (by the log), "
           "refused_locally (refused on the local replica: no log entry), unavailable (no quorum or timeout).",
           _counts("commit"), ("outcome",)),
    # the scheduler API and the control socket
    Metric("meshd_api_requests", COUNTER, "Requests by socket (scheduler, control) and outcome (committed, "
           "rejected, queries, deduplicated, error_<code>).", _api_outcomes, ("socket", "outcome")),
    Metric("meshd_api_frames_received", COUNTER, "Frames received on the scheduler ROUTER and SUB sockets.",
           _counts("scheduler_server", _SERVER_KEYS), ("socket",)),
    Metric("meshd_api_events_published", COUNTER, "Events published on the PUB socket.",
           field("scheduler_server", "events_published")),
    Metric("meshd_api_events_dropped", COUNTER, "Events dropped (PUB queue full).",
           field("scheduler_server", "events_dropped")),
    Metric("meshd_api_replies_dropped", COUNTER, "Replies dropped (the client went away or is too slow).",
           field("scheduler_server", "replies_dropped")),
    # this host's endpoints
    Metric("meshd_endpoint_receive_bytes", COUNTER, "Bytes the container received on this interface (host-side "
           "veth counters: they restart from 0 when the interface is rebuilt).", _endpoint("rx_bytes"),
           ENDPOINT_LABELS),
    Metric("meshd_endpoint_transmit_bytes", COUNTER, "Bytes the container sent on this interface.",
           _endpoint("tx_bytes"), ENDPOINT_LABELS),
)

#: latency buckets, seconds: 1 ms .. 10 s
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
HISTOGRAMS = {
    "meshd_reconcile_pass_duration_seconds": "Duration of one reconcile pass (full or additions only).",
    "meshd_endpoint_attach_duration_seconds": "A connect committed to its interface up, for connects received "
                                              "on the container's own host.",
}


def metric_names() -> dict[str, str]:
    """``{exposed name: type}`` of every metric (counters with their ``_total``)."""
    out = {m.name + ("_total" if m.kind == COUNTER else ""): m.kind for m in CATALOGUE}
    return out | {name: "histogram" for name in HISTOGRAMS}


class AgentCollector(Collector):
    """Reads every source once per scrape and yields the families of :data:`CATALOGUE`."""

    def __init__(self, sources: Sources) -> None:
        self.sources = dict(sources)
        self._failed: set[str] = set()

    def snapshot(self) -> dict[str, Any]:
        snap: dict[str, Any] = {}
        for name, read in self.sources.items():
            try:
                snap[name] = read()
            except Exception:  # a broken source must not break the scrape; logged once
                if name not in self._failed:
                    self._failed.add(name)
                    log.exception("metrics source failed source=%s (its metrics are left out)", name)
        return snap

    def collect(self) -> Iterator[Family]:
        snap = self.snapshot()
        for metric in CATALOGUE:
            family_type = CounterMetricFamily if metric.kind == COUNTER else GaugeMetricFamily
            family = family_type(metric.name, metric.help, labels=metric.labels)
            for labels, value in metric.read(snap):
                family.add_metric(list(labels), value)
            yield family  # also without samples (no follower yet): HELP and TYPE say it exists


class AgentMetrics:
    """The agent's registry: :class:`AgentCollector` over ``sources`` plus the latency histograms.

    It exists whether or not metrics are served (``api.metrics_port = 0``):
    observing a latency never depends on the configuration.
    """

    def __init__(self, sources: Sources) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(AgentCollector(sources))
        self.reconcile_seconds, self.attach_seconds = (
            Histogram(name, doc, buckets=_BUCKETS, registry=self.registry) for name, doc in HISTOGRAMS.items())

    def exposition(self) -> bytes:
        """The text exposition format, as ``GET /metrics`` returns it."""
        return generate_latest(self.registry)


class MetricsServer:
    """``GET /metrics`` over HTTP/1.0 on ``address:port``, as a trio task."""

    def __init__(self, registry: CollectorRegistry, address: str, port: int) -> None:
        self.registry = registry
        self.address = address
        self.port = port

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(self.port, host=self.address)
        self.port = listeners[0].socket.getsockname()[1]
        log.info("metrics listening address=%s port=%d", self.address, self.port)
        task_status.started()
        await trio.serve_listeners(self._serve, listeners)

    async def _serve(self, stream: trio.SocketStream) -> None:
        try:
            with trio.move_on_after(5):
                request = b""
                while b"\r\n\r\n" not in request and len(request) < _MAX_REQUEST_BYTES:
                    chunk = await stream.receive_some(4096)
                    if not chunk:
                        break
                    request += chunk
                first = request.split(b"\r\n", 1)[0].split()
                if first[:2] == [b"GET", b"/metrics"]:
                    body = generate_latest(self.registry)
                    await _respond(stream, b"200 OK", body, b"text/plain; version=0.0.4; charset=utf-8")
                else:
                    await _respond(stream, b"404 Not Found", b"only GET /metrics is served here\n", b"text/plain")
        except trio.BrokenResourceError:
            pass  # the scraper hung up; nothing to answer
        finally:
            await stream.aclose()


async def _respond(stream: trio.SocketStream, status: bytes, body: bytes, content_type: bytes) -> None:
    head = b"HTTP/1.0 " + status + b"\r\nContent-Type: " + content_type + \
        b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n"
    await stream.send_all(head + body)

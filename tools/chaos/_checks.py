"""The invariants of a chaos run and their checkers (pure: data in, counts and findings out).

Each invariant counts its checks and its violations in a :class:`Tally`; the
runner feeds it what it observed (API replies, replicas, kernels, probes,
pings, member events) together with what it did (the fault windows).
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from tools.chaos._schedule import AGENT_FAULTS, CUT, CUT_FAULTS, KILL, Timing
from tools.chaos._topology import Probe

LOST = "acknowledged allocations lost"
DUPLICATES = "duplicate IPs / MACs / VNIs"
KERNEL = "kernel FDB/neighbour/devices vs state"
LEAKS = "leaked devices, routers, nft elements"
ISOLATION = "isolation matrix (cross-tenant, policies)"
PING_HEALTHY = "ping loss, healthy pairs"
PING_AGENT = "ping loss, agent down (issue 13 item 1)"
PING_AFTER = "ping loss, after recovery time (items 1, 3)"
FALSE_FAILED = "false FAILED (issue 13 item 2)"
CRASHED = "agents that exited unasked or hung"
INVARIANTS = (LOST, DUPLICATES, KERNEL, LEAKS, ISOLATION, PING_HEALTHY, PING_AGENT, PING_AFTER, FALSE_FAILED,
              CRASHED)
MAX_DETAILS = 25  # findings kept per invariant (all are counted)
AFTER_HORIZON_S = 30.0  # a loss this long after a fault of the pair's host is still blamed on it


@dataclass
class Tally:
    """Checks and violations per invariant, with the first findings of each."""

    checks: collections.Counter = field(default_factory=collections.Counter)
    violations: collections.Counter = field(default_factory=collections.Counter)
    details: dict[str, list[str]] = field(default_factory=lambda: collections.defaultdict(list))

    def add(self, invariant: str, checks: int, findings: Iterable[str] = (), violations: int | None = None) -> None:
        """Count ``checks`` checks of ``invariant`` and its violations: one per finding, unless
        ``violations`` says how many the findings stand for (one finding per window of lost pings)."""
        if invariant not in INVARIANTS:
            raise ValueError(f"unknown invariant {invariant!r}")
        findings = list(findings)
        self.checks[invariant] += checks
        self.violations[invariant] += len(findings) if violations is None else violations
        room = MAX_DETAILS - len(self.details[invariant])
        self.details[invariant].extend(findings[:max(room, 0)])

    def rows(self) -> list[tuple[str, int, int]]:
        return [(inv, self.checks[inv], self.violations[inv]) for inv in INVARIANTS]

    def ok(self, invariants: Iterable[str] = INVARIANTS) -> bool:
        return all(self.violations[i] == 0 for i in invariants)


# ---------------------------------------------------------------- acknowledged operations
ACKED, REFUSED, AMBIGUOUS = "acked", "refused", "ambiguous"


@dataclass(frozen=True, slots=True)
class Op:
    at_s: float
    op: str  # connect, disconnect, create, delete
    outcome: str
    ip: str | None = None
    note: str = ""

    def __str__(self) -> str:
        ip = f" {self.ip}" if self.ip else ""
        return f"{self.op}{ip} {self.outcome}{' ' + self.note if self.note else ''} at {self.at_s:.1f}s"


class Ledger:
    """Every API write the runner made and how it ended, per endpoint and per network.

    An *acknowledged* operation (an ok reply) must hold in the final state
    unless a later one undoes it: an acked connect's address is there, an
    acked disconnect's endpoint is not, an acked create's network exists,
    a deleted network's endpoints are gone. A refused request (a definite
    error reply) changed nothing. After an *ambiguous* one (timeout, no
    leader, interface not built in time) the outcome is unknown until the
    next acknowledged operation, so that key is not judged meanwhile.
    """

    def __init__(self) -> None:
        self.endpoints: dict[tuple[str, str], list[Op]] = collections.defaultdict(list)
        self.networks: dict[str, list[Op]] = collections.defaultdict(list)

    def endpoint(self, container_id: str, network: str, op: Op) -> None:
        self.endpoints[(container_id, network)].append(op)

    def network(self, name: str, op: Op) -> None:
        self.networks[name].append(op)

    def believed_connected(self, container_id: str, network: str) -> bool | None:
        """What the last informative reply says (None: unknown), for choosing the next toggle."""
        for op in reversed(self.endpoints.get((container_id, network), [])):
            if op.outcome == AMBIGUOUS:
                return None
            if op.outcome == ACKED:
                return op.op == "connect"
            if op.note in ("already connected", "unknown endpoint"):
                return op.note == "already connected"
        return False

    def expected_endpoints(self) -> dict[tuple[str, str], str | None]:
        """``{(container, network): ip, or None for 'must be absent'}`` of the judgeable keys."""
        deleted_at = {name: last.at_s for name, ops in self.networks.items()
                      if (last := _last_informative(ops)) is not None and last.op == "delete"}
        out: dict[tuple[str, str], str | None] = {}
        for key, ops in self.endpoints.items():
            last = _last_informative(ops)
            if last is None:
                continue
            if key[1] in deleted_at and deleted_at[key[1]] >= last.at_s:
                out[key] = None  # the network's delete (force) removed it
            else:
                out[key] = last.ip if last.op == "connect" else None
        return out

    def expected_networks(self) -> dict[str, bool]:
        out = {}
        for name, ops in self.networks.items():
            last = _last_informative(ops)
            if last is not None:
                out[name] = last.op == "create"
        return out

    def history(self, key: tuple[str, str]) -> str:
        return "; ".join(str(op) for op in self.endpoints.get(key, []))


def _last_informative(ops: Sequence[Op]) -> Op | None:
    """The last acked op, or None when an ambiguous one came after it (refusals change nothing)."""
    for op in reversed(ops):
        if op.outcome == AMBIGUOUS:
            return None
        if op.outcome == ACKED:
            return op
    return None


def check_ledger(tally: Tally, ledger: Ledger, replicas: Mapping[str, tuple[list[dict], list[dict]]]) -> None:
    """Acknowledged operations against every host's replica ``{host: (networks, endpoints)}``."""
    want_eps, want_nets = ledger.expected_endpoints(), ledger.expected_networks()
    for host, (networks, endpoints) in sorted(replicas.items()):
        have = {(e["endpoint_id"], e["network"]): e["ip"] for e in endpoints}
        findings = []
        for key, ip in sorted(want_eps.items()):
            got = have.get(key)
            if ip is not None and got != ip:
                what = "missing" if got is None else f"has {got}"
                findings.append(f"{host}: acked {key[0][:12]} in {key[1]} at {ip}, {what} ({ledger.history(key)})")
            elif ip is None and got is not None:
                findings.append(f"{host}: {key[0][:12]} in {key[1]} was disconnected, still at {got} "
                                f"({ledger.history(key)})")
        names = {n["name"] for n in networks}
        for name, present in sorted(want_nets.items()):
            if present != (name in names):
                findings.append(f"{host}: network {name} {'missing' if present else 'deleted but present'}")
        tally.add(LOST, len(want_eps) + len(want_nets), findings)


def check_duplicates(tally: Tally, host: str, networks: list[dict], endpoints: list[dict]) -> None:
    """No two networks share a VNI or name; no two endpoints of a network share an IP or a MAC."""
    findings = [f"{host}: VNI {v} held by {n} networks" for v, n in _dups(n["vni"] for n in networks)]
    findings += [f"{host}: network name {v} appears {n} times" for v, n in _dups(n["name"] for n in networks)]
    for what in ("ip", "mac"):
        pairs = ((e["network"], e[what]) for e in endpoints)
        findings += [f"{host}: {what.upper()} {v[1]} held {n} times in {v[0]}" for v, n in _dups(pairs)]
    tally.add(DUPLICATES, len(networks) + 2 * len(endpoints), findings)


def _dups(values: Iterable) -> list[tuple]:
    return sorted((v, n) for v, n in collections.Counter(values).items() if n > 1)


# ---------------------------------------------------------------- isolation matrix
@dataclass(frozen=True, slots=True)
class Answer:
    answered: bool
    responder: str | None = None  # UDP: the container name the reply carried


def check_matrix(tally: Tally, label: str, probes: Sequence[Probe], answers: Sequence[Answer]) -> None:
    """Each probe's answer against the oracle (:func:`tools.chaos._topology.expect`)."""
    findings = []
    for p, a in zip(probes, answers, strict=True):
        where = f"{label}: {p.proto} {p.src} -> {p.target} ({p.dst_ip})"
        if p.expect.passes and not a.answered:
            findings.append(f"{where} blocked, must pass")
        elif not p.expect.passes and a.answered:
            findings.append(f"{where} answered{' by ' + a.responder if a.responder else ''}, must be blocked")
        elif a.answered and p.proto == "udp" and a.responder != p.expect.responder:
            findings.append(f"{where} answered by {a.responder}, must be {p.expect.responder}")
    tally.add(ISOLATION, len(probes), findings)


# ---------------------------------------------------------------- fault windows, pings, member events
@dataclass(frozen=True, slots=True)
class Window:
    """A fault as it happened: resolved hosts and wall-clock (monotonic) times."""

    fid: int
    kind: str
    host: str
    peer: str | None
    start: float
    end: float
    label: str

    def separates(self, a: str, b: str) -> bool:
        """True when this cut drops traffic between hosts ``a`` and ``b`` (either way: a ping needs both)."""
        if self.kind == CUT:
            return self.host in (a, b)
        return self.kind in CUT_FAULTS and {self.host, self.peer} == {a, b}

    def involves(self, host: str) -> bool:
        return host in (self.host, self.peer)


HEALTHY, AGENT, AFTER, EXCLUDED = "healthy", "agent", "after", "excluded"
PING_ROWS = {HEALTHY: PING_HEALTHY, AGENT: PING_AGENT, AFTER: PING_AFTER}


def classify_ping(at: float, a: str, b: str, windows: Sequence[Window], timing: Timing) -> tuple[str, Window | None]:
    """The category of a ping sent at ``at`` between hosts ``a`` and ``b``, and the fault it belongs to.

    * EXCLUDED: a cut between the two hosts is active, or healed less than
      ``timing.recovery_s`` ago (the loss is the fault itself);
    * AGENT: the agent of ``a`` or ``b`` is dead or restarting, or restarted
      less than ``recovery_s`` ago: the data plane should not notice (item 1);
    * AFTER: a fault of ``a`` or ``b`` ended more than ``recovery_s`` ago
      (and less than :data:`AFTER_HORIZON_S`): traffic should be back;
    * HEALTHY: neither host had a fault; the window is whatever fault ran elsewhere.
    """
    recent: Window | None = None
    elsewhere: Window | None = None
    for w in windows:
        if w.start > at:
            continue
        if at <= w.end + timing.recovery_s:
            if w.separates(a, b):
                return EXCLUDED, w
            if w.kind in AGENT_FAULTS and (w.involves(a) or w.involves(b)):
                return AGENT, w
            elsewhere = w
        if (w.involves(a) or w.involves(b)) and at - w.end <= AFTER_HORIZON_S and at > w.end + timing.recovery_s:
            recent = w if recent is None or w.end > recent.end else recent
    if recent is not None:
        return AFTER, recent
    return HEALTHY, elsewhere


@dataclass(frozen=True, slots=True)
class PingPair:
    label: str  # "a-blue-0@h1 -> a-blue-1@h2"
    a: str  # host of the sender
    b: str  # host of the target


def check_pings(tally: Tally, pair: PingPair, sent: Sequence[tuple[float, bool]], windows: Sequence[Window],
                timing: Timing) -> None:
    """Count every ping of ``pair`` in its category; each lost one outside EXCLUDED is a violation.

    Findings are aggregated per (category, fault window): "12 of 40 lost".
    """
    counts: dict[tuple[str, int | None], list[int]] = collections.defaultdict(lambda: [0, 0])
    labels: dict[int | None, str] = {None: "no fault"}
    for at, ok in sent:
        category, w = classify_ping(at, pair.a, pair.b, windows, timing)
        if category == EXCLUDED:
            continue
        key = (category, w.fid if w else None)
        labels[key[1]] = w.label if w else "no fault"
        counts[key][0] += 1
        counts[key][1] += not ok
    for (category, fid), (n, lost) in sorted(counts.items(), key=lambda kv: (kv[0][0], kv[0][1] or -1)):
        findings = [f"{pair.label}: {lost} of {n} lost during/after {labels[fid]}"] if lost else []
        tally.add(PING_ROWS[category], n, findings, violations=lost)


@dataclass(frozen=True, slots=True)
class MemberEvent:
    at: float
    observer: str  # the host whose PUB socket published it
    kind: str  # join, fail, leave
    name: str  # the member it is about


def false_failed(event: MemberEvent, windows: Sequence[Window], grace_s: float) -> bool:
    """A "fail" about a host that was neither killed nor cut then (nor seen from a host cut off itself)."""
    if event.kind != "fail":
        return False
    for w in windows:
        if not w.start <= event.at <= w.end + grace_s:
            continue
        if w.kind == KILL and w.host == event.name:
            return False
        if w.kind in CUT_FAULTS and w.involves(event.name):
            return False
        if w.kind == CUT and w.host == event.observer:
            return False
    return True


def check_events(tally: Tally, events: Sequence[MemberEvent], windows: Sequence[Window], timing: Timing,
                 run_time: Callable[[float], float]) -> None:
    """Every member event is a check; each false FAILED a finding naming the faults around it.

    ``run_time`` turns a monotonic time into the run's own clock (the one its log lines show).
    """
    findings = []
    for e in events:
        if not false_failed(e, windows, timing.fail_grace_s):
            continue
        active = [w.label for w in windows if w.start <= e.at <= w.end + timing.fail_grace_s]
        ended = [w for w in windows if w.end + timing.fail_grace_s < e.at]
        last = max(ended, key=lambda w: w.end, default=None)
        context = f"faults then: {', '.join(active) or 'none'}"
        if last is not None:
            context += f"; {last.label} ended {e.at - last.end:.1f} s before"
        findings.append(f"{e.observer} declared {e.name} failed at {run_time(e.at):.1f}s ({context})")
    tally.add(FALSE_FAILED, len(events), findings)

"""Report section "converge": how fast every host's FDB follows a host joining, crashing, leaving.

    sudo .venv/bin/python -m tools.bench.converge [--reps 3] [--quick] [--sizes 200] [--prefix bb]

Real ``meshd agent`` processes (``tools.cluster``, LAN gossip profile) run in
a lab (prefix ``bb``, or ``--prefix``) of N observer hosts. One tenant network has one
endpoint per observer: a netns sandbox (``unshare -n sleep``) connected by
its PID through the host's own control socket, so every observer builds the
network's VXLAN ``mx-<vni>`` in its host netns.

A *subject* host is a fresh lab host whose endpoint is allocated through the
API (``host=<subject>``) before its agent starts; its own interface is never
built (it has no sandbox), which does not change what the others install for
it. For the subject, every observer installs four neighbour objects:
flood entry ``00:00:00:00:00:00 dst <vtep>`` and ``<mac> dst <vtep>`` on the
VXLAN, ``<mac> master`` on the bridge port and the proxy-ARP entry
``<ip> lladdr <mac>``.

The kernel is observed, not the agents: one thread (at niceness −15, above
the agents) selects over one rtnetlink socket per observer, each created inside that host's netns and
bound to RTNLGRP_NEIGH, and stamps (wall clock) every RTM_NEWNEIGH /
RTM_DELNEIGH that concerns a subject (bridge family: NDA_DST = its VTEP, or no
NDA_DST and lladdr = its MAC; inet family: NDA_DST = its endpoint IP — the
kernel's RTM_DELNEIGH of a permanent entry carries no lladdr). Replaying them
gives per observer the first moment all four objects exist (join) or none
does (withdrawal). A dump (``bridge fdb``,
``ip neigh``) afterwards checks that the kernel really holds what the events
said. A SUB socket on three observers' event port (30029) stamps
MEMBER_JOIN / MEMBER_FAIL / MEMBER_LEAVE.

Per repetition and N: subject A joins (t0 = agent process start; and t0 =
the first observer's kernel showing any entry of A), then dies: its agent is
killed with SIGKILL and its underlay cut (a killed agent alone is "agent down"
and keeps its entries while its kernel answers); subject B joins (a second join
sample, pooled with A's), then leaves gracefully (CONTROL_LEAVE on its control
socket, what `meshd leave` sends; sent from this process, so the CLI's own
start-up is not timed). Fresh hosts each time, never a restart: a restarted
host with a clean data dir under an old name would meet its own failed gossip
record and Raft identity, which is another experiment.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import math
import os
import select
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from tools.bench._figures import Budget, Plot, Section, percentile
from tools.bench._machine import MachineSampler, Renicer, load_avg, process_figures, renice
from tools.bench._proc import die_with_parent

PREFIX = "bb"
WORKDIR = Path("/var/tmp/bench-converge")
SIZES, QUICK_SIZES = (20, 50), (5, 10)  # --sizes 200 runs 200 agents (docs/scale.md), not in the report
PROFILE = "lan"
NETWORK, SUBNET = "conv", "10.90.0.0/22"
EVENT_HOSTS = 3  # observers whose PUB port is subscribed
SUBSCRIBE_TIMEOUT_S = 120.0  # until their subscriptions are made (slow with 200 agents on 2 cores)
CONNECT_TIMEOUT_S = 60.0  # 50 agents reconciling every new endpoint load the machine heavily
UNAVAILABLE_RETRY_S = 60.0  # a request is retried this long while UNAVAILABLE (longer above 40 hosts: _retry_s)
START_WAVE = 10  # agents started together while the cluster is built
LAB_MAX_HOSTS = 244  # tools/lab: h<i> = 192.0.2.(10+i)
CONNECT_WORKERS = 8  # the observers' endpoints are connected this many at a time
JOIN_TIMEOUT_S, WITHDRAW_TIMEOUT_S, SETTLE_S = 60.0, 60.0, 3.0  # longer above 100 hosts: _timeout


def _retry_s(n: int) -> float:
    """How long a request is retried while the cluster cannot commit: 60 s up to 40 hosts, 75 s at 50, 300 s
    at 200 (that run stopped at 2026-12-07 19:31 UTC after ten retries, about a minute, while
    connecting the 200 endpoints)."""
    return max(UNAVAILABLE_RETRY_S, 1.5 * n)


def _timeout(base_s: float, n: int) -> float:
    """``base_s`` at the report's sizes; longer with 200 agents on 2 cores (everything is slower there)."""
    return max(base_s, 0.3 * n + base_s / 2)
FLOOD_MAC = "00:00:00:00:00:00"
RTM_NEWNEIGH, RTM_DELNEIGH, RTNLGRP_NEIGH = 28, 29, 3
AF_BRIDGE = 7
WATCH_NICE = -15  # the kernel watcher's thread: above the agents (0) and h1 and the voters (-10)
EV_JOIN, EV_FAIL, EV_LEAVE = 104, 105, 106


@dataclass(frozen=True)
class Subject:
    host: str
    vtep: str
    ip: str
    mac: str

    def key(self, family: int, dst: str | None, mac: str | None) -> tuple[str, str] | None:
        """Which of the subject's four objects a neighbour message is about, or None."""
        if family == AF_BRIDGE and dst == self.vtep and mac in (FLOOD_MAC, self.mac):
            return ("flood" if mac == FLOOD_MAC else "fdb", self.host)
        if family == AF_BRIDGE and dst is None and mac == self.mac:
            return ("master", self.host)
        if family == socket.AF_INET and dst == self.ip:  # a deleted neighbour carries no lladdr
            return ("arp", self.host)
        return None


EXPECTED = 4  # flood, fdb, master, arp


# --- the kernel watcher -------------------------------------------------------------------

class NeighWatch:
    """One thread reading RTNLGRP_NEIGH of every observer netns; keeps subject-related events."""

    def __init__(self, hosts: dict[str, str]) -> None:
        import netops

        self.socks: dict[int, tuple[str, socket.socket]] = {}
        for name, netns in hosts.items():
            with netops.in_netns(f"/run/netns/{netns}"):
                s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            s.bind((0, 1 << (RTNLGRP_NEIGH - 1)))
            self.socks[s.fileno()] = (name, s)
        self.subjects: list[Subject] = []
        self.events: list[tuple[float, str, bool, tuple[str, str]]] = []  # (t, observer, present, key)
        self.overruns = 0
        self.error = ""  # what ended the reading thread, if anything did
        self._lock = threading.Lock()
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="neigh-watch", daemon=True)
        self._thread.start()

    def watch(self, subject: Subject) -> None:
        with self._lock:
            self.subjects.append(subject)

    def close(self) -> None:
        self._stop = True
        self._thread.join(5)
        for _name, s in self.socks.values():
            s.close()

    def _loop(self) -> None:
        """Read every observer's socket; raised to niceness WATCH_NICE first, so that 200 agents
        sharing 2 cores do not leave it behind: at 200 (2026-12-07, normal niceness, pyroute2's
        decoder at 27 µs a message) every socket overran and no subject event was recorded."""
        with contextlib.suppress(OSError):  # not root: measured at normal niceness (noted as overruns)
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WATCH_NICE)
        poller = select.poll()
        for fd in self.socks:
            poller.register(fd, select.POLLIN)
        try:
            while not self._stop:
                for fd, _ev in poller.poll(200):
                    name, s = self.socks[fd]
                    try:
                        data = s.recv(1 << 20)
                    except OSError:  # ENOBUFS: the kernel dropped notifications
                        self.overruns += 1
                        continue
                    now = time.time()
                    for present, family, dst, mac in _parse_neigh(data):
                        self._record(now, name, present, family, dst, mac)
        except Exception as exc:  # a dead watcher records nothing more: say so in the section
            self.error = f"{type(exc).__name__}: {exc}"
            raise

    def _record(self, now: float, name: str, present: bool, family: int, dst: str | None, mac: str | None) -> None:
        with self._lock:
            for subj in self.subjects:
                key = subj.key(family, dst, mac)
                if key is not None:
                    self.events.append((now, name, present, key))

    def timeline(self, subject: str, since: float) -> dict[str, list[tuple[float, bool, str]]]:
        """``{observer: [(t, present, kind)]}`` of ``subject``'s objects from ``since`` on."""
        out: dict[str, list[tuple[float, bool, str]]] = {}
        with self._lock:
            for t, obs, present, (kind, host) in self.events:
                if host == subject and t >= since:
                    out.setdefault(obs, []).append((t, present, kind))
        return out


def _parse_neigh(data: bytes) -> Iterator[tuple[bool, int, str | None, str | None]]:
    """(present, family, NDA_DST, NDA_LLADDR) of each RTM_NEW/DELNEIGH in a netlink datagram
    (netops' own parser: 200 observers see the whole mesh's and the underlay's neighbour churn)."""
    import netops

    view = memoryview(data)
    off = 0
    while off + 16 <= len(data):
        length, mtype = struct.unpack_from("=LH", data, off)
        if length < 16:
            break
        if mtype in (RTM_NEWNEIGH, RTM_DELNEIGH):
            n = netops.parse_neigh(view[off + 16:off + length])
            yield mtype == RTM_NEWNEIGH, n.family, n.dst or None, n.mac or None
        off += (length + 3) & ~3


def first_complete(events: list[tuple[float, bool, str]]) -> float | None:
    """First time all EXPECTED kinds are present."""
    have: set[str] = set()
    for t, present, kind in events:
        (have.add if present else have.discard)(kind)
        if len(have) >= EXPECTED:
            return t
    return None


def first_empty(events: list[tuple[float, bool, str]]) -> float | None:
    """First time none of the kinds is present (all EXPECTED were there at the start)."""
    have = {"flood", "fdb", "master", "arp"}
    for t, present, kind in events:
        (have.add if present else have.discard)(kind)
        if not have:
            return t
    return None


def dump_kinds(netns: str, subj: Subject) -> set[str]:
    """The subject's objects in ``netns`` right now, from a dump (independent of the watcher)."""
    fdb = json.loads(subprocess.run(["bridge", "-n", netns, "-j", "fdb", "show"], capture_output=True,
                                    text=True, check=True).stdout or "[]")
    neigh = json.loads(subprocess.run(["ip", "-n", netns, "-j", "neigh", "show"], capture_output=True,
                                      text=True, check=True).stdout or "[]")
    kinds = set()
    for e in fdb:
        k = subj.key(AF_BRIDGE, e.get("dst"), e.get("mac"))
        if k:
            kinds.add(k[0])
    for e in neigh:
        k = subj.key(socket.AF_INET, e.get("dst"), e.get("lladdr"))
        if k:
            kinds.add(k[0])
    return kinds


# --- member events ------------------------------------------------------------------------

class EventWatch:
    """SUB sockets on a few observers' PUB port; stamps MEMBER_* events."""

    def __init__(self, cluster: Any, hosts: list[str]) -> None:
        self.cluster = cluster
        self.events: list[tuple[float, str, int, str]] = []  # (t, observer, type, member)
        self._stop = False
        self._ready = threading.Barrier(len(hosts) + 1)
        self._threads = [threading.Thread(target=self._loop, args=(h,), daemon=True) for h in hosts]
        for t in self._threads:
            t.start()
        self._ready.wait(SUBSCRIBE_TIMEOUT_S)

    def _loop(self, host: str) -> None:
        with self.cluster.scheduler(host) as api:
            api.next_event(0)  # subscribes
            self._ready.wait(SUBSCRIBE_TIMEOUT_S)
            while not self._stop:
                ev = api.next_event(0.2)
                if ev and ev[0] in (EV_JOIN, EV_FAIL, EV_LEAVE):
                    self.events.append((time.time(), host, ev[0], str(ev[1].get("name"))))

    def first(self, kind: int, member: str, since: float) -> float | None:
        ts = [t for t, _h, k, m in list(self.events) if k == kind and m == member and t >= since]
        return min(ts) if ts else None

    def fails(self, since: float, until: float) -> list[str]:
        return sorted({m for t, _h, k, m in list(self.events) if k == EV_FAIL and since <= t <= until})

    def close(self) -> None:
        self._stop = True
        for t in self._threads:
            t.join(3)


# --- the cluster --------------------------------------------------------------------------

@dataclass
class Rig:
    """A lab, its cluster of N observers with one sandboxed endpoint each, and the watchers."""

    n: int
    spares: int
    lab: Any = None
    cluster: Any = None
    sandboxes: list[subprocess.Popen] = field(default_factory=list)
    neigh: NeighWatch | None = None
    events: EventWatch | None = None
    machine: MachineSampler | None = None
    next_spare: int = 0
    docker: bool = True
    leader_nice: int = 0  #: niceness of h1, the bootstrap leader (see main's --leader-nice)
    voter_nice: int = 0  #: niceness of every Raft voter once promoted (see main's --voter-nice)
    renicer: Renicer | None = None
    setup: dict[str, Any] = field(default_factory=dict)

    def observers(self) -> list[str]:
        return [f"h{i}" for i in range(1, self.n + 1)]

    @property
    def neigh_watch(self) -> NeighWatch:
        assert self.neigh is not None, "the rig is not built yet"
        return self.neigh

    @property
    def event_watch(self) -> EventWatch:
        assert self.events is not None, "the rig is not built yet"
        return self.events


@contextlib.contextmanager
def rig(n: int, spares: int, prefix: str = PREFIX, *, docker: bool = True, leader_nice: int = 0,
        voter_nice: int = 0) -> Iterator[Rig]:
    """Build a :class:`Rig`; tear everything down on exit (also on Ctrl-C).

    ``docker=False`` starts the agents with ``--no-docker``: the endpoints are
    connected by PID, so nothing here needs Docker, but by default each agent
    watches dockerd as in production.
    """
    from tools.lab import Lab

    r = Rig(n, spares, lab=Lab(prefix), docker=docker, leader_nice=leader_nice, voter_nice=voter_nice)
    try:
        r.lab.down()  # leftovers of an interrupted run
        try:
            _build(r)
        except Exception as exc:
            for line in _log_tails(r):
                exc.add_note(line)
            raise
        yield r
    finally:
        _teardown(r)


def _build(r: Rig) -> None:
    from meshd.api import MsgType
    from tools.cluster import Cluster

    t0 = time.monotonic()
    r.lab.up(r.n + r.spares)
    r.cluster = Cluster(r.lab, WORKDIR / f"{r.lab.prefix}-n{r.n}", profile=PROFILE,
                        extra_args=() if r.docker else ("--no-docker",))
    c = r.cluster
    r.machine = MachineSampler(lambda: [a.proc.pid for a in c.agents.values()])
    h1 = c.start("h1")
    if r.leader_nice:
        renice(h1.proc.pid, r.leader_nice)
    c.wait("h1 leads", lambda: c.query("h1", MsgType.QUERY_STATUS)["raft"]["role"] == "leader", timeout_s=120)
    if r.voter_nice:
        r.renicer = Renicer(c.voter_pids, r.voter_nice)
    c.query("h1", MsgType.NETWORK_CREATE, name=NETWORK, subnet=SUBNET)
    _start_observers(r)
    r.setup["agents_up_s"] = round(time.monotonic() - t0, 1)
    r.neigh = NeighWatch({h: r.lab.host(h).netns for h in r.observers()})
    for _name in r.observers():  # from this thread: die_with_parent follows the thread that starts them
        r.sandboxes.append(subprocess.Popen(["unshare", "-n", "sleep", "1000000"], preexec_fn=die_with_parent))

    def connect(name: str, sb: subprocess.Popen) -> None:
        _request(r, name, MsgType.ENDPOINT_CONNECT, container_id=f"conv-{name}", network=NETWORK, pid=sb.pid)

    # a few at a time: each host's agents then apply several new endpoints in one reconcile pass
    with concurrent.futures.ThreadPoolExecutor(CONNECT_WORKERS) as pool:
        for f in [pool.submit(connect, name, sb) for name, sb in zip(r.observers(), r.sandboxes, strict=True)]:
            f.result()
    r.setup["endpoints_connected_s"] = round(time.monotonic() - t0, 1)
    _wait_mesh(r)
    r.setup["mesh_built_s"] = round(time.monotonic() - t0, 1)
    r.events = EventWatch(c, r.observers()[:EVENT_HOSTS])
    r.setup["memory"] = _memory(r)
    r.setup["machine_build"] = r.machine.summary()


def _request(r: Rig, via: str, msg_type: Any, **fields: Any) -> dict[str, Any]:
    """A request on ``via``'s control socket, retried with the same request_id while UNAVAILABLE,
    for :func:`_retry_s`.

    Building 50 hosts on this machine, a Raft proposal sometimes finds no
    result within 5 s (UNAVAILABLE, "retry with the same request_id"); such
    retries are counted in ``setup.unavailable_retries``. With 200 agents on
    2 cores a host sometimes does not build the new interface within
    ``agent.interface_timeout_s`` (INTERFACE_FAILED: "the address stays
    allocated, retry with the same request_id"): counted in
    ``setup.interface_retries``.
    """
    from meshd.api import ApiError
    from meshd.api.client import ApiRequestError

    retried = {ApiError.UNAVAILABLE: "unavailable_retries", ApiError.INTERFACE_FAILED: "interface_retries"}
    fields["request_id"] = f"conv-{time.time_ns()}"
    client = r.cluster.control(via, timeout_s=CONNECT_TIMEOUT_S)
    deadline = time.monotonic() + _retry_s(r.n)
    try:
        while time.monotonic() < deadline:
            try:
                return client.request(msg_type, **fields)
            except ApiRequestError as exc:
                if exc.code not in retried:
                    raise
                key = retried[ApiError(exc.code)]
                r.setup[key] = r.setup.get(key, 0) + 1
                time.sleep(1.0)
        return client.request(msg_type, **fields)
    finally:
        client.close()


def _start_observers(r: Rig) -> None:
    """Start h2..hN in waves of START_WAVE, each joining through up to three members already up.

    All at once, 49 agents joining through h1 on this loaded machine made one of
    them give up ("no gossip member answered ... after 8 tries") and exit. An
    agent that exits during its join is counted (``setup.join_exits``) and
    started again with the same (still empty) data dir.
    """
    c, names = r.cluster, r.observers()
    r.setup["join_exits"] = 0
    for first in range(1, len(names), START_WAVE):
        seeds = [r.lab.host(h).underlay_ip for h in names[:min(first, 3)]]
        wave = names[first:first + START_WAVE]
        for name in wave:
            c.start(name, join=seeds)
        want = first + len(wave)
        deadline = time.monotonic() + 60 + 3 * len(wave) + first  # the more running, the slower a start
        while _alive(c) < want:
            for name in wave:
                if c.agents[name].proc.poll() is not None:
                    r.setup["join_exits"] += 1
                    c.start(name, join=seeds)
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {_alive(c)} of {want} "
                                   f"agents alive after the wave {wave[0]}..{wave[-1]}; logs in {c.workdir}")
            time.sleep(0.5)


def _alive(c: Any) -> int:
    """Members h1 sees alive (0 while its control socket does not answer)."""
    try:
        return sum(state == "alive" for state in c.members("h1").values())
    except (TimeoutError, OSError):
        return 0


def _log_tails(r: Rig, lines: int = 3) -> list[str]:
    """The last lines of the agent logs that mention an error or a traceback (the workdir is removed)."""
    out = []
    for name, agent in (r.cluster.agents.items() if r.cluster else ()):
        with contextlib.suppress(OSError):
            text = agent.log.read_text(errors="replace").splitlines()
            if any("error" in t.lower() or "Traceback" in t for t in text[-20:]) or agent.proc.poll() is not None:
                out.append(f"{name} (exit {agent.proc.poll()}): " + " | ".join(t[:200] for t in text[-lines:]))
    return out[:10]


def _wait_mesh(r: Rig) -> None:
    """Until every observer has a flood entry for every other one (dump)."""
    def meshed() -> bool:
        for h in r.observers():
            fdb = json.loads(subprocess.run(["bridge", "-n", r.lab.host(h).netns, "-j", "fdb", "show"],
                                            capture_output=True, text=True).stdout or "[]")
            if sum(e.get("mac") == FLOOD_MAC and "dst" in e for e in fdb) < r.n - 1:
                return False
        return True
    r.cluster.wait(f"full mesh of {r.n} VTEPs", meshed, timeout_s=120 + 3 * r.n, interval_s=1.0)


def _memory(r: Rig) -> dict[str, Any]:
    """RSS (and descriptors, CPU seconds so far) of the agents; the load average now."""
    figs = process_figures(a.proc.pid for a in r.cluster.agents.values())
    return {"agents": figs.pop("processes"), "rss_per_agent_mib": figs.get("rss_mean_mib"), **figs,
            "load_avg": load_avg()}


def _teardown(r: Rig) -> None:
    for w in (r.events, r.neigh, r.machine, r.renicer):
        if w is not None:
            with contextlib.suppress(Exception):
                w.close()
    if r.cluster is not None:
        r.cluster.down()
        r.cluster.cleanup_workdir()
    for sb in r.sandboxes:
        sb.kill()
        sb.wait()
    r.lab.down()


# --- one repetition -----------------------------------------------------------------------

def _spare(r: Rig) -> str:
    r.next_spare += 1
    if r.next_spare > r.spares:
        raise RuntimeError(f"no fresh lab host left ({r.spares} spares): raise the spares of N={r.n}")
    return f"h{r.n + r.next_spare}"


def _subject(r: Rig, host: str) -> Subject:
    from meshd.api import MsgType

    # not Cluster.query: its own first argument is called "host"
    ep = _request(r, "h1", MsgType.ENDPOINT_CONNECT, container_id=f"conv-{host}", network=NETWORK, host=host,
                  host_expected=True)  # the subject's agent starts after its endpoint is allocated
    s = Subject(host, r.lab.host(host).underlay_ip, ep["ip"], ep["mac"])
    r.neigh_watch.watch(s)
    return s


def _wait_all(r: Rig, what: str, fn: Any, since: float, timeout_s: float) -> dict[str, float | None]:
    """Poll the watcher until ``fn(events)`` gives a time for every observer; returns them (None = never)."""
    deadline = time.monotonic() + timeout_s
    while True:
        tl = r.neigh_watch.timeline(what, since)
        times = {h: fn(tl.get(h, [])) for h in r.observers()}
        if all(v is not None for v in times.values()) or time.monotonic() > deadline:
            return times
        time.sleep(0.1)


def _check_dump(r: Rig, subj: Subject, want_present: bool, notes: list[str]) -> None:
    want = EXPECTED if want_present else 0
    bad = [h for h in r.observers() if len(dump_kinds(r.lab.host(h).netns, subj)) != want]
    if bad:
        notes.append(f"dump disagrees with the watcher for {subj.host} ({'present' if want_present else 'gone'}) "
                     f"on {len(bad)} observers, e.g. {bad[:3]}")


def _settled(r: Rig, subj: Subject, times: dict[str, float | None], want_present: bool, notes: list[str],
             what: str) -> tuple[list[float], list[str]]:
    """The times reached and the observers that never got there (noted); then the dump check."""
    missing = [h for h, v in times.items() if v is None]
    if missing:
        notes.append(f"{what} (within the timeout): {len(missing)}, e.g. {missing[:3]}")
    time.sleep(0.5)
    _check_dump(r, subj, want_present, notes)
    return [v for v in times.values() if v is not None], missing


def join_trial(r: Rig, notes: list[str]) -> dict[str, Any]:
    host = _spare(r)
    subj = _subject(r, host)
    time.sleep(SETTLE_S)
    t_start = time.time()
    agent = r.cluster.start(host, join=["192.0.2.11"])
    times = _wait_all(r, host, first_complete, t_start, _timeout(JOIN_TIMEOUT_S, r.n))
    tl = r.neigh_watch.timeline(host, t_start)
    first_seen = min((ev[0][0] for ev in tl.values() if ev), default=math.nan)
    done, missing = _settled(r, subj, times, True, notes,
                             f"join of {host}: observers that never had all {EXPECTED} entries")
    return {"host": host, "subject": subj, "t_start": t_start, "first_kernel": first_seen,
            "from_start": [v - t_start for v in done], "from_first": [v - first_seen for v in done],
            "member_join": r.event_watch.first(EV_JOIN, host, t_start), "startup_s": _startup(agent.log, t_start),
            "missing": len(missing)}


def _startup(log: Path, t_start: float) -> float:
    """Process start → the agent's own "joined through=" log line (its gossip join done)."""
    for _ in range(100):
        for line in log.read_text(errors="replace").splitlines():
            if "joined through=" in line:
                stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
                return stamp - t_start
        time.sleep(0.1)
    return math.nan


def withdraw_trial(r: Rig, subj: Subject, how: str, notes: list[str]) -> dict[str, Any]:
    time.sleep(SETTLE_S)
    t0 = time.time()
    if how == "kill":  # the machine dies: its agent and its network (a killed agent alone is "agent down")
        r.cluster.kill(subj.host)
        r.lab.cut(subj.host)
    else:
        r.cluster.leave(subj.host, cli=False)
    times = _wait_all(r, subj.host, first_empty, t0, _timeout(WITHDRAW_TIMEOUT_S, r.n))
    done, missing = _settled(r, subj, times, False, notes,
                             f"{how} of {subj.host}: observers whose entries stayed")
    done = [v - t0 for v in done]
    fail = r.event_watch.first(EV_FAIL, subj.host, t0)
    leave = r.event_watch.first(EV_LEAVE, subj.host, t0)
    return {"t0": t0, "all_s": max(done) if done and not missing else math.nan, "per_host": done,
            "fail_s": (fail - t0) if fail else math.nan, "leave_s": (leave - t0) if leave else math.nan,
            "reported_fail": fail is not None}


def one_rep(r: Rig, section: Section, rep: int, samples: dict[str, list[float]]) -> None:
    notes = section.notes
    t_rep = time.time()
    ja = join_trial(r, notes)
    kill = withdraw_trial(r, ja["subject"], "kill", notes)
    jb = join_trial(r, notes)
    leave = withdraw_trial(r, jb["subject"], "leave", notes)
    false_fails = [m for m in r.event_watch.fails(t_rep, time.time()) if m not in (ja["host"], jb["host"])]
    if false_fails:
        notes.append(f"N={r.n} rep {rep + 1}: MEMBER_FAIL for hosts nobody killed: {false_fails}")
    _add(section, r.n, ja, jb, kill, leave, len(false_fails))
    for j in (ja, jb):
        samples[f"join N={r.n} (from first kernel)"] += j["from_first"]
        samples[f"join N={r.n} (from process start)"] += j["from_start"]
    samples[f"kill N={r.n} (from SIGKILL)"] += kill["per_host"]
    samples[f"leave N={r.n} (from the leave request)"] += leave["per_host"]


def _add(section: Section, n: int, ja: dict, jb: dict, kill: dict, leave: dict, false_fails: int) -> None:
    k = f"converge.n{n}"
    fig = section.figure
    first = ja["from_first"] + jb["from_first"]
    start = ja["from_start"] + jb["from_start"]
    miss = ja["missing"] + jb["missing"]
    nan = math.nan
    fig(f"{k}.join.p50_s", f"N={n}: join → FDB on other hosts, p50 (t0 = first host's kernel)", "s").add(
        percentile(first, 50) if not miss else nan)
    fig(f"{k}.join.p99_s", f"N={n}: join → FDB on other hosts, p99 (t0 = first host's kernel)", "s",
        goal=("<=", 2.0)).add(percentile(first, 99) if not miss else nan)
    fig(f"{k}.join.max_s", f"N={n}: join → FDB on all hosts (t0 = first host's kernel)", "s").add(
        max(first) if first and not miss else nan)
    fig(f"{k}.join_from_start.p50_s", f"N={n}: join → FDB, p50 (t0 = agent process start)", "s").add(
        percentile(start, 50) if not miss else nan)
    fig(f"{k}.join_from_start.p99_s", f"N={n}: join → FDB, p99 (t0 = agent process start)", "s").add(
        percentile(start, 99) if not miss else nan)
    fig(f"{k}.join_from_start.max_s", f"N={n}: join → FDB on all hosts (t0 = agent process start)", "s").add(
        max(start) if start and not miss else nan)
    mj = [j["member_join"] - j["t_start"] for j in (ja, jb) if j["member_join"]]
    fig(f"{k}.member_join_s", f"N={n}: agent process start → first MEMBER_JOIN event", "s").add(
        sum(mj) / len(mj) if mj else nan)
    su = [j["startup_s"] for j in (ja, jb) if not math.isnan(j["startup_s"])]
    fig(f"{k}.startup_s", f"N={n}: agent start-up (process start → its gossip join done)", "s").add(
        sum(su) / len(su) if su else nan)
    fig(f"{k}.kill.all_s", f"N={n}: kill -9 → entries withdrawn on all hosts", "s",
        goal_text="≤ detection + 0.5 s").add(kill["all_s"])
    fig(f"{k}.kill.detect_s", f"N={n}: kill -9 → first MEMBER_FAIL", "s").add(kill["fail_s"])
    fig(f"{k}.kill.after_detect_s", f"N={n}: kill: withdrawn everywhere − detection", "s",
        goal=("<=", 0.5)).add(kill["all_s"] - kill["fail_s"])
    fig(f"{k}.leave.all_s", f"N={n}: leave → entries withdrawn on all hosts", "s",
        goal=("<=", 1.0)).add(leave["all_s"])
    fig(f"{k}.leave.event_s", f"N={n}: leave → first MEMBER_LEAVE", "s").add(leave["leave_s"])
    fig(f"{k}.leave.as_fail", f"N={n}: leave reported as MEMBER_FAIL", "count", goal=("<=", 0.0)).add(
        1.0 if leave["reported_fail"] else 0.0)
    fig(f"{k}.false_fail", f"N={n}: MEMBER_FAIL of hosts not killed (false failures)", "count",
        goal=("<=", 0.0)).add(false_fails)


# --- the section --------------------------------------------------------------------------

def sizes(budget: Budget, override: tuple[int, ...] = ()) -> tuple[int, ...]:
    return override or (QUICK_SIZES if budget.quick else SIZES)


def estimate_s(budget: Budget) -> float:
    # measured on the loaded 2-core VM: building the cluster (waves of agents, one endpoint per host,
    # full mesh) ~15 + 1.6·N s (N=50: 99 s), a repetition (2 joins, kill with ~8 s LAN detection,
    # leave, settles and dump checks) ~18 + 0.25·N s, teardown ~20 s
    return sum(35 + 1.6 * n + budget.reps * (18 + 0.25 * n) for n in sizes(budget))


def run(budget: Budget, *, only_sizes: tuple[int, ...] = (), prefix: str = PREFIX, docker: bool = True,
        leader_nice: int = 0, voter_nice: int = 0) -> Section:
    """The section at the report's sizes, or at ``only_sizes`` (e.g. ``(200,)``), in the lab ``prefix``;
    ``docker=False``: agents started with ``--no-docker`` (see :func:`rig`)."""
    section = Section("converge", "Convergence: FDB entries on every host after join, kill -9 and leave",
                      method=__doc__.split("\n\n", 2)[2].strip() + _METHOD_TAIL,
                      setup={"sizes": list(sizes(budget, only_sizes)), "profile": PROFILE, "reps": budget.reps,
                             "network": {"name": NETWORK, "subnet": SUBNET}, "lab_prefix": prefix,
                             "workdir": str(WORKDIR), "meshd_code": _code_version(), "docker": docker,
                             "leader_nice": leader_nice, "voter_nice": voter_nice})
    samples: dict[str, list[float]] = {}
    try:
        for n in sizes(budget, only_sizes):
            for key in (f"join N={n} (from first kernel)", f"join N={n} (from process start)",
                        f"kill N={n} (from SIGKILL)", f"leave N={n} (from the leave request)"):
                samples[key] = []
            with rig(n, 2 * budget.reps, prefix, docker=docker, leader_nice=leader_nice, voter_nice=voter_nice) as r:
                section.setup[f"n{n}"] = r.setup
                for rep in range(budget.reps):
                    one_rep(r, section, rep, samples)
                section.setup[f"n{n}"]["netlink_overruns"] = r.neigh_watch.overruns
                if r.neigh_watch.error:
                    section.notes.append(f"N={n}: the kernel watcher stopped: {r.neigh_watch.error}")
                section.setup[f"n{n}"]["memory_end"] = _memory(r)
                section.setup[f"n{n}"]["machine"] = r.machine.summary() if r.machine else {}
                if r.renicer is not None:  # seconds after h1 led when each voter was reniced
                    section.setup[f"n{n}"]["voters_reniced_at_s"] = sorted(r.renicer.reniced.values())
    except Exception as exc:  # reported, not raised: the figures so far stay
        section.error = f"{type(exc).__name__}: {exc}"[:2000]
        section.notes += getattr(exc, "__notes__", [])
    finally:
        shutil.rmtree(WORKDIR, ignore_errors=True)
    section.plots.append(Plot("converge_cdf", "Per-host time until its FDB follows (all repetitions)",
                              "seconds", "fraction of hosts", {k: [[], v[:2000]] for k, v in samples.items()},
                              kind="cdf"))
    return section


def _code_version() -> str:
    """The commit the agents run, and whether meshd/netops differ from it (others edit the tree)."""
    root = Path(__file__).resolve().parents[2]
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "meshd", "netops"],
                           capture_output=True, text=True).stdout.split("\n")
    changed = [line[3:] for line in dirty if line.strip()]
    return head + (f" + uncommitted changes in {', '.join(changed)}" if changed else "")


_METHOD_TAIL = """

Join figures pool the per-observer times of both joins of a repetition (2·N samples: N observers): p50, p99
(nearest rank) and max. The goal (p99 ≤ 2 s) is checked against t0 = the first observer's kernel showing any
entry of the new host, i.e. from the moment the cluster learns of it; the same from the agent process start is
reported beside it, and the agent's own start-up (process start → its "joined through" log line) separately.
Kill (SIGKILL and an underlay cut): all = until the last observer has none of the four objects; detection =
the first MEMBER_FAIL on the subscribed observers; the goal is on their difference. Leave = the leave request
sent → last observer clean. False failures = MEMBER_FAIL events (distinct hosts, on the subscribed observers)
during a repetition for hosts that were neither killed nor leaving (a leave reported as a failure is its own
figure). N = 20 and N = 50 are not interleaved: each needs its own cluster, and starting 50 agents costs
minutes on this machine (see setup), so each N keeps one cluster for all its repetitions. Timestamps are
wall-clock at the moment the benchmark's thread reads the notification; on a loaded 2-core machine that thread
competes with the agents for CPU."""


def main(argv: list[str] | None = None) -> int:
    """``--reps``/``--quick`` as every section, plus ``--sizes N...`` and ``--prefix P``; one JSON line."""
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3, help="repetitions (default 3)")
    ap.add_argument("--quick", action="store_true", help=f"N = {QUICK_SIZES} instead of {SIZES}")
    ap.add_argument("--sizes", type=int, nargs="+", default=[], metavar="N",
                    help="run these N instead, e.g. 200 (N + 2·reps spare hosts must fit the lab)")
    ap.add_argument("--prefix", default=PREFIX, help=f"lab prefix (default {PREFIX})")
    ap.add_argument("--no-docker", action="store_true", help="agents do not watch dockerd (meshd agent --no-docker)")
    ap.add_argument("--leader-nice", type=int, default=0,
                    help="run h1 (the bootstrap leader) at this niceness, e.g. -10 (200 agents on 2 cores)")
    ap.add_argument("--voter-nice", type=int, default=0,
                    help="run every Raft voter at this niceness once the bench sees it promoted (polls about "
                         "once a second), e.g. -10: a starved voter stalls every commit")
    args = ap.parse_args(argv)
    too_big = [n for n in args.sizes if not 2 <= n <= LAB_MAX_HOSTS - 2 * args.reps]
    if too_big:
        ap.error(f"--sizes {too_big}: N plus 2·reps spare hosts must fit the lab's {LAB_MAX_HOSTS} hosts "
                 f"(at most {LAB_MAX_HOSTS - 2 * args.reps} with --reps {args.reps})")
    budget = Budget(reps=args.reps, quick=args.quick)
    t0 = time.monotonic()
    section = run(budget, only_sizes=tuple(args.sizes), prefix=args.prefix, docker=not args.no_docker,
                  leader_nice=args.leader_nice, voter_nice=args.voter_nice)
    section.seconds = round(time.monotonic() - t0, 1)
    print(json.dumps(section.to_json()))
    return 1 if section.error else 0


if __name__ == "__main__":
    sys.exit(main())

"""Report section "partition": cut/heal cycles with real agents — false failures, churn, ping loss, heal time.

    sudo .venv/bin/python -m tools.bench.partition [--cycles 20] [--kinds host,pair,oneway]
        [--cut-s 15] [--profile local|lan] [--hosts 4] [--prefix bpt]

Real ``meshd agent`` processes (``tools.cluster``) run in a lab of N hosts
(default 4); one network has one Docker container per host. The last host
is the *victim*; the first (the Raft leader that bootstrapped) is the peer of
pairwise cuts. Each cycle cuts at the underlay switch (``lab.cut``) — the
victim from everyone (``host``), the victim and the peer both ways
(``pair``), or only victim → peer (``oneway``) — for ``--cut-s`` seconds,
heals, waits until the victim is back, and settles 2 s more (a late burst of
stale claims would land there).

A host is *healthy* in a cycle unless it is the victim of a whole-host cut.
Per cycle:

* **false failures**: MEMBER_FAIL events (the scheduler PUB socket of every
  host) that one healthy host reported about another;
* **churn**: RTM_DELNEIGH of a healthy host's endpoint objects (its FDB,
  flood, bridge and proxy-ARP entries) on a healthy host, from one rtnetlink
  socket per host netns;
* **ping loss**: continuous pings (every 0.1 s) between containers on paths
  the cut does not touch: a ring over the non-victim hosts, and for pairwise
  cuts also victim → second host;
* **heal time** (whole-host cuts), from ``lab.heal`` returning: *members* —
  every healthy host published MEMBER_JOIN of the victim and the victim lists
  everyone alive (polled every 50 ms); *FDB* — the victim's four objects are
  in the kernel of every healthy host (rtnetlink); *Raft* — the victim is in
  the leader's configuration and has applied the leader's commit index
  (polled); and *first contact* — the first ``event=reconnect`` line in any
  agent log (the gossip exchange that starts the heal).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from tools.bench._figures import Budget, Section
from tools.bench.converge import (
    EV_FAIL,
    EV_JOIN,
    EXPECTED,
    EventWatch,
    NeighWatch,
    Subject,
    dump_kinds,
    first_complete,
    first_empty,
)

PREFIX = "bpt"
WORKDIR = Path("/var/tmp/bench-partition")
NETWORK, SUBNET = "part", "10.91.0.0/24"
KINDS = ("host", "pair", "oneway")
BACK_TIMEOUT_S, SETTLE_S, POLL_S = 30.0, 2.0, 0.05
_RECONNECT = re.compile(r"^(\S+ \S+) .*event=reconnect ")
_PING = re.compile(r"(\d+) packets transmitted, (\d+) packets received")
_SEQ = re.compile(r" seq=(\d+) ")


@dataclass
class Cycle:
    """What one cut/heal cycle did; times in seconds (None: not reached within BACK_TIMEOUT_S)."""

    kind: str
    cut_s: float
    false_fails: list[tuple[str, str]] = field(default_factory=list)  # (observer, member)
    churn: int = 0
    pings_sent: int = 0
    pings_lost: int = 0
    ping_gaps: list[tuple[str, float]] = field(default_factory=list)  # (path, seconds after the cut)
    withdrawn_s: float | None = None  # cut -> every healthy host withdrew the victim (host cuts)
    first_contact_s: float | None = None
    members_s: float | None = None
    fdb_s: float | None = None
    raft_s: float | None = None

    @property
    def back(self) -> bool:
        return self.kind != "host" or None not in (self.members_s, self.fdb_s, self.raft_s)


class Rig:
    """A lab with one agent and one container per host on one network, and the watchers."""

    def __init__(self, lab: Any, cluster: Any) -> None:
        self.lab, self.cluster = lab, cluster
        self.hosts = [h.name for h in lab.hosts()]
        self.victim, self.peer = self.hosts[-1], self.hosts[0]
        self.containers: dict[str, Any] = {}
        self.subjects: dict[str, Subject] = {}
        self.neigh: NeighWatch | None = None
        self.events: EventWatch | None = None

    # --- building -------------------------------------------------------------------------

    def start_agents(self) -> None:
        """h1 bootstraps, the others join through it."""
        from meshd.api import MsgType

        c, hosts = self.cluster, self.hosts
        c.start(hosts[0])
        c.wait("h1 leads", lambda: c.query(hosts[0], MsgType.QUERY_STATUS)["raft"]["role"] == "leader")
        for h in hosts[1:]:
            c.start(h, join=[self.lab.host(hosts[0]).underlay_ip])
        c.wait_members(hosts[0], len(hosts), timeout_s=60)

    def attach(self) -> None:
        """The network, a container per host on it, and the watchers (agents running)."""
        from meshd.api import MsgType

        c, hosts = self.cluster, self.hosts
        c.query(hosts[0], MsgType.NETWORK_CREATE, name=NETWORK, subnet=SUBNET)
        self.neigh = NeighWatch({h: self.lab.host(h).netns for h in hosts})
        for h in hosts:
            ct = self.containers[h] = self.lab.container(h, f"p{h}")
            client = c.control(h)  # not Cluster.query: its own first argument is called "host"
            try:
                ep = client.request(MsgType.ENDPOINT_CONNECT, container_id=ct.id, network=NETWORK, host=h)
            finally:
                client.close()
            self.subjects[h] = Subject(h, self.lab.host(h).underlay_ip, ep["ip"], ep["mac"])
            self.neigh.watch(self.subjects[h])
        c.wait("every host has every other host's entries", self._meshed, timeout_s=60, interval_s=0.5)
        self.events = EventWatch(c, hosts)

    def _meshed(self) -> bool:
        return all(len(dump_kinds(self.lab.host(o).netns, s)) == EXPECTED
                   for o in self.hosts for h, s in self.subjects.items() if h != o)

    def close(self) -> None:
        for w in (self.events, self.neigh):
            if w is not None:
                with contextlib.suppress(Exception):
                    w.close()

    # --- one cycle ------------------------------------------------------------------------

    def healthy(self, kind: str) -> list[str]:
        return [h for h in self.hosts if kind != "host" or h != self.victim]

    def ping_paths(self, kind: str) -> list[tuple[str, str]]:
        """Container paths the cut does not touch."""
        ring = [h for h in self.hosts if h != self.victim]
        paths = [(a, ring[(i + 1) % len(ring)]) for i, a in enumerate(ring) if len(ring) > 1]
        if kind != "host" and len(self.hosts) > 2:
            paths.append((self.victim, self.hosts[1]))
        return paths

    def cycle(self, kind: str, cut_s: float, *, until_victim_fails: bool = False) -> Cycle:
        """Cut (``kind``) for ``cut_s`` — or, with ``until_victim_fails``, at least until the
        isolated victim has reported every other host failed (its stale claims all exist) —
        heal, wait until it is back, settle."""
        cy, healthy = Cycle(kind, cut_s), self.healthy(kind)
        pingers = [_Pinger(self.containers[a], self.subjects[b].ip, f"{a}->{b}") for a, b in self.ping_paths(kind)]
        time.sleep(0.5)
        t_cut = time.time()
        self.lab.cut(self.victim, None if kind == "host" else self.peer, oneway=kind == "oneway")
        if kind == "host":
            times = self._wait_observers(first_empty, t_cut, healthy)
            cy.withdrawn_s = _latest(times, t_cut)
        while time.time() < t_cut + cut_s or (until_victim_fails and not self._victim_failed_all(t_cut)):
            if time.time() > t_cut + cut_s + BACK_TIMEOUT_S:
                break
            time.sleep(0.1)
        cy.cut_s = round(time.time() - t_cut, 2)
        t_heal = time.time()
        self.lab.heal(self.victim)
        if kind == "host":
            self._measure_back(cy, t_heal)
        time.sleep(SETTLE_S)
        for p in pingers:
            sent, lost = p.stop()
            cy.pings_sent += sent
            cy.pings_lost += len(lost)
            cy.ping_gaps += [(p.path, round(t - t_cut, 2)) for t in lost]
        until = time.time()
        assert self.events is not None and self.neigh is not None
        cy.false_fails = sorted({(o, m) for t, o, k, m in list(self.events.events)
                                 if k == EV_FAIL and t_cut <= t <= until and o in healthy and m in healthy})
        cy.churn = sum(1 for h in healthy for o, evs in self.neigh.timeline(h, t_cut).items()
                       if o in healthy for t, present, _ in evs if not present and t <= until)
        return cy

    def _victim_failed_all(self, since: float) -> bool:
        assert self.events is not None
        failed = {m for t, o, k, m in list(self.events.events) if k == EV_FAIL and o == self.victim and t >= since}
        return failed >= set(self.hosts) - {self.victim}

    def _wait_observers(self, fn: Any, since: float, observers: list[str]) -> dict[str, float | None]:
        """Poll the rtnetlink watcher until ``fn`` gives a time for the victim on every observer."""
        assert self.neigh is not None
        deadline = time.monotonic() + BACK_TIMEOUT_S
        while True:
            tl = self.neigh.timeline(self.victim, since)
            times = {o: fn(tl.get(o, [])) for o in observers}
            if None not in times.values() or time.monotonic() > deadline:
                return times
            time.sleep(POLL_S)

    def _measure_back(self, cy: Cycle, t_heal: float) -> None:
        others = [h for h in self.hosts if h != self.victim]
        deadline = time.monotonic() + BACK_TIMEOUT_S
        while time.monotonic() < deadline and None in (cy.members_s, cy.raft_s):
            now = time.time()
            if cy.members_s is None and self._members_back(others, t_heal):
                cy.members_s = round(now - t_heal, 3)
            if cy.raft_s is None and self._raft_back():
                cy.raft_s = round(now - t_heal, 3)
            time.sleep(POLL_S)
        cy.fdb_s = _latest(self._wait_observers(first_complete, t_heal, others), t_heal)
        cy.first_contact_s = _first_reconnect(self.cluster, t_heal)

    def _members_back(self, others: list[str], t_heal: float) -> bool:
        assert self.events is not None
        joined = {o for t, o, k, m in list(self.events.events) if k == EV_JOIN and m == self.victim and t >= t_heal}
        if not set(others) <= joined:
            return False
        with contextlib.suppress(TimeoutError, OSError):
            seen = self.cluster.members(self.victim)
            return len(seen) == len(self.hosts) and all(s == "alive" for s in seen.values())
        return False

    def _raft_back(self) -> bool:
        from meshd.api import MsgType

        try:
            mine = self.cluster.query(self.victim, MsgType.QUERY_STATUS)["raft"]
            if not mine["leader"] or mine["leader"] == self.victim:
                return False
            lead = self.cluster.query(mine["leader"], MsgType.QUERY_STATUS)["raft"]
        except (TimeoutError, OSError):
            return False
        member = self.victim in lead["voters"] + lead["learners"]
        return member and mine["applied_index"] >= lead["commit_index"]


class _Pinger:
    """``ping -i 0.1`` from a container until stopped (SIGINT: it prints its summary)."""

    INTERVAL_S = 0.1

    def __init__(self, container: Any, ip: str, path: str) -> None:
        self.container, self.path = container, path
        self.proc = subprocess.Popen(["docker", "exec", container.id, "ping", "-i", str(self.INTERVAL_S),
                                      "-W", "1", ip], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.started = time.time()

    def stop(self) -> tuple[int, list[float]]:
        """(requests sent, when each unanswered one was sent); the one still in
        flight when stopped does not count."""
        subprocess.run(["docker", "exec", self.container.id, "killall", "-INT", "ping"], capture_output=True)
        out = self.proc.communicate(timeout=30)[0]
        m = _PING.search(out)
        if not m:
            raise RuntimeError(f"no ping summary from {self.container.name}: {out[-300:]!r}")
        sent = int(m[1])
        answered = {int(x) for x in _SEQ.findall(out)}
        if sent and sent - 1 not in answered:
            sent -= 1
        return sent, [self.started + seq * self.INTERVAL_S for seq in range(sent) if seq not in answered]


def _latest(times: dict[str, float | None], t0: float) -> float | None:
    done = [t for t in times.values() if t is not None]
    return None if len(done) < len(times) else round(max(done) - t0, 3)


def _first_reconnect(cluster: Any, since: float) -> float | None:
    """The first agent log line ``event=reconnect`` after ``since`` (log stamps are local time, ms)."""
    stamps = []
    for agent in cluster.agents.values():
        for line in agent.log.read_text(errors="replace").splitlines():
            m = _RECONNECT.match(line)
            if m:
                t = datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
                if t >= since:
                    stamps.append(t)
    return round(min(stamps) - since, 3) if stamps else None


@contextlib.contextmanager
def rig(prefix: str, hosts: int, profile: str) -> Iterator[Rig]:
    """Build a :class:`Rig`; tear everything down on exit (also on Ctrl-C)."""
    from tools.cluster import Cluster
    from tools.lab import Lab

    lab = Lab(prefix)
    lab.down()  # leftovers of an interrupted run
    cluster, r = None, None
    try:
        lab.up(hosts)
        cluster = Cluster(lab, WORKDIR / prefix, profile=profile)
        r = Rig(lab, cluster)
        r.start_agents()
        r.attach()
        yield r
    finally:
        if r is not None:
            r.close()
        if cluster is not None:
            cluster.down()
            cluster.cleanup_workdir()
        lab.down()


# --- the section ------------------------------------------------------------------------------

def run(budget: Budget, *, cycles: int | None = None, kinds: tuple[str, ...] = KINDS, cut_s: float = 15.0,
        profile: str = "local", hosts: int = 4, prefix: str = PREFIX, log: Any = None) -> Section:
    cycles = cycles if cycles is not None else (2 if budget.quick else budget.reps)
    section = Section("partition", "Partitions: cut/heal cycles with real agents",
                      method=__doc__.split("\n\n", 2)[2].strip(),
                      setup={"cycles_per_kind": cycles, "kinds": list(kinds), "cut_s": cut_s, "profile": profile,
                             "hosts": hosts, "lab_prefix": prefix})
    results: list[Cycle] = []
    try:
        with rig(prefix, hosts, profile) as r:
            section.setup.update(victim=r.victim, peer=r.peer)
            for i in range(cycles):
                for kind in kinds:
                    cy = r.cycle(kind, cut_s)
                    results.append(cy)
                    if log:
                        print(json.dumps({"cycle": i + 1, **asdict(cy)}), file=log, flush=True)
    except Exception as exc:  # reported, not raised: the figures so far stay
        section.error = f"{type(exc).__name__}: {exc}"[:2000]
    finally:
        shutil.rmtree(WORKDIR, ignore_errors=True)
    _figures(section, results)
    return section


def _figures(section: Section, results: list[Cycle]) -> None:
    fig = section.figure
    for kind in sorted({c.kind for c in results}, key=KINDS.index):
        cs = [c for c in results if c.kind == kind]
        fig(f"partition.{kind}.false_fail", f"{kind} cut: MEMBER_FAIL among healthy hosts, all cycles", "count",
            goal=("<=", 0.0)).add(sum(len(c.false_fails) for c in cs))
        fig(f"partition.{kind}.churn", f"{kind} cut: healthy hosts' kernel entries deleted on healthy hosts",
            "count", goal=("<=", 0.0)).add(sum(c.churn for c in cs))
        fig(f"partition.{kind}.ping_lost", f"{kind} cut: pings lost on untouched paths, all cycles", "count",
            goal=("<=", 0.0), note=f"of {sum(c.pings_sent for c in cs)} sent").add(sum(c.pings_lost for c in cs))
        if kind != "host":
            continue
        for key, label in (("withdrawn_s", "cut → victim withdrawn on every healthy host"),
                           ("first_contact_s", "heal → first gossip reconnect"),
                           ("members_s", "heal → members alive in every view"),
                           ("fdb_s", "heal → victim's FDB entries on every host"),
                           ("raft_s", "heal → victim's Raft caught up")):
            vals = [getattr(c, key) for c in cs]
            f = fig(f"partition.host.{key}", f"host cut: {label} (max over cycles)", "s",
                    goal=("<=", 2.0) if key in ("members_s", "fdb_s", "raft_s") else None)
            f.add(max(vals) if None not in vals and vals else math.nan)
            ok = [v for v in vals if v is not None]
            if ok:
                f.note = f"median {statistics.median(ok):.2f}, {len(ok)}/{len(vals)} reached"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=20, help="cycles of each cut kind (default 20)")
    ap.add_argument("--kinds", default=",".join(KINDS), help="comma-separated subset of host,pair,oneway")
    ap.add_argument("--cut-s", type=float, default=15.0, help="how long each cut lasts (default 15)")
    ap.add_argument("--profile", choices=["local", "lan"], default="local")
    ap.add_argument("--hosts", type=int, default=4)
    ap.add_argument("--prefix", default=PREFIX, help=f"lab prefix (default {PREFIX})")
    args = ap.parse_args(argv)
    kinds = tuple(k for k in args.kinds.split(",") if k)
    if set(kinds) - set(KINDS) or args.hosts < 3:
        ap.error(f"--kinds takes {','.join(KINDS)}; --hosts at least 3")
    t0 = time.monotonic()
    section = run(Budget(), cycles=args.cycles, kinds=kinds, cut_s=args.cut_s, profile=args.profile,
                  hosts=args.hosts, prefix=args.prefix, log=sys.stderr)
    section.seconds = round(time.monotonic() - t0, 1)
    print(json.dumps(section.to_json()))
    return 1 if section.error else 0


if __name__ == "__main__":
    sys.exit(main())

"""The live scenario of a chaos run: lab hosts, real agents, networks, policies, Docker containers.

:class:`World` owns the lab and the cluster; ``close()`` tears everything
down (agents stopped, containers removed, namespaces deleted) and is safe
to call on any exit path, also half-way through ``build()``.
"""

from __future__ import annotations

import concurrent.futures
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshd.api import STATE_ERROR_OFFSET, ApiError, MsgType
from meshd.api.client import ApiRequestError
from meshd.state import ErrorCode
from tools.chaos._checks import ACKED, AMBIGUOUS, REFUSED, Ledger, Op
from tools.chaos._expect import StateView
from tools.chaos._topology import CHURN, Placed, Topology
from tools.cluster import Cluster
from tools.lab import Container, Lab, ensure_image

log = logging.getLogger("tools.chaos")
API_TIMEOUT_S = 5.0  # per attempt; a request is sent twice (same request_id) before it counts as ambiguous
AMBIGUOUS_CODES = {ApiError.UNAVAILABLE, ApiError.TIMEOUT, ApiError.INTERNAL, ApiError.INTERFACE_FAILED}
NOTES = {STATE_ERROR_OFFSET + ErrorCode.ALREADY_CONNECTED: "already connected",
         STATE_ERROR_OFFSET + ErrorCode.UNKNOWN_ENDPOINT: "unknown endpoint"}
DOCKER_WORKERS = 4


@dataclass
class World:
    """Everything a chaos run made, and the record of its API writes."""

    lab: Lab
    cluster: Cluster
    topo: Topology
    clock: Callable[[], float]  # seconds since the run started (for the ledger)
    containers: dict[str, Container] = field(default_factory=dict)  # probed containers by name
    churn: dict[str, Container] = field(default_factory=dict)  # churn container by host
    placed: tuple[Placed, ...] = ()
    ledger: Ledger = field(default_factory=Ledger)

    # ------------------------------------------------------------ lifecycle of the world
    def build(self, rng: random.Random) -> None:
        """Lab, agents (h1 bootstraps, the others join), networks, policies, containers, connects."""
        hosts = self.topo.hosts
        self.lab.up(len(hosts))
        ensure_image()
        self.cluster.start(hosts[0])
        self.cluster.wait(f"{hosts[0]} leads", lambda: self.status(hosts[0])["raft"]["role"] == "leader")
        for h in hosts[1:]:
            self.cluster.start(h, join=[self.lab.host(hosts[0]).underlay_ip])
        self.cluster.wait_members(hosts[0], len(hosts), timeout_s=60)
        for net in self.topo.networks:
            op = self.write_network("create", net.name, rng.choice(hosts), tenant=net.tenant, subnet=net.subnet)
            if op.outcome != ACKED:
                raise RuntimeError(f"setup: creating network {net.name} failed: {op}")
        for p in self.topo.policies:
            self.api(rng.choice(hosts), MsgType.POLICY_ADD, kind=p.kind, network=p.network,
                     **({"peer": p.peer} if p.peer else {}))
        self._start_containers()
        placed = []
        for spec in self.topo.containers:
            c = self.containers[spec.name]
            op = self.write_endpoint("connect", c, spec.network, rng.choice(hosts), ip=spec.ip)
            if op.outcome != ACKED:
                raise RuntimeError(f"setup: connecting {spec.name} to {spec.network} failed: {op}")
            assert op.ip is not None  # an acknowledged connect has its address
            placed.append(Placed(spec.name, spec.host, spec.network, self.topo.network(spec.network).tenant, op.ip))
        self.placed = tuple(placed)

    def _start_containers(self) -> None:
        wanted = [(s.host, s.name) for s in self.topo.containers] + list(self.topo.churn())
        with concurrent.futures.ThreadPoolExecutor(DOCKER_WORKERS) as pool:
            made = list(pool.map(lambda hn: self.lab.container(*hn), wanted))
        for c in made:
            if c.name == CHURN:
                self.churn[c.host] = c
            else:
                self.containers[c.name] = c

    def close(self) -> None:
        try:
            self.cluster.down()
        finally:
            self.lab.down()

    # ------------------------------------------------------------ reading
    def running_ids(self, host: str) -> set[str]:
        ids = {c.id for c in self.containers.values() if c.host == host}
        return ids | ({self.churn[host].id} if host in self.churn else set())

    def pids(self) -> dict[str, int]:
        return {name: c.pid for name, c in self.containers.items()}

    def status(self, host: str) -> dict[str, Any]:
        return self.cluster.query(host, MsgType.QUERY_STATUS)

    def replica(self, host: str) -> StateView:
        """``host``'s replica as its control socket lists it."""
        q = self.cluster.query
        # ``running`` is what the host knows of its own containers, not replicated state
        endpoints = ({k: v for k, v in e.items() if k != "running"}
                     for e in q(host, MsgType.QUERY_ENDPOINTS)["endpoints"])
        return StateView(tuple(q(host, MsgType.NETWORK_LIST)["networks"]),
                         tuple(endpoints),
                         tuple(q(host, MsgType.POLICY_LIST)["policies"]))

    def leader(self) -> str | None:
        """The host most running agents name as Raft leader (None: no leader now)."""
        votes: dict[str, int] = {}
        for host in self.cluster.agents:
            try:
                leader = self.status(host)["raft"]["leader"]
            except (TimeoutError, OSError):
                continue
            if leader:
                votes[leader] = votes.get(leader, 0) + 1
        return max(votes, key=lambda h: votes[h]) if votes else None

    # ------------------------------------------------------------ writing through the scheduler API
    def api(self, via: str, msg_type: MsgType, **fields: Any) -> dict[str, Any]:
        """One request to ``via``'s scheduler API, from inside ``via``'s netns."""
        with self.cluster.scheduler(via, timeout_s=API_TIMEOUT_S) as client:
            return client.request(msg_type, **fields)

    def _outcome(self, op: str, via: str, msg_type: MsgType, **fields: Any) -> tuple[Op, dict[str, Any]]:
        at = self.clock()
        try:
            result = self.api(via, msg_type, **fields)
        except ApiRequestError as exc:
            kind = AMBIGUOUS if exc.code in AMBIGUOUS_CODES else REFUSED
            return Op(at, op, kind, note=NOTES.get(exc.code, f"[{exc.code}] via {via}")), {}
        except TimeoutError:
            return Op(at, op, AMBIGUOUS, note=f"no answer from {via}"), {}
        return Op(at, op, ACKED, ip=result.get("ip"), note=f"via {via}"), result

    def write_endpoint(self, op: str, c: Container, network: str, via: str, ip: str | None = None) -> Op:
        """Connect or disconnect ``c`` in ``network`` through ``via``; recorded in the ledger."""
        if op == "connect":
            extra = {"ip": ip} if ip else {}
            rec, _ = self._outcome(op, via, MsgType.ENDPOINT_CONNECT, container_id=c.id, network=network,
                                   host=c.host, container_name=c.docker_name, **extra)
        else:
            rec, _ = self._outcome(op, via, MsgType.ENDPOINT_DISCONNECT, container_id=c.id, network=network)
        self.ledger.endpoint(c.id, network, rec)
        log.debug("%s %s %s via %s: %s", op, c.name, network, via, rec)
        return rec

    def write_network(self, op: str, name: str, via: str, *, tenant: str = "", subnet: str = "") -> Op:
        if op == "create":
            rec, _ = self._outcome(op, via, MsgType.NETWORK_CREATE, name=name, tenant=tenant, subnet=subnet)
        else:
            rec, _ = self._outcome(op, via, MsgType.NETWORK_DELETE, name=name, force=True)
        self.ledger.network(name, rec)
        return rec


def make_world(lab: Lab, workdir: Path, topo: Topology, profile: str, clock: Callable[[], float]) -> World:
    return World(lab, Cluster(lab, workdir, profile=profile), topo, clock)


def wait_until(what: str, predicate: Callable[[], Any], timeout_s: float, interval_s: float = 0.3) -> Any:
    """Poll ``predicate`` until it returns something true; return its last value either way."""
    deadline = time.monotonic() + timeout_s
    last = None
    while True:
        try:
            last = predicate()
        except (TimeoutError, OSError) as exc:
            last = None
            log.debug("%s: %s", what, exc)
        if last or time.monotonic() >= deadline:
            return last
        time.sleep(interval_s)

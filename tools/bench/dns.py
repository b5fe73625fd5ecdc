"""Report section "dns": service discovery and DNS (issue 17) beside Docker's embedded DNS.

    sudo .venv/bin/python -m tools.bench.dns [--reps 3] [--quick]

A lab of N hosts (20; quick 5) runs real agents (profile ``local``). One
vxlan network of tenant ``bench``; on every host a sandbox process in its own
netns (``unshare -n``) is connected through that host's control socket, so
every host answers DNS at the gateway. Queries are sent from inside the
sandboxes' netns (sockets made there by this process), as a container's
resolver would send them. Per repetition:

* **publish → resolvable**: ``PUBLISHES`` times, a service is published
  through the control socket of one host (for an endpoint of another); t0 is
  just before the request; each host's sandbox asks for the name every 2 ms
  until its gateway answers with the address. Samples: every (publish, host).
* **query latency and throughput**: a closed loop of 1 and of 64 clients
  (one UDP socket each, the next query when the answer is in, like dnsperf
  ``-c``) for ``LOAD_S`` seconds against one host's gateway, asking for a
  published service (A). The same generator, in the same run, against
  Docker's embedded DNS (127.0.0.11) from a container on a Docker user
  bridge network, asking for another container's name. The generator is one
  Python thread: at 64 clients it, not the servers, may be the bound.
* **application death → gone**: a TCP listener in one sandbox is published
  with ``check=tcp, interval_s=1, ttl_s=2``; t0 when the listener closes;
  another host's sandbox asks until the name is NXDOMAIN.
"""

from __future__ import annotations

import contextlib
import functools
import random
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from dnslib import QTYPE, RCODE, DNSRecord

from tools.bench._figures import Budget, Section, percentile, section_main
from tools.bench._proc import die_with_parent

HOSTS, QUICK_HOSTS = 20, 5
PUBLISHES, QUICK_PUBLISHES = 20, 5
LOAD_S, QUICK_LOAD_S = 3.0, 1.0
CLIENTS = (1, 64)
SUBNET, GATEWAY, NETWORK, TENANT = "10.77.0.0/16", "10.77.0.1", "dnsb", "bench"
WORKDIR = Path("/var/tmp/bench-dns")
START_WAVE = 5


def estimate_s(budget: Budget) -> float:
    return 60 + budget.reps * (40 if budget.quick else 120)


# --- DNS from inside a netns ---------------------------------------------------------------


def _sock_in(pid: int) -> socket.socket:
    import netops

    with netops.in_netns(f"/proc/{pid}/ns/net"):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setblocking(False)
    return s


def _ask(sock: socket.socket, server: str, name: str, timeout_s: float = 0.05) -> DNSRecord | None:
    q = DNSRecord.question(name, "A")
    sock.sendto(q.pack(), (server, 53))
    deadline = time.monotonic() + timeout_s
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ)
    try:
        while (left := deadline - time.monotonic()) > 0:
            if not sel.select(left):
                return None
            data = sock.recv(4096)
            r = DNSRecord.parse(data)
            if r.header.id == q.header.id:
                return r
        return None
    finally:
        sel.close()


def _answers(sock: socket.socket) -> bool:
    return _ask(sock, GATEWAY, "nothing.meshd", 0.2) is not None


def _has(r: DNSRecord | None, ip: str) -> bool:
    return r is not None and any(rr.rtype == QTYPE.A and str(rr.rdata) == ip for rr in r.rr)


def load(sock_factory: Any, server: str, qname: str, clients: int, duration_s: float) -> tuple[list[float], float, int]:
    """Closed-loop load: (latencies in ms, answers per second, timeouts)."""
    sel = selectors.DefaultSelector()
    socks = [sock_factory() for _ in range(clients)]
    pending: dict[socket.socket, tuple[int, float]] = {}
    lat: list[float] = []
    timeouts = 0

    def send(s: socket.socket) -> None:
        qid = random.getrandbits(16)
        q = DNSRecord.question(qname, "A")
        q.header.id = qid
        pending[s] = (qid, time.perf_counter())
        s.sendto(q.pack(), (server, 53))

    for s in socks:
        sel.register(s, selectors.EVENT_READ)
        send(s)
    t_end = time.perf_counter() + duration_s
    answered = 0
    try:
        while (now := time.perf_counter()) < t_end:
            for key, _ in sel.select(0.05):
                s = key.fileobj
                assert isinstance(s, socket.socket)
                data = s.recv(4096)
                qid, sent = pending[s]
                if len(data) >= 2 and int.from_bytes(data[:2], "big") == qid:
                    lat.append((time.perf_counter() - sent) * 1000)
                    answered += 1
                    send(s)
            for s, (_, sent) in list(pending.items()):
                if now - sent > 1.0:
                    timeouts += 1
                    send(s)
    finally:
        sel.close()
        for s in socks:
            s.close()
    return lat, answered / duration_s, timeouts


# --- the rig -------------------------------------------------------------------------------


class Rig:
    def __init__(self, n: int) -> None:
        from tools.lab import Lab, unique_prefix

        self.n = n
        self.lab = Lab(unique_prefix("d"))
        self.cluster: Any = None
        self.sandboxes: dict[str, subprocess.Popen[bytes]] = {}
        self.ips: dict[str, str] = {}
        self.docker: list[str] = []
        self.docker_net = f"{self.lab.prefix}-dnsb"
        self.setup: dict[str, Any] = {}

    def hosts(self) -> list[str]:
        return [f"h{i}" for i in range(1, self.n + 1)]

    def request(self, via: str, msg_type: Any, **fields: Any) -> dict[str, Any]:
        from meshd.api.client import ApiRequestError

        fields["request_id"] = f"dnsb-{time.time_ns()}"
        client = self.cluster.control(via, timeout_s=20)
        try:
            for _ in range(10):
                try:
                    result: dict[str, Any] = client.request(msg_type, **fields)
                    return result
                except ApiRequestError as exc:
                    if exc.code != 12:  # UNAVAILABLE
                        raise
                    time.sleep(1.0)
            raise TimeoutError(f"{msg_type.name} via {via}: the cluster stayed unavailable")
        finally:
            client.close()

    def build(self) -> None:
        from meshd.api import MsgType
        from tools.cluster import Cluster

        t0 = time.monotonic()
        self.lab.up(self.n)
        self.cluster = c = Cluster(self.lab, WORKDIR / self.lab.prefix, profile="local")
        c.start("h1")
        c.wait("h1 leads", lambda: c.query("h1", MsgType.QUERY_STATUS)["raft"]["role"] == "leader", timeout_s=120)
        names = self.hosts()
        for first in range(1, len(names), START_WAVE):
            for name in names[first:first + START_WAVE]:
                c.start(name, join=[self.lab.host("h1").underlay_ip])
            c.wait_members("h1", min(len(names), first + START_WAVE), timeout_s=120)
        self.request("h1", MsgType.NETWORK_CREATE, name=NETWORK, subnet=SUBNET, tenant=TENANT)
        for name in names:
            sb = subprocess.Popen(["unshare", "-n", "sleep", "1000000"], preexec_fn=die_with_parent)
            self.sandboxes[name] = sb
            ep = self.request(name, MsgType.ENDPOINT_CONNECT, container_id=f"dnsb-{name}", network=NETWORK,
                              pid=sb.pid)
            self.ips[name] = ep["ip"]
        for name in names:  # every gateway answers (NXDOMAIN for an unknown name)
            sock = _sock_in(self.sandboxes[name].pid)
            with sock:
                c.wait(f"{name} answers DNS", functools.partial(_answers, sock), timeout_s=60)
        self.setup["agents_up_s"] = round(time.monotonic() - t0, 1)
        self._docker()

    def _docker(self) -> None:
        subprocess.run(["docker", "network", "create", "--driver", "bridge", "--label",
                        f"meshd.bench={self.lab.prefix}", self.docker_net], check=True, capture_output=True)
        for name in ("dnsa", "dnsb"):
            cid = subprocess.run(["docker", "run", "-d", "--network", self.docker_net, "--name",
                                  f"{self.lab.prefix}-{name}", "--label", f"meshd.bench={self.lab.prefix}",
                                  "meshd-busybox:latest", "sleep", "3600"], check=True, capture_output=True,
                                 text=True).stdout.strip()
            self.docker.append(cid)

    def docker_pid(self) -> int:
        out = subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", self.docker[0]], check=True,
                             capture_output=True, text=True)
        return int(out.stdout.strip())

    def teardown(self) -> None:
        for cid in self.docker:
            subprocess.run(["docker", "rm", "-f", cid], capture_output=True)
        subprocess.run(["docker", "network", "rm", self.docker_net], capture_output=True)
        if self.cluster is not None:
            for a in list(self.cluster.agents.values()):
                with contextlib.suppress(OSError):
                    a.proc.send_signal(signal.SIGTERM)
            for a in list(self.cluster.agents.values()):
                try:
                    a.proc.wait(20)
                except subprocess.TimeoutExpired:
                    a.proc.kill()
                    a.proc.wait()
            self.cluster.agents.clear()
            self.cluster.cleanup_workdir()
        for sb in self.sandboxes.values():
            sb.kill()
            sb.wait()
        self.lab.down()


# --- measurements --------------------------------------------------------------------------


def publish_to_resolvable(r: Rig, publishes: int, tag: str) -> tuple[list[float], list[float]]:
    """(every (publish, host) delay, the per-publish max over hosts), seconds."""
    from meshd.api import MsgType

    names = r.hosts()
    socks = {h: _sock_in(r.sandboxes[h].pid) for h in names}
    samples: list[float] = []
    worst: list[float] = []
    try:
        for i in range(publishes):
            owner, via = names[i % len(names)], names[(i + 1) % len(names)]
            svc = f"p{tag}-{i}"
            t0 = time.monotonic()
            r.request(via, MsgType.SERVICE_PUBLISH, name=svc, container_id=f"dnsb-{owner}", port=80)
            todo = set(names)
            deadline = t0 + 30
            while todo and time.monotonic() < deadline:
                for h in list(todo):
                    if _has(_ask(socks[h], GATEWAY, f"{svc}.meshd", 0.02), r.ips[owner]):
                        samples.append(time.monotonic() - t0)
                        todo.discard(h)
                if todo:
                    time.sleep(0.002)
            worst.append(time.monotonic() - t0 if todo else max(samples[-len(names):]))
    finally:
        for s in socks.values():
            s.close()
    return samples, worst


def app_death(r: Rig, tag: str) -> float:
    import netops
    from meshd.api import MsgType

    owner, asker = r.hosts()[0], r.hosts()[-1]
    with netops.in_netns(f"/proc/{r.sandboxes[owner].pid}/ns/net"):
        app = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    app.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    app.bind((r.ips[owner], 7000))
    app.listen(64)
    svc = f"app{tag}"
    r.request(owner, MsgType.SERVICE_PUBLISH, name=svc, container_id=f"dnsb-{owner}", port=7000, check="tcp",
              interval_s=1, ttl_s=2)
    sock = _sock_in(r.sandboxes[asker].pid)
    try:
        r.cluster.wait("app resolvable", lambda: _has(_ask(sock, GATEWAY, f"{svc}.meshd", 0.05), r.ips[owner]),
                       timeout_s=30)
        app.close()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 30:
            ans = _ask(sock, GATEWAY, f"{svc}.meshd", 0.05)
            if ans is not None and ans.header.rcode == RCODE.NXDOMAIN:
                return time.monotonic() - t0
            time.sleep(0.01)
        return float("nan")
    finally:
        sock.close()
        r.request(owner, MsgType.SERVICE_UNPUBLISH, name=svc, network=NETWORK)


def run(budget: Budget) -> Section:
    n = QUICK_HOSTS if budget.quick else HOSTS
    publishes = QUICK_PUBLISHES if budget.quick else PUBLISHES
    load_s = QUICK_LOAD_S if budget.quick else LOAD_S
    section = Section(
        "dns", f"Service discovery and DNS: {n} agents, beside Docker's embedded DNS",
        method=__doc__.split("\n\n", 2)[2].strip(),
        setup={"hosts": n, "publishes_per_rep": publishes, "load_s": load_s, "reps": budget.reps,
               "profile": "local"},
    )
    r = Rig(n)
    try:
        r.build()
        from meshd.api import MsgType

        r.request("h1", MsgType.SERVICE_PUBLISH, name="target", container_id="dnsb-h2", port=80)
        dpid = r.docker_pid()
        peer = f"{r.lab.prefix}-dnsb"
        for rep in range(budget.reps):
            samples, worst = publish_to_resolvable(r, publishes, str(rep))
            section.figure("dns.meshd.publish_to_resolvable.p50_s", f"publish → resolvable, p50 (every host, "
                           f"{n} agents)", "s").add(percentile(samples, 50))
            section.figure("dns.meshd.publish_to_resolvable.p99_s", f"publish → resolvable, p99 (every host, "
                           f"{n} agents)", "s", goal=("<=", 1.0)).add(percentile(samples, 99))
            section.figure("dns.meshd.publish_to_resolvable.max_s", "publish → resolvable on all hosts, max",
                           "s").add(max(worst))
            for clients in CLIENTS:
                targets = (("meshd", r.sandboxes["h1"].pid, GATEWAY, "target.meshd"),
                           ("docker", dpid, "127.0.0.11", peer))
                for who, pid, server, qname in targets:
                    lat, qps, timeouts = load(functools.partial(_sock_in, pid), server, qname, clients, load_s)
                    anchor = "" if who == "docker" else "Docker embedded DNS, same run"
                    suffix = "" if clients == 1 else f".c{clients}"
                    section.figure(f"dns.{who}.query{suffix}.p50_ms", f"{who}: query latency p50, {clients} "
                                   "client(s)", "ms", anchor=anchor,
                                   ratio_to=f"dns.docker.query{suffix}.p50_ms" if anchor else "").add(
                                       percentile(lat, 50))
                    section.figure(f"dns.{who}.query{suffix}.p99_ms", f"{who}: query latency p99, {clients} "
                                   "client(s)", "ms").add(percentile(lat, 99))
                    section.figure(f"dns.{who}.query{suffix}.qps", f"{who}: answers per second, {clients} "
                                   "client(s)", "/s").add(qps)
                    if timeouts:
                        section.notes.append(f"rep {rep + 1}: {who}, {clients} clients: {timeouts} queries "
                                             "unanswered within 1 s (resent)")
            section.figure("dns.meshd.app_death_to_gone_s", "application death → record gone (tcp check, "
                           "interval 1 s, TTL 2 s)", "s", goal=("<=", 3.0),
                           goal_text="≤ TTL + one check interval").add(app_death(r, str(rep)))
        section.setup.update(r.setup)
    except Exception as exc:  # the report shows the error; the rig is torn down
        section.error = f"{type(exc).__name__}: {exc}"
    finally:
        r.teardown()
    return section


def main(argv: list[str] | None = None) -> int:
    return section_main(run, __doc__, f"{QUICK_HOSTS} agents, {QUICK_PUBLISHES} publishes, {QUICK_LOAD_S} s loads",
                        argv)


if __name__ == "__main__":
    sys.exit(main())

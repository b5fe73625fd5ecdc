"""Run real meshd agents in lab hosts: the harness of the demo and the e2e tests.

Each agent is a separate ``meshd agent`` process inside its host's network
namespace, with its own data and run directories under ``workdir``, the lab's
shared cluster secret, and a scheduler client key ("lab") admitted on every
host.  Several agents share this machine, so each gets its own tenant-router
namespace prefix (``<lab prefix>-r<N>-``), which the lab's ``down`` removes.

    with Lab("mdemo") as lab, Cluster(lab, Path("/tmp/mdemo")) as cluster:
        lab.up(3)
        cluster.start("h1")
        cluster.start("h2", join=["192.0.2.11"])
        cluster.wait_members("h1", 2)
        with cluster.scheduler("h1") as api:          # runs inside h1's netns
            api.request(MsgType.NETWORK_CREATE, name="blue", subnet="10.1.0.0/24")
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshd.api import MsgType
from meshd.api.client import SchedulerClient
from meshd.transport import (
    ClusterKeys,
    KeyPair,
    format_client_key,
    format_secret,
    new_secret,
    read_client_key,
    write_private,
)
from tools.lab import LABEL_HOST, LABEL_PREFIX, Lab, LabHost

MESHD = [sys.executable, "-m", "meshd"]


@dataclass
class AgentProcess:
    host: LabHost
    proc: subprocess.Popen
    log: Path
    data_dir: Path
    run_dir: Path


class Cluster:
    """Agents in a :class:`~tools.lab.Lab`; see the module docstring."""

    def __init__(self, lab: Lab, workdir: Path, *, profile: str = "local", extra_args: tuple[str, ...] = ()) -> None:
        self.lab = lab
        self.workdir = workdir
        self.profile = profile
        self.extra_args = extra_args
        self.agents: dict[str, AgentProcess] = {}
        self._log_flags = ("--set", f"agent.log_level={os.environ.get('MESHD_LAB_LOG_LEVEL', 'info')}")
        shutil.rmtree(workdir, ignore_errors=True)  # a cluster always starts from scratch
        workdir.mkdir(parents=True)
        self.secret = workdir / "secret"
        secret = new_secret()
        write_private(self.secret, format_secret(secret), force=True)
        self.clients = workdir / "clients"
        self.clients.mkdir(exist_ok=True)
        key_text, pub_text = format_client_key("lab", KeyPair.generate(), ClusterKeys.from_secret(secret).api.public)
        write_private(workdir / "lab.key", key_text, force=True)
        write_private(self.clients / "lab.pub", pub_text, force=True)
        self.client_key = read_client_key(workdir / "lab.key")

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    def start(self, host: str | LabHost, *, join: Sequence[str] = (), extra: tuple[str, ...] = ()) -> AgentProcess:
        """Start ``meshd agent`` in ``host`` (joining through ``join`` addresses if given)."""
        h = self.lab.host(host)
        index = int(h.name.lstrip("h") or 0)
        base = self.workdir / h.name
        data, run = base / "data", base / "run"
        data.mkdir(parents=True, exist_ok=True)
        args = [*MESHD, "agent", "--profile", self.profile, "--name", h.name, "--advertise", h.underlay_ip,
                "--data-dir", str(data), "--run-dir", str(run), "--secret", str(self.secret),
                "--router-prefix", f"{self.lab.prefix}-r{index}-", *self._log_flags,
                "--set", f"api.clients_dir={self.clients}",
                "--set", f'agent.container_labels=["{LABEL_HOST}={h.name}", "{LABEL_PREFIX}={self.lab.prefix}"]',
                "--set", 'api.docker_plugin=""',  # the lab's agents share one dockerd: a test names its plugin
                *self.extra_args, *extra]
        for address in join:
            args += ["--join", address]
        log = base / "agent.log"
        # nsenter, not `ip netns exec`: the agent must share the machine's mount namespace,
        # or the tenant-router namespaces it mounts under /run/netns would die with it
        argv = ["nsenter", f"--net=/run/netns/{h.netns}", "--", *args]
        with log.open("ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                    env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.agents[h.name] = AgentProcess(h, proc, log, data, run)
        return self.agents[h.name]

    def stop(self, host: str, *, timeout_s: float = 20.0) -> int:
        """SIGTERM (as ``systemctl stop``: the agent stops without leaving) and wait; returns the exit code."""
        agent = self.agents.pop(host)
        agent.proc.send_signal(signal.SIGTERM)
        return _wait_or_kill(agent.proc, timeout_s)

    def leave(self, host: str, *, timeout_s: float = 20.0, cli: bool = True) -> int:
        """``meshd leave`` (the CLI, on the host's control socket): a graceful leave; waits for the agent to exit.
        ``cli=False`` sends its CONTROL_LEAVE from this process (no CLI start-up in timings)."""
        agent = self.agents.pop(host)
        if cli:
            subprocess.run([*MESHD, "leave", "--run-dir", str(agent.run_dir)], check=True, capture_output=True,
                           timeout=timeout_s)
        else:
            client = SchedulerClient.local(str(agent.run_dir), timeout_s=timeout_s)
            try:
                client.request(MsgType.CONTROL_LEAVE)
            finally:
                client.close()
        return _wait_or_kill(agent.proc, timeout_s)

    def kill(self, host: str) -> None:
        """SIGKILL: a crash (no leave, no cleanup)."""
        agent = self.agents.pop(host)
        agent.proc.kill()
        agent.proc.wait()

    def down(self, *, timeout_s: float = 20.0) -> None:
        """Stop every agent: SIGTERM to all at once, then SIGKILL to those still running after ``timeout_s``
        (a lab of 200 agents stops in one grace period, not 200)."""
        agents = list(self.agents.values())
        self.agents.clear()
        for a in agents:
            with contextlib.suppress(OSError):
                a.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for a in agents:
            _wait_or_kill(a.proc, max(0.1, deadline - time.monotonic()))

    def control(self, host: str, timeout_s: float = 5.0) -> SchedulerClient:
        """A client of ``host``'s local control socket (ipc works from any netns)."""
        return SchedulerClient.local(str(self.workdir / host / "run"), timeout_s=timeout_s)

    def query(self, host: str, msg_type: MsgType, **fields: Any) -> dict[str, Any]:
        client = self.control(host)
        try:
            return client.request(msg_type, **fields)
        finally:
            client.close()

    def raft_status(self, via: str = "h1") -> dict[str, Any]:
        """QUERY_STATUS's ``raft`` of the leader ``via`` names, or ``via``'s own when it knows no
        leader or the leader does not answer (check ``role``). Raises TimeoutError or OSError
        when ``via`` does not answer."""
        raft: dict[str, Any] = self.query(via, MsgType.QUERY_STATUS)["raft"]
        if raft["role"] != "leader" and raft["leader"] in self.agents:
            with contextlib.suppress(TimeoutError, OSError):
                raft = self.query(raft["leader"], MsgType.QUERY_STATUS)["raft"]
        return raft

    def voter_pids(self, via: str = "h1") -> list[int]:
        """PIDs of the Raft voters this cluster runs, as :meth:`raft_status` lists them (without a
        leader: the voters of ``via``'s own log, the ones an election needs)."""
        return [self.agents[v].proc.pid for v in self.raft_status(via)["voters"] if v in self.agents]

    @contextlib.contextmanager
    def scheduler(self, host: str, *, via: str | None = None, timeout_s: float = 10.0) -> Iterator[SchedulerClient]:
        """A scheduler API client of ``host``, running inside ``via``'s netns (default ``host``).

        The client's sockets are made while this thread is in that namespace,
        so ZeroMQ's I/O thread (created with the first socket) lives there too.
        """
        import netops

        target, inside = self.lab.host(host), self.lab.host(via or host)
        with netops.in_netns(f"/run/netns/{inside.netns}"):
            client = SchedulerClient(target.underlay_ip, key=self.client_key, timeout_s=timeout_s)
            try:
                yield client
            finally:
                client.close()

    def wait(self, what: str, predicate: Callable[[], Any], timeout_s: float = 30.0, interval_s: float = 0.1) -> Any:
        """Poll ``predicate`` until truthy; raise TimeoutError naming ``what`` and the agent logs."""
        deadline = time.monotonic() + timeout_s
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = predicate()
            except (TimeoutError, OSError) as exc:
                last = exc
            if last and not isinstance(last, Exception):
                return last
            time.sleep(interval_s)
        logs = {h: a.log for h, a in self.agents.items()}
        raise TimeoutError(f"{what} did not happen within {timeout_s}s (last: {last!r}); agent logs: {logs}")

    def members(self, host: str) -> dict[str, str]:
        """``{name: state}`` as ``host`` sees them."""
        return {m["name"]: m["state"] for m in self.query(host, MsgType.QUERY_MEMBERS)["members"]}

    def wait_members(self, host: str, count: int, timeout_s: float = 30.0) -> dict[str, str]:
        return self.wait(f"{count} alive members seen by {host}",
                         lambda: (m := self.members(host)) and sum(s == "alive" for s in m.values()) >= count and m,
                         timeout_s)

    def cleanup_workdir(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


def _wait_or_kill(proc: subprocess.Popen, timeout_s: float) -> int:
    try:
        return proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()

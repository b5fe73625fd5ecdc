"""Gossip benchmark: real processes on loopback, one per member, meshd beside Serf.

Usage::

    .venv/bin/python tools/bench/gossip.py                     # N = 10 30 50, faults, serf too
    .venv/bin/python tools/bench/gossip.py --sizes 10 --fault-seconds 20 --no-serf
    .venv/bin/python tools/bench/gossip.py --profile local     # meshd's fast profile
    .venv/bin/python tools/bench/gossip.py --join-storm 50 100 200   # N members started at once
    .venv/bin/python tools/bench/gossip.py --sizes 50 --profile local --no-serf --faults --hogs 8
                                                               # ... with 8 busy loops loading the machine
    .venv/bin/python tools/bench/gossip.py --sizes 50 --profile local --hogs 24 --leave-after-join 10

Method (the same for both): every member is a process (``python -m
meshd.gossip`` with CURVE on, or ``serf agent`` with its keyring
encryption); each membership event is stamped with the wall clock when the
bench reads the member's report (meshd: its JSON event line; Serf: its
``EventMember*`` / ``Suspect`` log line).  Per N it measures: a new member's
join seen by all; its graceful leave seen by all (and how many reported it as
a failure); kill -9 of a member to the first suspicion and to all reporting
failed; idle CPU %, RSS and bytes written per second per member
(/proc/<pid>/stat, status, io over an idle window).  Fault runs at N = 10
count false failures: CPU hogs, one member frozen 500/800/1500 ms of every
2 s (SIGSTOP/SIGCONT), one member held to a 2 % CPU quota (cgroup v1 cpu),
10 % inbound packet loss on one member's gossip port (nftables).

Prints one JSON line per (implementation, N) and per fault run, then ratio
lines meshd/serf.  Needs root for the cgroup and nftables faults (skipped
otherwise).  ``apt-get install serf`` for the Serf side.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tools.bench._ports import free_ports

CLK_TCK = os.sysconf("SC_CLK_TCK")
_SERF_EVENT = re.compile(r"serf: EventMember(Join|Leave|Failed|Update|Reap): (\S+)")
_SERF_SUSPECT = re.compile(r"memberlist: Suspect (\S+) has failed")
_SERF_KINDS = {"Join": "join", "Leave": "leave", "Failed": "fail", "Update": "update",
               "Reap": "reap"}


def _proc_int(pattern: str, path: Path) -> int:
    """The number ``pattern``'s group 1 matches in the /proc file ``path``."""
    m = re.search(pattern, path.read_text())
    if m is None:
        raise RuntimeError(f"{path} has no {pattern!r}")
    return int(m[1])


class Member:
    """One member process; a reader thread turns its output into stamped events.

    ``events`` holds dicts with at least ``t`` (wall clock when read),
    ``event`` and, for membership events, ``member``.
    """

    #: wall-clock start of the process (set by ``Serf.start``, which times its own join)
    started: float

    def __init__(self, name: str, cmd: list[str], parse: Callable[[str], dict | None],
                 port: int = 0) -> None:
        self.name, self.port = name, port
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, bufsize=1)
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._parse = parse
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            item = self._parse(line)
            if item is not None:
                item.setdefault("t", time.time())
                with self._lock:
                    self.events.append(item)

    def find(self, event: str | None = None, member: str | None = None,
             after: float = 0.0) -> list[dict[str, Any]]:
        with self._lock:
            return [x for x in self.events if (event is None or x["event"] == event)
                    and (member is None or x.get("member") == member) and x["t"] >= after]

    def wait_for(self, event: str, member: str | None = None, *, timeout_s: float = 30.0,
                 after: float = 0.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = self.find(event, member, after)
            if found:
                return found[0]
            if self.proc.poll() is not None:
                break
            time.sleep(0.01)
        raise TimeoutError(f"{self.name}: no {event} {member or ''} within {timeout_s} s "
                           f"(exit={self.proc.poll()}); last: {self.events[-3:]}")

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)

    def usage(self) -> tuple[float, int, int]:
        """(cpu seconds, RSS bytes, bytes written) of the process so far."""
        pid = self.proc.pid
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(stat[11]) + int(stat[12])) / CLK_TCK
        rss = _proc_int(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status")) * 1024
        wchar = _proc_int(r"wchar: (\d+)", Path(f"/proc/{pid}/io"))
        return cpu, rss, wchar


# --- the two implementations -------------------------------------------------


def _meshd_parse(line: str) -> dict | None:
    try:
        item = json.loads(line)
    except ValueError:
        return None
    return item if isinstance(item, dict) and "event" in item else None


def _serf_parse(line: str) -> dict | None:
    m = _SERF_EVENT.search(line)
    if m:
        return {"event": _SERF_KINDS[m[1]], "member": m[2]}
    m = _SERF_SUSPECT.search(line)
    if m:
        return {"event": "suspect", "member": m[1]}
    return None


class Meshd:
    label = "meshd"
    leave_signal = signal.SIGTERM

    def __init__(self, workdir: Path, profile: str) -> None:
        from meshd.transport import format_secret, new_secret, write_private

        self.secret = workdir / "secret"
        write_private(self.secret, format_secret(new_secret()), force=True)
        self.profile = profile

    def start(self, name: str, join: str | None) -> Member:
        # Port 0: the agent binds a free port itself and reports it when ready
        # (a port picked here could be taken by another process meanwhile).
        cmd = [sys.executable, "-m", "meshd.gossip", "--name", name, "--secret-file",
               str(self.secret), "--profile", self.profile, "--bind", "tcp://127.0.0.1:0"]
        if join:
            cmd += ["--join", join, "--join-timeout-s", "120"]
        return Member(name, cmd, _meshd_parse)

    def address(self, m: Member) -> str:
        addr = m.wait_for("ready", timeout_s=60)["addr"]
        m.port = int(addr.rsplit(":", 1)[1])
        return addr

    def started_at(self, m: Member) -> float:
        self.address(m)
        return m.wait_for("ready", timeout_s=60)["t"]


class Serf:
    label = "serf"
    leave_signal = signal.SIGINT  # serf leaves gracefully on interrupt

    def __init__(self, workdir: Path, profile: str) -> None:
        self.key = base64.b64encode(os.urandom(32)).decode()
        self.profile = "lan" if profile == "lan" else "local"

    def start(self, name: str, join: str | None) -> Member:
        port, rpc_port = free_ports(2)
        cmd = ["serf", "agent", f"-node={name}", f"-bind=127.0.0.1:{port}",
               f"-rpc-addr=127.0.0.1:{rpc_port}", f"-encrypt={self.key}",
               f"-profile={self.profile}", "-log-level=info"]
        if join:
            cmd.append(f"-join={join}")
        member = Member(name, cmd, _serf_parse, port)
        member.started = time.time()
        return member

    def address(self, m: Member) -> str:
        return f"127.0.0.1:{m.port}"

    def started_at(self, m: Member) -> float:
        m.wait_for("join", m.name, timeout_s=60)  # up: it reports itself first
        return m.started  # a Go binary starts in milliseconds


# --- measurements --------------------------------------------------------------


def start_cluster(impl: Any, n: int, prefix: str) -> list[Member]:
    first = impl.start(f"{prefix}0", None)
    impl.started_at(first)
    members = [first] + [impl.start(f"{prefix}{i}", impl.address(first)) for i in range(1, n)]
    names = [m.name for m in members]
    try:
        for m in members:
            for other in names:
                if other != m.name:
                    m.wait_for("join", other, timeout_s=180)
    except BaseException:
        for m in members:
            m.stop()
        raise
    return members


def join_storm(impl: Any, n: int) -> dict[str, Any]:
    """N members started at once: do all join, and how long until every one sees every other."""
    t0 = time.time()
    try:
        members = start_cluster(impl, n, "s")
    except TimeoutError as exc:
        return {"impl": impl.label, "profile": impl.profile, "join_storm": n, "all_joined": False, "error": str(exc)}
    took = time.time() - t0
    for m in members:
        m.stop()
    return {"impl": impl.label, "profile": impl.profile, "join_storm": n, "all_joined": True,
            "all_see_all_s": round(took, 1)}


def seen_by_all(members: list[Member], event: str, who: str, t0: float,
                timeout_s: float = 60.0) -> tuple[float | None, list[dict]]:
    """Seconds from ``t0`` until every member reported ``event`` about ``who``."""
    firsts = []
    try:
        for m in members:
            firsts.append(m.wait_for(event, who, after=t0, timeout_s=timeout_s))
    except TimeoutError:
        return None, firsts
    return max(x["t"] for x in firsts) - t0, firsts


def busy_loops(k: int) -> list[subprocess.Popen]:
    """K processes that each keep a core busy (``stop_all`` ends them)."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(k)]


def stop_all(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.kill()
        p.wait()


def measure_size(impl: Any, n: int, idle_s: float, kill_trials: int = 3, hogs: int = 0) -> dict[str, Any]:
    """Join, leave, idle use and kill -9 detection at N members; with ``hogs``, that many busy-loop
    processes load the machine from the moment the cluster has formed to the end (the idle
    window is then the time the load runs before the joins and kills; its CPU figures include the
    starvation), and ``load_avg_1m`` is the load average after it and at the end."""
    members = start_cluster(impl, n, "m")
    out: dict[str, Any] = {"impl": impl.label, "profile": impl.profile, "members": n}
    joiner = members[0]
    loaders = busy_loops(hogs)
    if hogs:
        out["hogs"] = hogs
    try:
        out.update(_idle_usage(members, idle_s))
        out["load_avg_1m"] = [round(os.getloadavg()[0], 1)]
        joiner = impl.start("joiner", impl.address(members[1]))
        members.append(joiner)  # stopped with the rest, whatever happens
        t0 = impl.started_at(joiner)
        members.pop()
        joined, _ = seen_by_all(members, "join", "joiner", t0)
        out["join_seen_by_all_s"] = joined and round(joined, 3)
        t_leave = time.time()
        joiner.signal(impl.leave_signal)
        left, _ = seen_by_all(members, "leave", "joiner", t_leave, 30.0)
        out["leave_seen_by_all_s"] = left and round(left, 3)
        time.sleep(1.0)
        out["leave_reported_as_fail"] = sum(1 for m in members if m.find("fail", "joiner"))
        joiner.stop()
        live, victims, detect, suspect = list(members), [], [], []
        for _ in range(kill_trials):
            victim = live.pop()
            victims.append(victim.name)
            t_kill = time.time()
            victim.stop()
            all_failed, _ = seen_by_all(live, "fail", victim.name, t_kill, 120.0)
            detect.append(all_failed)
            suspect.append(_first(live, "suspect", victim.name, t_kill))
        out["kill_all_failed_s"] = [None if d is None else round(d, 3) for d in detect]
        out["kill_first_suspect_s"] = suspect
        out["false_failures"] = _false_failures(live, {*victims, "joiner"})
        out["load_avg_1m"].append(round(os.getloadavg()[0], 1))
    finally:
        stop_all(loaders)
        for m in [*members, joiner]:
            m.stop()
    return out


def leaves_after_join(impl: Any, n: int, trials: int, hogs: int = 0) -> dict[str, Any]:
    """``trials`` times: a member joins N others and is sent its leave signal as soon as all N saw
    the join (with ``hogs`` busy loops running); how many of those leaves the N reported as a
    failure instead (issue 19: a starved joiner that knew no peer yet left to nobody)."""
    members = start_cluster(impl, n, "m")
    loaders = busy_loops(hogs)
    failed, lost = 0, 0
    try:
        for trial in range(trials):
            name = f"j{trial}"
            joiner = impl.start(name, impl.address(members[1]))
            try:
                t0 = impl.started_at(joiner)
                seen_by_all(members, "join", name, t0)
                t_leave = time.time()
                joiner.signal(impl.leave_signal)
                left, _ = seen_by_all(members, "leave", name, t_leave, 10.0)
                time.sleep(0.5)
                lost += left is None
                failed += any(m.find("fail", name) for m in members)
            finally:
                joiner.stop()
    finally:
        stop_all(loaders)
        for m in members:
            m.stop()
    return {"impl": impl.label, "profile": impl.profile, "members": n, "hogs": hogs, "leave_after_join_trials": trials,
            "leaves_reported_as_fail": failed, "leaves_not_seen_by_all": lost,
            "load_avg_1m": round(os.getloadavg()[0], 1)}


def _first(members: list[Member], event: str, who: str, t0: float) -> float | None:
    times = [x["t"] for m in members for x in m.find(event, who, t0)]
    return round(min(times) - t0, 3) if times else None


def _false_failures(members: list[Member], allowed: set[str]) -> int:
    return sum(1 for m in members for x in m.find("fail") if x.get("member") not in allowed)


def _idle_usage(members: list[Member], idle_s: float) -> dict[str, Any]:
    before = [m.usage() for m in members]
    time.sleep(idle_s)
    after = [m.usage() for m in members]
    k = len(members)
    return {
        "idle_cpu_pct": round(sum(a[0] - b[0] for a, b in zip(after, before, strict=True)) / idle_s / k * 100, 2),
        "rss_mib": round(sum(a[1] for a in after) / k / 2**20, 1),
        "bytes_written_per_s": round(sum(a[2] - b[2] for a, b in zip(after, before, strict=True)) / idle_s / k),
    }


# --- fault runs ------------------------------------------------------------------


def fault_run(impl: Any, fault: str, seconds: float) -> dict[str, Any]:
    members = start_cluster(impl, 10, "f")
    target = members[3]
    impl.address(target)  # learns its port (meshd binds port 0)
    t0 = time.time()
    try:
        undo = _apply_fault(fault, target, seconds)
        try:
            time.sleep(seconds)
        finally:
            undo()
        time.sleep(3.0)  # let late reports arrive
        return {"impl": impl.label, "profile": impl.profile, "fault": fault, "members": 10,
                "seconds": seconds, "false_failures": _false_failures(members, set()),
                "suspicions": sum(len(m.find("suspect", after=t0)) for m in members)}
    finally:
        for m in members:
            m.stop()


def _apply_fault(fault: str, target: Member, seconds: float) -> Callable[[], None]:
    if fault == "cpu_hog":
        hogs = busy_loops(4)
        return lambda: stop_all(hogs)
    if fault.startswith("freeze_"):
        stop_ms = int(fault.split("_")[1])
        done = threading.Event()

        def cycle() -> None:
            while not done.is_set():
                target.signal(signal.SIGSTOP)
                done.wait(stop_ms / 1000)
                target.signal(signal.SIGCONT)
                done.wait(2.0 - stop_ms / 1000)

        thread = threading.Thread(target=cycle, daemon=True)
        thread.start()

        def undo_freeze() -> None:
            done.set()
            thread.join()
            target.signal(signal.SIGCONT)
        return undo_freeze
    if fault == "cpu_quota":
        cg = Path("/sys/fs/cgroup/cpu/gossipbench")
        cg.mkdir(exist_ok=True)
        (cg / "cpu.cfs_period_us").write_text("100000")
        (cg / "cpu.cfs_quota_us").write_text("2000")
        for tid in os.listdir(f"/proc/{target.proc.pid}/task"):
            (cg / "tasks").write_text(tid)

        def undo_quota() -> None:
            for tid in (cg / "tasks").read_text().split():
                Path("/sys/fs/cgroup/cpu/tasks").write_text(tid)
            cg.rmdir()
        return undo_quota
    if fault == "loss":
        rules = (f"table inet gossipbench {{\n chain input {{\n"
                 f"  type filter hook input priority 0;\n"
                 f"  tcp dport {target.port} numgen random mod 100 < 10 drop\n"
                 f"  udp dport {target.port} numgen random mod 100 < 10 drop\n }}\n}}\n")
        subprocess.run(["nft", "-f", "-"], input=rules, text=True, check=True)

        def undo_loss() -> None:
            subprocess.run(["nft", "delete", "table", "inet", "gossipbench"], check=False)
        return undo_loss
    raise ValueError(f"unknown fault {fault!r}; choose cpu_hog, freeze_<ms>, cpu_quota or loss")


def _ratios(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    def value(x: Any) -> float | None:
        if isinstance(x, list):
            x = [v for v in x if v is not None]
            return sum(x) / len(x) if x else None
        return x if isinstance(x, (int, float)) and not isinstance(x, bool) else None

    out: dict[str, Any] = {"ratio": "meshd/serf", "members": a["members"]}
    for k in a:
        va, vb = value(a[k]), value(b.get(k))
        if k != "members" and va is not None and vb:
            out[k] = round(va / vb, 2)
    return out


FAULTS = ["cpu_hog", "freeze_500", "freeze_800", "freeze_1500", "cpu_quota", "loss"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="*", default=[10, 30, 50])
    p.add_argument("--profile", choices=["lan", "local"], default="lan")
    p.add_argument("--faults", nargs="*", default=FAULTS)
    p.add_argument("--fault-seconds", type=float, default=60.0)
    p.add_argument("--idle-seconds", type=float, default=10.0)
    p.add_argument("--kill-trials", type=int, default=3, help="members killed one by one per N")
    p.add_argument("--no-serf", action="store_true")
    p.add_argument("--hogs", type=int, default=0, metavar="K",
                   help="K busy-loop processes load the machine during each size's measurement, from the "
                        "moment its cluster has formed (false failures and detection under load)")
    p.add_argument("--join-storm", type=int, nargs="*", metavar="N",
                   help="only this: per N, start N members at once (N-1 joining through the first) and time "
                        "until every member sees every other (issue 20 item 3)")
    p.add_argument("--leave-after-join", type=int, metavar="K",
                   help="only this: per size, K members join and leave at once (with --hogs busy loops); counts "
                        "leaves reported as failures")
    args = p.parse_args(argv)
    if args.leave_after_join:
        with tempfile.TemporaryDirectory(prefix="gossipbench-") as tmp:
            for n in args.sizes:
                r = leaves_after_join(Meshd(Path(tmp), args.profile), n, args.leave_after_join, args.hogs)
                print(json.dumps(r), flush=True)
        return 0
    if args.join_storm:
        with tempfile.TemporaryDirectory(prefix="gossipbench-") as tmp:
            for n in args.join_storm:
                print(json.dumps(join_storm(Meshd(Path(tmp), args.profile), n)), flush=True)
        return 0
    if os.geteuid() != 0:
        args.faults = [f for f in args.faults if f not in ("cpu_quota", "loss")]
    with tempfile.TemporaryDirectory(prefix="gossipbench-") as tmp:
        impls: list[Meshd | Serf] = [Meshd(Path(tmp), args.profile)]
        if not args.no_serf and shutil.which("serf"):
            impls.append(Serf(Path(tmp), args.profile))
        results: dict[tuple[str, Any], dict] = {}
        for n in args.sizes:
            for impl in impls:
                r = measure_size(impl, n, args.idle_seconds, args.kill_trials, args.hogs)
                results[(impl.label, n)] = r
                print(json.dumps(r), flush=True)
        for fault in args.faults:
            for impl in impls:
                print(json.dumps(fault_run(impl, fault, args.fault_seconds)), flush=True)
        for n in args.sizes:
            a, b = results.get(("meshd", n)), results.get(("serf", n))
            if a and b:
                print(json.dumps(_ratios(a, b)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

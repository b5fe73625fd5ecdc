"""The daemon end to end: joining, autopilot voters, failure and rejoin (real agents in the lab)."""

import re
import subprocess
import sys

from meshd.api import MsgType


def raft(cluster, host):
    return cluster.query(host, MsgType.QUERY_STATUS)["raft"]


def test_hosts_join_voters_grow_a_killed_voter_is_replaced_and_catches_up(make_cluster):
    lab, cluster = make_cluster(hosts=4, started=3)
    cluster.wait("3 voters", lambda: len(raft(cluster, "h1")["voters"]) == 3, timeout_s=30)

    # a 4th host joins with `meshd join` (no agent runs there yet: it starts one)
    h4 = cluster.start("h4", join=["192.0.2.12"])  # through any member, not only the first
    cluster.wait_members("h1", 4)
    cluster.wait("h4 is a caught-up learner",
                 lambda: "h4" in raft(cluster, "h1")["learners"] + raft(cluster, "h1")["voters"], timeout_s=30)
    assert h4.proc.poll() is None

    # some state to replicate
    cluster.query("h1", MsgType.NETWORK_CREATE, name="blue", subnet="10.1.0.0/24", tenant="a")

    leader = raft(cluster, "h1")["leader"]
    victim = next(v for v in raft(cluster, leader)["voters"] if v != leader)
    cluster.kill(victim)
    survivor = leader

    def replaced():
        r = raft(cluster, survivor)
        return victim not in r["voters"] and len(r["voters"]) == 3 and r
    r = cluster.wait(f"failed voter {victim} replaced", replaced, timeout_s=60)
    assert "h4" in r["voters"] or victim != "h4"

    # the killed host restarts (same data dir) and catches up
    cluster.start(victim)
    cluster.wait(f"{victim} catches up", lambda: any(
        n["name"] == "blue" for n in cluster.query(victim, MsgType.NETWORK_LIST)["networks"]), timeout_s=60)
    cluster.wait_members(victim, 4)


def test_meshd_join_cli_tells_a_running_agent_to_join(make_cluster):
    lab, cluster = make_cluster(hosts=2, started=1)
    cluster.start("h2")  # a second, separate bootstrap: then told to join
    cluster.wait("h2 answers", lambda: cluster.query("h2", MsgType.QUERY_STATUS))
    out = subprocess.run(
        [*lab.exec_argv("h2", sys.executable, "-m", "meshd", "join", "192.0.2.11",
                        "--run-dir", str(cluster.agents["h2"].run_dir))],
        capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "joined" in out.stdout
    cluster.wait_members("h1", 2)


def test_graceful_leave_is_reported_as_leave_and_removed_from_raft(make_cluster):
    lab, cluster = make_cluster(hosts=3)
    cluster.wait("3 voters", lambda: len(raft(cluster, "h1")["voters"]) == 3, timeout_s=30)
    assert cluster.leave("h3") == 0
    cluster.wait("h3 left", lambda: cluster.members("h1").get("h3") == "left", timeout_s=10)
    cluster.wait("h3 removed from Raft", lambda: "h3" not in raft(cluster, "h1")["voters"]
                 + raft(cluster, "h1")["learners"], timeout_s=30)


def test_the_leader_feeds_the_learner_below_a_stopped_relay(make_cluster):
    """Relay fan-out 1 and 7 hosts: 5 voters, learners A (fed by the leader) and B (fed by A).
    While A is stopped the leader feeds B itself, and `meshd status` says so; a new network
    reaches B; when A runs again the leader hands B back."""
    import os
    import signal

    lab, cluster = make_cluster(hosts=7, extra_args=("--set", "raft.relay_fanout=1"))
    r = cluster.wait("5 voters and 2 learners", lambda: (
        len(raft(cluster, "h1")["voters"]) == 5 and len(raft(cluster, "h1")["learners"]) == 2
        and raft(cluster, "h1")), timeout_s=90)
    relay, child = sorted(r["learners"])
    leader = r["leader"]
    pid = cluster.agents[relay].proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        def adopted():
            followers = {f["id"]: f for f in raft(cluster, leader)["followers"]}
            return followers[child]["adopted"] and not followers[relay]["responsive"]
        cluster.wait(f"the leader feeds {child}", adopted, timeout_s=20)
        cluster.query(leader, MsgType.NETWORK_CREATE, name="adopted", subnet="10.7.0.0/24", tenant="a")
        cluster.wait(f"{child} has the new network", lambda: any(
            n["name"] == "adopted" for n in cluster.query(child, MsgType.NETWORK_LIST)["networks"]), timeout_s=10)
        status = subprocess.run([sys.executable, "-m", "meshd", "status", "--run-dir",
                                 str(cluster.agents[leader].run_dir)], capture_output=True, text=True, timeout=60)
        assert f"{relay} not answering" in status.stdout, status.stdout
        assert f"{child} fed by the leader (their relay is not answering)" in status.stdout, status.stdout
        assert f"{leader} feeds {child} itself: their relay stopped answering" in (
            cluster.agents[leader].log.read_text())
    finally:
        os.kill(pid, signal.SIGCONT)
    cluster.wait(f"{child} handed back to {relay}", lambda: not any(
        f["adopted"] for f in raft(cluster, leader)["followers"]), timeout_s=30)
    assert relay in raft(cluster, leader)["learners"]  # back before the autopilot removed it


def test_a_host_falsely_declared_failed_keeps_its_connections_and_takes_writes(make_cluster):
    """A host paused (SIGSTOP, as a starved or frozen host) until the others declare it failed,
    then run again: nobody closed its connections meanwhile, so coming back costs it no CURVE
    handshake (it used to answer every other host's new Raft dial at once, just when it was
    late: in a large starved cluster that kept hosts flapping, docs/scale.md), and it is still
    a voter that gets new writes."""
    import os
    import signal

    lab, cluster = make_cluster(hosts=3)
    cluster.wait("3 voters", lambda: len(raft(cluster, "h1")["voters"]) == 3, timeout_s=30)

    def cluster_admitted() -> float:  # connections from other hosts that h3 admitted, from its metrics
        text = lab.exec("h3", sys.executable, "-c", "import urllib.request; print(urllib.request.urlopen("
                        "'http://127.0.0.1:9477/metrics').read().decode())").stdout
        found = re.search(r'^meshd_transport_connections_admitted_total\{domain="meshd"\} (\S+)$', text, re.M)
        assert found, text
        return float(found.group(1))

    before = cluster_admitted()
    pid = cluster.agents["h3"].proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        cluster.wait("h1 and h2 declare h3's agent down", lambda: all(
            cluster.members(h).get("h3") == "agent-down" for h in ("h1", "h2")), timeout_s=30)
    finally:
        os.kill(pid, signal.SIGCONT)
    cluster.wait("h3 alive again everywhere", lambda: all(
        cluster.members(h).get("h3") == "alive" for h in ("h1", "h2")), timeout_s=30)
    assert cluster_admitted() == before, "a host came back from a false failure and was dialed again"
    assert "h3" in raft(cluster, "h1")["voters"]
    cluster.query("h1", MsgType.NETWORK_CREATE, name="after-pause", subnet="10.7.0.0/24", tenant="a")
    cluster.wait("h3 has the new network", lambda: any(
        n["name"] == "after-pause" for n in cluster.query("h3", MsgType.NETWORK_LIST)["networks"]), timeout_s=10)

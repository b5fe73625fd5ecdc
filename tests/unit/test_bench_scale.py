"""The pure parts of tools.bench.scale (workload placement, subnets, interest sizing) and tools.bench._machine."""

import ipaddress
import os
import random
import subprocess
import time

from tools.bench._machine import Renicer, process_figures
from tools.bench.scale import PER_HOST_MAX, SIZE_MAX, SIZE_MIN, _subnet, interest, placement


def test_placement_places_every_endpoint_in_networks_of_the_stated_sizes():
    nets = placement(20_000, 300, random.Random(7))
    assert sum(m for m, _ in nets) == 20_000
    # the last network may take a remainder under SIZE_MIN
    assert all(SIZE_MIN <= m <= SIZE_MAX + SIZE_MIN for m, _ in nets)
    for m, where in nets:
        assert len(where) == m
        assert all(0 <= h < 300 for h in where)
        span = len(set(where))
        assert span >= -(-m // PER_HOST_MAX)  # at most PER_HOST_MAX of a network's endpoints per host
        assert max(where.count(h) for h in set(where)) - min(where.count(h) for h in set(where)) <= 1


def test_placement_gives_each_host_a_handful_of_networks():
    nets = placement(20_000, 200, random.Random(3))
    per_host: dict[int, set[int]] = {}
    for i, (_m, where) in enumerate(nets):
        for h in where:
            per_host.setdefault(h, set()).add(i)
    assert len(per_host) == 200
    assert max(map(len, per_host.values())) - min(map(len, per_host.values())) <= 2


def test_placement_is_deterministic_for_a_seed():
    assert placement(5_000, 50, random.Random(1)) == placement(5_000, 50, random.Random(1))
    assert placement(5_000, 50, random.Random(1)) != placement(5_000, 50, random.Random(2))


def test_subnet_is_aligned_holds_the_endpoints_and_moves_the_cursor_past_itself():
    cursor = 10 << 24
    seen = []
    for m in (10, 500, 13, 253, 254, 61):
        subnet, nxt = _subnet(cursor, m)
        net = ipaddress.ip_network(subnet)  # strict: raises when not aligned
        assert net.num_addresses >= m + 3 and net.num_addresses < 2 * (m + 3)
        assert int(net.network_address) >= cursor and nxt == int(net.broadcast_address) + 1
        seen.append(net)
        cursor = nxt
    assert not any(a.overlaps(b) for i, a in enumerate(seen) for b in seen[i + 1:])


def test_interest_sizes_each_host_by_its_networks():
    out = interest(4_000, 40, seed=5)
    assert out["hosts_with_endpoints"] == 40 and out["full"]["endpoints"] == 4_000
    per = out["per_host"]
    assert per["local"]["mean"] == 100.0  # 4,000 endpoints over 40 hosts
    assert per["endpoints"]["max"] <= 4_000
    assert per["remote"]["p50"] + per["local"]["p50"] <= per["endpoints"]["max"]
    # a host holding a few networks needs a fraction of the full snapshot
    assert per["snapshot_bytes"]["max"] < out["full"]["snapshot_bytes"]
    assert per["snapshot_bytes"]["p50"] <= per["snapshot_bytes"]["p99"] <= per["snapshot_bytes"]["max"]


def test_process_figures_of_this_process_and_of_none():
    me = process_figures([os.getpid()])
    assert me["processes"] == 1 and me["rss_total_mib"] > 0 and me["fds_max"] > 0
    assert 0 < me["pss_total_mib"] <= me["rss_total_mib"] + 1
    assert process_figures([]) == {"processes": 0}


def test_renicer_renices_each_pid_it_is_shown_once_and_survives_a_failing_poll():
    proc = subprocess.Popen(["sleep", "30"])
    polls = []

    def pids():
        polls.append(1)
        if len(polls) == 1:
            raise TimeoutError("no leader answered")  # skipped; the next poll goes on
        return [proc.pid]

    r = Renicer(pids, 7, interval_s=0.05)
    try:
        deadline = time.monotonic() + 10
        while proc.pid not in r.reniced and time.monotonic() < deadline:
            time.sleep(0.02)
        assert os.getpriority(os.PRIO_PROCESS, proc.pid) == 7
        os.setpriority(os.PRIO_PROCESS, proc.pid, 3)  # once only: a later poll leaves it
        time.sleep(0.2)
        assert os.getpriority(os.PRIO_PROCESS, proc.pid) == 3 and len(polls) > 3
    finally:
        r.close()
        proc.kill()
        proc.wait()

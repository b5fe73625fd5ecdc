"""A tenant network's egress limit (seed 001) end to end: iperf3 between Docker containers on two hosts.

The network's ``egress_kbit`` is a TBF on its VXLAN device (``mx-<vni>``), so
it holds the *sum* of the network's traffic leaving a host; each container's
own ``bandwidth_kbit`` is a TBF on its side of the veth. Three containers on
h1 with their own rates (40, 30 and 20 Mbit/s: 90 in all) send at once to
three containers on h2 through a network limited to 60 Mbit/s.

iperf3 runs in the containers' network namespaces (the busybox image has no
iperf3): ``nsenter --net=/proc/<pid>/ns/net iperf3 ...``. It counts TCP
payload, the TBFs meter whole frames: at MTU 1450 a 1464-byte frame carries
1398 payload bytes, so rates are compared as frames (goodput x 1464/1398).
"""

from __future__ import annotations

import json
import subprocess
import time

from meshd.api import MsgType

MBIT = 1_000_000
FRAME_PER_PAYLOAD = 1464 / 1398  # Ethernet frame per TCP payload byte at MTU 1450 (timestamps on)
TENANT_KBIT = 60_000
RATES_KBIT = (40_000, 30_000, 20_000)
SECONDS = 5


def _iperf_together(pairs: list[tuple[int, int, str]], seconds: int = SECONDS) -> list[float]:
    """Frame rates (bit/s) of iperf3 runs started at once: ``(sender PID, receiver PID, receiver IP)``."""
    servers = [subprocess.Popen(["nsenter", f"--net=/proc/{dst}/ns/net", "iperf3", "-s", "-1"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _src, dst, _ip in pairs]
    try:
        for _src, dst, _ip in pairs:  # until every server listens
            deadline = time.monotonic() + 10
            while b":5201" not in subprocess.run(["nsenter", f"--net=/proc/{dst}/ns/net", "ss", "-ltn"],
                                                 capture_output=True).stdout:
                assert time.monotonic() < deadline, "iperf3 server did not start listening"
                time.sleep(0.05)
        clients = [subprocess.Popen(["nsenter", f"--net=/proc/{src}/ns/net", "iperf3", "-c", ip, "-t", str(seconds),
                                     "-O", "1", "-J"], stdout=subprocess.PIPE, text=True) for src, _dst, ip in pairs]
        reports = [json.loads(c.communicate(timeout=seconds + 30)[0]) for c in clients]
    finally:
        for s in servers:
            try:
                s.wait(timeout=10)
            except subprocess.TimeoutExpired:
                s.kill()
                s.wait()
    return [r["end"]["sum_received"]["bits_per_second"] * FRAME_PER_PAYLOAD for r in reports]


def test_tenant_egress_holds_the_total_while_each_container_keeps_its_own_rate(make_cluster):
    lab, cluster = make_cluster(hosts=2)
    net = cluster.query("h1", MsgType.NETWORK_CREATE, name="tx", subnet="10.50.0.0/24", tenant="a",
                        egress_kbit=TENANT_KBIT)
    pairs = []
    for i, rate in enumerate(RATES_KBIT):
        src, dst = lab.container("h1", f"s{i}"), lab.container("h2", f"d{i}")
        with cluster.scheduler("h1") as api:  # answered once the interface (and its TBF) is up
            api.request(MsgType.ENDPOINT_CONNECT, container_id=src.id, network="tx", host="h1",
                        bandwidth_kbit=rate, burst_bytes=128 * 1024, latency_ms=50)
        with cluster.scheduler("h2") as api:
            ep = api.request(MsgType.ENDPOINT_CONNECT, container_id=dst.id, network="tx", host="h2")
        pairs.append((src.pid, dst.pid, ep["ip"]))

    limited = _iperf_together(pairs)
    print(f"limited to {TENANT_KBIT / 1000:g}: " + ", ".join(f"{g / MBIT:.2f}" for g in limited)
          + f" = {sum(limited) / MBIT:.2f} Mbit/s (frames)")
    assert abs(sum(limited) - TENANT_KBIT * 1000) <= 0.05 * TENANT_KBIT * 1000, \
        f"tenant total {sum(limited) / MBIT:.1f} Mbit/s, limit {TENANT_KBIT / 1000:g} ({limited})"
    for got, rate in zip(limited, RATES_KBIT, strict=True):
        assert got <= 1.05 * rate * 1000, f"a container sent {got / MBIT:.1f} Mbit/s above its own {rate / 1000:g}"

    # without the tenant limit, the same three at once each get their own rate: the cap was the tenant's
    cluster.query("h2", MsgType.NETWORK_UPDATE, name="tx", egress_kbit=0)
    vxlan = f"mx-{net['vni']}"
    cluster.wait("tenant TBF removed", lambda: "tbf" not in lab.exec("h1", "tc", "qdisc", "show", "dev", vxlan).stdout,
                 timeout_s=20)
    free = _iperf_together(pairs)
    print("unlimited: " + ", ".join(f"{g / MBIT:.2f}" for g in free) + " Mbit/s (frames)")
    for got, rate in zip(free, RATES_KBIT, strict=True):
        assert abs(got - rate * 1000) <= 0.05 * rate * 1000, \
            f"container at {got / MBIT:.1f} Mbit/s, its TBF says {rate / 1000:g} ({free})"

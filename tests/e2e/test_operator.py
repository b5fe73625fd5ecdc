"""The operator's surface of real agents in the lab: `meshd status`/`why`/`top`/`log-level`/`endpoint
inspect` as an operator types them, the metrics exposition (promtool), refusals told by cause,
metrics disabled, and a client's secret key in clients_dir."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest
import zmq

from meshd.api import MsgType
from meshd.transport import ClusterKeys, KeyPair, format_client_key, format_secret, new_secret, write_private

pytestmark = [pytest.mark.root, pytest.mark.docker]

METRICS = "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:9477/metrics').read().decode())"


def meshd(cluster, host, *argv, check_code=None):
    """`meshd ARGV` against `host`'s agent, as an operator on that host runs it."""
    out = subprocess.run([sys.executable, "-m", "meshd", *argv, "--run-dir", str(cluster.agents[host].run_dir)],
                         capture_output=True, text=True, timeout=60)
    assert "Traceback" not in out.stderr, out.stderr
    if check_code is not None:
        assert out.returncode == check_code, (argv, out.stdout, out.stderr)
    return out


def labelled(lab, host, name, *labels):
    """A container of the lab on `host` with extra labels (removed by the lab's `down`)."""
    args = ["docker", "run", "-d", "--network", "none", "--name", f"{lab.prefix}-{name}",
            "--label", f"meshd.lab.prefix={lab.prefix}", "--label", f"meshd.lab.host={host}"]
    for label in labels:
        args += ["--label", label]
    return subprocess.run([*args, "meshd-busybox:latest", "sleep", "3600"], check=True, capture_output=True,
                          text=True, timeout=60).stdout.strip()


def test_status_why_top_inspect_and_log_level_of_a_running_cluster(make_cluster):
    lab, cluster = make_cluster(hosts=2)
    meshd(cluster, "h1", "network", "create", "blue", "10.1.0.0/24", check_code=0)
    web = lab.container("h1", "web")
    meshd(cluster, "h1", "endpoint", "connect", web.id[:12], "blue", "--rate-kbit", "10000", check_code=0)
    inspect = meshd(cluster, "h1", "endpoint", "inspect", web.id[:12], check_code=0).stdout
    assert "10 Mbit/s, burst 32768 bytes, latency 50 ms" in inspect  # the label defaults
    bad = labelled(lab, "h1", "bad", "meshd.network=blue", "meshd.rate_kbit=fast")
    cluster.wait("the bad container's error", lambda: any(
        a["container_id"] == bad and a["error"] for a in cluster.query("h1", MsgType.QUERY_STATUS)["attach"]))

    why = meshd(cluster, "h1", "why", f"{lab.prefix}-bad", check_code=1).stdout
    assert re.search(r"FAILED +labels +container .*meshd.rate_kbit='fast' is not a whole number", why), why
    why = meshd(cluster, "h1", "why", web.id[:8], check_code=0).stdout
    assert re.search(r"ok +interface", why) and "FAILED" not in why
    assert "runs on h1, not on h2" in meshd(cluster, "h2", "why", web.id, check_code=1).stderr

    status = meshd(cluster, "h1", "status", check_code=0).stdout
    for fragment in ("leader, term", "2 of 2 alive", "h2", "192.0.2.12", "blue", "10.1.0.2", " up ", "ago",
                     f"`meshd why CONTAINER` says why ({lab.prefix}-bad)"):
        assert fragment in status, (fragment, status)
    assert "{'" not in status
    top = meshd(cluster, "h1", "top", "--once", check_code=0).stdout
    assert "10.1.0.2" in top and "members 2/2 alive" in top

    assert meshd(cluster, "h1", "log-level", check_code=0).stdout.strip() == "info"
    meshd(cluster, "h1", "log-level", "debug", check_code=0)
    assert cluster.query("h1", MsgType.QUERY_STATUS)["log_level"] == "debug"
    assert "log level changed from info to debug" in cluster.agents["h1"].log.read_text()
    meshd(cluster, "h1", "log-level", "info", check_code=0)

    assert "network 'bleu' does not exist" in meshd(cluster, "h1", "endpoint", "ls", "--network", "bleu",
                                                     check_code=1).stderr


def test_metrics_of_a_running_agent_pass_promtool_and_refusals_are_told_by_cause(make_cluster):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: apt install prometheus (tools/setup.sh does)", pytrace=False)
    lab, cluster = make_cluster(hosts=2)
    cluster.query("h1", MsgType.NETWORK_CREATE, name="m", subnet="10.7.0.0/24", tenant="t7")
    c = lab.container("h1", "m1")
    cluster.query("h1", MsgType.ENDPOINT_CONNECT, container_id=c.id, network="m")
    import netops

    with netops.in_netns(f"/run/netns/{lab.host('h2').netns}"):  # a plaintext client of h1's scheduler API
        ctx = zmq.Context()
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect("tcp://192.0.2.11:30028")
        sock.send(b"hello")
    try:
        def scrape():
            text = lab.exec("h1", sys.executable, "-c", METRICS).stdout
            return "meshd_endpoint_transmit_bytes_total{" in text and "connections_refused_total{" in text and text

        text = cluster.wait("endpoint counters and the refusal in the metrics", scrape, timeout_s=30)
    finally:
        ctx.destroy(linger=0)
    check = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    for sample in ("meshd_raft_is_leader 1.0", "meshd_state_networks 1.0", 'meshd_gossip_members{state="alive"} 2.0',
                   'meshd_api_requests_total{outcome="committed",socket="control"} 2.0',
                   "meshd_endpoint_attach_duration_seconds_count 1.0",
                   f'meshd_endpoint_transmit_bytes_total{{container="{lab.prefix}-h1-m1",container_id="{c.id}",'
                   'network="m",tenant="t7"}'):
        assert sample in text, sample
    assert re.search(r'meshd_transport_connections_refused_total\{reason="(plaintext|hung_up)"\} [1-9]', text)
    log = cluster.agents["h1"].log.read_text()
    # the address is best effort: "unknown" when the connection was gone before the monitor looked
    assert re.search(r"refused connection peer=(192\.0\.2\.12|unknown) .*cause=(plaintext|hung_up): .*NAME\.key",
                     log), log[-3000:]
    assert "wrong cluster secret?" not in log


def test_metrics_port_zero_serves_nothing_and_the_agent_works(make_cluster):
    """Issue 12 item 10: metrics_port = 0 crashed the reconcile pass (AttributeError '_histograms')."""
    lab, cluster = make_cluster(hosts=1, extra_args=("--set", "api.metrics_port=0"))
    cluster.query("h1", MsgType.NETWORK_CREATE, name="z", subnet="10.8.0.0/24")
    c = lab.container("h1", "z1")
    ep = cluster.query("h1", MsgType.ENDPOINT_CONNECT, container_id=c.id, network="z")  # answered once it is up
    assert ep["ip"] == "10.8.0.2"
    assert cluster.query("h1", MsgType.QUERY_STATUS)["reconcile"]["passes"] >= 1
    assert cluster.agents["h1"].proc.poll() is None
    assert lab.exec("h1", sys.executable, "-c", METRICS, check=False).returncode != 0  # nothing listens
    assert "AttributeError" not in cluster.agents["h1"].log.read_text()


@pytest.mark.root
def test_agent_refuses_to_start_with_a_clients_secret_key_in_clients_dir(make_lab, tmp_path):
    lab = make_lab(hosts=1)
    secret = new_secret()
    write_private(tmp_path / "secret", format_secret(secret))
    clients = tmp_path / "clients"
    clients.mkdir()
    key_text, pub_text = format_client_key("sched1", KeyPair.generate(), ClusterKeys.from_secret(secret).api.public)
    (clients / "sched1.pub").write_text(pub_text)
    (clients / "sched1.key").write_text(key_text)  # what the old sample config told operators to copy
    h1 = lab.host("h1")
    out = subprocess.run(
        ["nsenter", f"--net=/run/netns/{h1.netns}", "--", sys.executable, "-m", "meshd", "agent", "--profile",
         "local", "--name", "h1", "--advertise", h1.underlay_ip, "--secret", str(tmp_path / "secret"),
         "--data-dir", str(tmp_path / "data"), "--run-dir", str(tmp_path / "run"), "--no-docker",
         "--set", f"api.clients_dir={clients}"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stderr
    assert f"{clients / 'sched1.key'} is a scheduler client's secret key file" in out.stderr
    assert "copy NAME.pub there instead" in out.stderr and "Traceback" not in out.stderr

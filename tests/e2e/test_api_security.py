"""A running agent: fuzzed API frames never kill it; wrong keys and secrets are refused."""

import random
import subprocess
import sys

import pytest
import zmq

from meshd.api import MsgType, pack, unpack
from meshd.api.client import SchedulerClient
from meshd.transport import ClientKey, KeyPair, format_secret, new_secret, write_private


def test_fuzzed_frames_get_errors_and_the_agent_keeps_answering(make_cluster):
    lab, cluster = make_cluster(hosts=1)
    rng = random.Random(20261122)
    good = pack(MsgType.QUERY_STATUS, {"request_id": "x"})
    frames = [rng.randbytes(rng.randrange(0, 200)) for _ in range(300)]
    frames += [good[:n] for n in range(len(good))]
    frames += [pack(rng.randrange(0, 2**32), {"request_id": str(i), "x": rng.random()}) for i in range(100)]
    frames += [pack(MsgType.ENDPOINT_CONNECT, {"request_id": "big", "container_id": "c" * 70_000})]
    import netops

    with netops.in_netns(f"/run/netns/{lab.host('h1').netns}"):
        ctx = zmq.Context()
        s = ctx.socket(zmq.DEALER)
        key = cluster.client_key
        s.setsockopt(zmq.CURVE_SERVERKEY, key.api_server_public)
        s.setsockopt(zmq.CURVE_PUBLICKEY, key.pair.public)
        s.setsockopt(zmq.CURVE_SECRETKEY, key.pair.secret)
        s.setsockopt(zmq.RCVTIMEO, 10_000)
        s.connect("tcp://192.0.2.11:30028")
        try:
            for frame in frames:
                s.send(frame)
                _, body = unpack(s.recv(), max_bytes=1 << 20)
                assert body["ok"] is False, body
            s.send(good)
            _, body = unpack(s.recv(), max_bytes=1 << 20)
        finally:
            ctx.destroy(linger=0)
    assert body["ok"] and body["result"]["host"] == "h1"
    assert cluster.agents["h1"].proc.poll() is None


def test_client_without_an_admitted_key_and_host_with_another_secret_are_refused(make_cluster, tmp_path):
    lab, cluster = make_cluster(hosts=2, started=1)
    stranger = ClientKey("stranger", KeyPair.generate(), cluster.client_key.api_server_public)
    import netops

    with netops.in_netns(f"/run/netns/{lab.host('h1').netns}"):
        client = SchedulerClient("192.0.2.11", key=stranger, timeout_s=1.0, retries=0)
        try:
            with pytest.raises(TimeoutError, match="clients_dir"):
                client.request(MsgType.QUERY_STATUS)
        finally:
            client.close()

    other = tmp_path / "other-secret"
    write_private(other, format_secret(new_secret()))
    h2 = lab.host("h2")
    out = subprocess.run(
        ["nsenter", f"--net=/run/netns/{h2.netns}", "--", sys.executable, "-m", "meshd", "agent",
         "--profile", "local", "--name", "h2", "--advertise", h2.underlay_ip, "--secret", str(other),
         "--data-dir", str(tmp_path / "h2"), "--run-dir", str(tmp_path / "h2run"), "--no-docker",
         "--set", "agent.join_timeout_s=5", "--join", "192.0.2.11"], capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "same cluster secret" in out.stderr
    assert cluster.members("h1") == {"h1": "alive"}

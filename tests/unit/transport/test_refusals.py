"""Refused connections: each is counted and logged with its likely cause (real ZeroMQ over loopback);
a client's secret key in api.clients_dir stops the agent from starting."""

from __future__ import annotations

import logging

import pytest
import trio
import zmq

from meshd.transport import API_DOMAIN, ClusterKeys, KeyPair, SecretError, format_client_key, load_client_keys
from meshd.transport._zap import handshake_cause

pytestmark = pytest.mark.timeout(120)


async def _refused(host, *reasons: str) -> None:
    with trio.fail_after(10):
        while not any(host.status().security.refused_by_reason.get(r) for r in reasons):
            await trio.sleep(0.02)


def _dial(endpoint: str, *, server_public: bytes | None = None,
          pair: KeyPair | None = None) -> tuple[zmq.Context, zmq.Socket]:
    """A client that keeps dialling (keep the socket: a collected socket is closed)."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)  # the hello is never delivered: closing must not wait for it
    if server_public is not None and pair is not None:
        sock.setsockopt(zmq.CURVE_SERVERKEY, server_public)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, pair.public)
        sock.setsockopt(zmq.CURVE_SECRETKEY, pair.secret)
    sock.connect(endpoint)
    sock.send(b"hello")
    return ctx, sock


@pytest.mark.parametrize("domain", [API_DOMAIN, "meshd"])
async def test_each_refusal_is_counted_and_logged_with_its_cause(hosts, secret, domain, caplog):
    host = await hosts()
    api = ClusterKeys.from_secret(secret).api
    host.zap.allow(API_DOMAIN, set())  # no scheduler client admitted
    server = host.listen(zmq.ROUTER, "tcp://127.0.0.1:0", domain=domain, server_keys=api)
    endpoint = server.zmq_socket.getsockopt_string(zmq.LAST_ENDPOINT)
    contexts = [_dial(endpoint)]  # plaintext: seen as such, or as a hang-up when the client noticed first
    await _refused(host, "plaintext", "hung_up")
    contexts.append(_dial(endpoint, server_public=KeyPair.generate().public, pair=KeyPair.generate()))
    await _refused(host, "wrong_server_key")
    contexts.append(_dial(endpoint, server_public=api.public, pair=KeyPair.generate()))
    await _refused(host, "unknown_client_key")
    for ctx, _ in contexts:
        ctx.destroy(linger=0)
    stats = host.status().security
    assert stats.refused == sum(stats.refused_by_reason.values()) >= 3
    logged = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "wrong cluster secret?" not in logged
    assert "plaintext" in logged  # the three come from one address: logged once, with the first cause
    if domain == API_DOMAIN:
        assert "a scheduler client needs its NAME.key" in logged
    else:
        assert "only meshd agents with the cluster secret may connect" in logged


def test_the_cause_of_each_monitor_event():
    failed_protocol, no_detail = zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    assert handshake_cause(failed_protocol, zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH) == "plaintext"
    assert handshake_cause(failed_protocol, zmq.PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC) == "wrong_server_key"
    assert handshake_cause(no_detail, 32) == "hung_up"
    assert handshake_cause(zmq.EVENT_HANDSHAKE_FAILED_AUTH, 400) is None  # the ZAP handler counts those


def test_a_secret_key_in_clients_dir_is_refused_naming_the_file(tmp_path, secret):
    api_public = ClusterKeys.from_secret(secret).api.public
    key_text, pub_text = format_client_key("sched1", KeyPair.generate(), api_public)
    (tmp_path / "sched1.pub").write_text(pub_text)
    assert len(load_client_keys(tmp_path)) == 1
    (tmp_path / "sched1.key").write_text(key_text)  # what the old sample config said to do
    with pytest.raises(SecretError) as info:
        load_client_keys(tmp_path)
    assert str(tmp_path / "sched1.key") in str(info.value) and "copy NAME.pub there instead" in str(info.value)
    (tmp_path / "sched1.key").unlink()
    (tmp_path / "other.pub").write_text(key_text)  # a secret key under a .pub name
    with pytest.raises(SecretError, match="other.pub holds a scheduler client's secret key"):
        load_client_keys(tmp_path)

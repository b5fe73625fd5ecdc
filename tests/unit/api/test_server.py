"""The scheduler sockets for real: CURVE client keys, ROUTER replies, SUB + PUB, fuzz."""

import random

import pytest
import trio
import zmq

from meshd.api import MsgType, SchedulerApi, SchedulerService, pack, unpack
from meshd.api.client import ApiRequestError, SchedulerClient
from meshd.config import ApiConfig
from meshd.transport import ClientKey, ClusterKeys, KeyPair, ZmqHost, new_secret


def _port(endpoint):
    return int(endpoint.rsplit(":", 1)[1])


@pytest.fixture
async def api(nursery, backend):
    keys = ClusterKeys.from_secret(new_secret())
    host = ZmqHost(keys)
    await nursery.start(host.run)
    allowed = ClientKey("sched", KeyPair.generate(), keys.api.public)
    cfg = ApiConfig(bind_address="127.0.0.1", sub_port=0, router_port=0, pub_port=0)
    server = SchedulerApi(host, SchedulerService(backend), cfg, server_keys=keys.api,
                          client_keys={allowed.pair.public: "sched"})
    await nursery.start(server.run)
    server.allowed = allowed
    server.stranger = ClientKey("stranger", KeyPair.generate(), keys.api.public)
    return server


def _client(api, key, **kw):
    e = api.endpoints
    return SchedulerClient("127.0.0.1", key=key, router_port=_port(e["router"]), sub_port=_port(e["sub"]),
                           pub_port=_port(e["pub"]), **kw)


async def test_allowed_client_creates_and_connects(api):
    def scenario():
        with _client(api, api.allowed) as c:
            c.request(MsgType.NETWORK_CREATE, name="blue", subnet="10.1.0.0/24")
            ep = c.request(MsgType.ENDPOINT_CONNECT, container_id="c1", network="blue", bandwidth_kbit=1000,
                           burst_bytes=32768)
            with pytest.raises(ApiRequestError, match="already"):
                c.request(MsgType.NETWORK_CREATE, name="blue", subnet="10.1.0.0/24")
            return ep

    ep = await trio.to_thread.run_sync(scenario)
    assert ep["ip"] == "10.1.0.2" and ep["network"] == "blue"


async def test_unknown_client_key_is_refused_and_counted(api):
    def scenario():
        with _client(api, api.stranger, timeout_s=0.5, retries=0) as c:
            with pytest.raises(TimeoutError, match="clients_dir"):
                c.request(MsgType.QUERY_STATUS)

    await trio.to_thread.run_sync(scenario)
    assert api.host.status().security.refused >= 1


async def test_fuzzed_frames_get_error_replies_and_the_server_stays_up(api):
    rng = random.Random(1234)
    good = pack(MsgType.QUERY_STATUS, {"request_id": "ok"})
    garbage = [rng.randbytes(rng.randrange(0, 64)) for _ in range(200)]
    garbage += [good[:n] for n in range(len(good))]                # every truncation
    flipped = [bytes(b ^ (1 << rng.randrange(8)) if i == pos else b for i, b in enumerate(good))
               for pos in range(len(good))]                       # one bit flipped in each byte
    frames = garbage + flipped

    def scenario():
        ctx = zmq.Context()
        s = ctx.socket(zmq.DEALER)
        k = api.allowed
        s.setsockopt(zmq.CURVE_SERVERKEY, k.api_server_public)
        s.setsockopt(zmq.CURVE_PUBLICKEY, k.pair.public)
        s.setsockopt(zmq.CURVE_SECRETKEY, k.pair.secret)
        s.setsockopt(zmq.RCVTIMEO, 5000)
        s.connect(api.endpoints["router"])
        oks = []
        for f in frames:
            s.send(f)
            _, body = unpack(s.recv(), max_bytes=1 << 20)  # exactly one reply per frame
            oks.append(body["ok"])
        s.send_multipart([b"two", b"frames"])
        _, multipart = unpack(s.recv(), max_bytes=1 << 20)
        s.send(good)
        _, last = unpack(s.recv(), max_bytes=1 << 20)
        ctx.destroy(linger=0)
        return oks, multipart, last

    oks, multipart, last = await trio.to_thread.run_sync(scenario)
    assert not any(oks[: len(garbage)])  # garbage and truncations are never accepted
    assert len(oks) == len(frames)      # flipped bits may still form valid requests; all are answered
    assert "exactly one ZeroMQ frame" in multipart["error"]["message"]
    assert last["ok"] and last["result"]["host"] == "h1"


async def test_published_request_error_comes_back_as_an_event(api):
    def scenario():
        with _client(api, api.allowed) as c:
            # PUB/SUB has no handshake: publish until the subscription is live and an event arrives
            for attempt in range(50):
                c.publish(MsgType.ENDPOINT_CONNECT, request_id=f"pub-{attempt}", container_id="c", network="missing")
                event = c.next_event(timeout_s=0.2)
                if event is not None and event[0] == MsgType.EVENT_ERROR:
                    return event
            raise AssertionError("no error event")

    msg_type, body = await trio.to_thread.run_sync(scenario)
    assert body["request_type"] == MsgType.ENDPOINT_CONNECT and body["request_id"].startswith("pub-")
    assert "missing" in body["error"]["message"]

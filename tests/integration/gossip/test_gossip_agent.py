"""GossipAgent in-process over real ZeroMQ sockets on loopback (CURVE on)."""

from __future__ import annotations

import pytest
import trio

from meshd.gossip import EventKind, GossipConfig, Meta
from meshd.gossip._driver import GossipAgent, JoinError
from meshd.transport import ClusterKeys, ZmqHost, new_secret


async def start(nursery, keys, name, meta=Meta()):
    host = ZmqHost(keys)
    await nursery.start(host.run)
    agent = GossipAgent(host, name=name, bind="tcp://127.0.0.1:0", config=GossipConfig.local(),
                        meta=meta)
    events = agent.subscribe()
    addr = await nursery.start(agent.run)
    return agent, events, addr


async def next_event(events, kind, member):
    with trio.fail_after(10):
        async for ev in events:
            if ev.kind == kind and ev.member.name == member:
                return ev


async def test_agents_join_stream_events_update_metadata_and_leave():
    keys = ClusterKeys.from_secret(new_secret())
    async with trio.open_nursery() as nursery:
        a, a_events, a_addr = await start(nursery, keys, "a")
        b, b_events, _ = await start(nursery, keys, "b", Meta(vtep="192.0.2.2"))
        assert await b.join([a_addr]) == 2
        ev = await next_event(a_events, EventKind.JOIN, "b")
        assert ev.member.meta.vtep == "192.0.2.2"
        b.update_meta(Meta(vtep="192.0.2.2", role="voter"))
        ev = await next_event(a_events, EventKind.UPDATE, "b")
        assert ev.member.meta.role == "voter"
        assert await b.leave() is True
        await next_event(a_events, EventKind.LEAVE, "b")
        st = a.status()
        assert st.gossip.messages_in > 0 and st.transport.received_bytes > 0
        assert st.transport.undecodable == 0
        nursery.cancel_scope.cancel()


async def test_join_with_nobody_answering_names_the_addresses_and_the_fix():
    keys = ClusterKeys.from_secret(new_secret())
    async with trio.open_nursery() as nursery:
        a, _, _ = await start(nursery, keys, "a")
        with pytest.raises(JoinError, match=r"127.0.0.1:9 within 1s \(\d+ tries\).*same cluster secret"):
            await a.join(["tcp://127.0.0.1:9"], timeout_s=1.0, first_backoff_s=0.1)
        nursery.cancel_scope.cancel()

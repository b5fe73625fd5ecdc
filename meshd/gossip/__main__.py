"""A standalone gossip agent process: ``python -m meshd.gossip``.

Used by the real-process tests and tools/bench/gossip.py (one process per
member, like one Serf agent per member).  It prints one JSON line per event
on stdout, each stamped with the wall clock when this member reported it::

    {"t": 1763800000.123, "event": "ready", "name": "n1", "addr": "tcp://127.0.0.1:41234"}
    {"t": ..., "event": "joined", "members": 3}
    {"t": ..., "event": "join", "member": "n2", "incarnation": 0, "state": "ALIVE"}
    {"t": ..., "event": "status", ...}          (on SIGUSR1)
    {"t": ..., "event": "left", "confirmed": true}   (on SIGTERM / SIGINT)
    {"t": ..., "event": "error", "error": "..."}     (and exit status 2)

SIGTERM or SIGINT leave gracefully, then exit 0.  SIGUSR1 prints status.
SIGUSR2 publishes new metadata (label ``gen`` incremented).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
import time
from typing import Any

import msgspec
import trio

from meshd.transport import ClusterKeys, ZmqHost, read_secret

from ._config import GossipConfig
from ._driver import GossipAgent, JoinError
from ._messages import Meta


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"t": time.time(), "event": event, **fields}), flush=True)


async def _events(agent: GossipAgent) -> None:
    async for ev in agent.subscribe():
        emit(ev.kind.value, member=ev.member.name, incarnation=ev.member.incarnation,
             state=ev.member.state.name, addr=ev.member.addr, labels=ev.member.meta.labels)


async def _signals(agent: GossipAgent, cancel: trio.CancelScope,
                   task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGUSR1,
                                   signal.SIGUSR2) as signals:
        task_status.started()  # installed: "ready" may be announced now
        async for sig in signals:
            if sig == signal.SIGUSR1:
                st = agent.status()
                emit("status", **dataclasses.asdict(st.gossip),
                     bytes_out=st.transport.sent_bytes, bytes_in=st.transport.received_bytes,
                     undecodable=st.transport.undecodable, malformed=st.transport.malformed,
                     dropped_unconnected=st.transport.dropped_unconnected)
            elif sig == signal.SIGUSR2:
                gen = int(agent.meta.labels.get("gen", "0")) + 1
                agent.update_meta(msgspec.structs.replace(agent.meta, labels={**agent.meta.labels,
                                                                         "gen": str(gen)}))
            else:
                emit("left", confirmed=await agent.leave())
                cancel.cancel()
                return


async def amain(args: argparse.Namespace) -> int:
    keys = ClusterKeys.from_secret(read_secret(args.secret_file))
    config = GossipConfig.local() if args.profile == "local" else GossipConfig.lan()
    host = ZmqHost(keys)
    meta = Meta(vtep=args.vtep, role=args.role, version="meshd-gossip")
    async with trio.open_nursery() as nursery:
        await nursery.start(host.run)
        agent = GossipAgent(host, name=args.name, bind=args.bind, config=config, meta=meta)
        nursery.start_soon(_events, agent)
        addr = await nursery.start(agent.run)
        with trio.CancelScope() as scope:
            await nursery.start(_signals, agent, scope)
            emit("ready", name=args.name, addr=addr, pid=os.getpid())
            if args.join:
                try:
                    emit("joined", members=await agent.join(args.join, timeout_s=args.join_timeout_s))
                except JoinError as exc:
                    emit("error", error=str(exc))
                    nursery.cancel_scope.cancel()
                    return 2
            await trio.sleep_forever()
        nursery.cancel_scope.cancel()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m meshd.gossip", description=__doc__.splitlines()[0])
    p.add_argument("--name", required=True)
    p.add_argument("--bind", default="tcp://127.0.0.1:0")
    p.add_argument("--secret-file", required=True)
    p.add_argument("--join", action="append", default=[], help="a member's gossip address")
    p.add_argument("--join-timeout-s", type=float, default=120.0,
                   help="give up joining when no --join address answered within this long (default 120)")
    p.add_argument("--profile", choices=["lan", "local"], default="lan")
    p.add_argument("--vtep", default="")
    p.add_argument("--role", default="agent")
    p.add_argument("--log-level", default="WARNING")
    args = p.parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return trio.run(amain, args)


if __name__ == "__main__":
    sys.exit(main())

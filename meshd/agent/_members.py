"""MemberBook: the agent's view of gossip membership, over :class:`meshd.gossip.GossipAgent`.

The gossip driver (``meshd.gossip.GossipAgent``) runs SWIM over a Mesh; this
class adds what the agent needs on top: member events as
:class:`MemberEvent` (with the VTEP address), Raft peer addresses and VTEPs
from member metadata, the autopilot's member views (with when each member
entered its state), and plain maps for the API and ``meshd top``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from meshd.config import Config
from meshd.gossip import GossipAgent, Meta, State
from meshd.gossip import JoinError as GossipJoinError
from meshd.transport import ZmqHost
from netops import LINK_KINDS

from . import _autopilot as ap
from ._local import AgentStartError

log = logging.getLogger("meshd.agent")

#: the peers file is rewritten at most this often, seconds (see MemberBook._keep_remembered)
REMEMBER_INTERVAL_S = 5.0

_HEALTH = {State.ALIVE: ap.Health.ALIVE, State.SUSPECT: ap.Health.SUSPECT, State.DEAD: ap.Health.FAILED,
           State.LEFT: ap.Health.LEFT}


@dataclass(frozen=True, slots=True)
class MemberEvent:
    kind: str       #: join, update, suspect, alive, fail, leave
    name: str
    address: str    #: the member's VTEP (underlay) address


class JoinError(AgentStartError):
    """No seed answered."""


def gossip_address(addr: str, default_port: int) -> str:
    """``host``, ``host:port`` or ``tcp://host:port`` -> ``tcp://host:port``."""
    if addr.startswith("tcp://"):
        return addr
    host, sep, port = addr.rpartition(":")
    return f"tcp://{addr}:{default_port}" if not sep else f"tcp://{host}:{port}"


class MemberBook:
    """Gossip membership of one agent; see the module docstring."""

    def __init__(self, host: ZmqHost, name: str, cfg: Config, *, advertise: str, version: str,
                 underlay_mtu: int = 0, dataplane: Iterable[str] = ()) -> None:
        self.name = name
        self._peers_file = Path(cfg.agent.data_dir) / "gossip-peers"
        self.cfg = cfg
        a = cfg.agent
        meta = Meta(vtep=advertise, raft_addr=f"tcp://{advertise}:{a.raft_port}",
                    api_addr=f"tcp://{advertise}:{cfg.api.router_port}", version=version, role="agent",
                    underlay_mtu=underlay_mtu, dataplane=tuple(sorted(dataplane)))
        self.gossip = GossipAgent(host, name=name, bind=f"tcp://{a.bind_address}:{a.gossip_port}",
                                  config=cfg.gossip, advertise_host=advertise, meta=meta)
        self._subscribers: list[trio.MemorySendChannel] = []
        self._first_seen: dict[str, float] = {}
        self._since: dict[str, float] = {}
        self._remembered: list[str] = []  #: the addresses last written to the peers file
        self._peers_changed = trio.Event()

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(self.gossip.run)
            self._first_seen[self.name] = self._since[self.name] = trio.current_time()
            nursery.start_soon(self._relay, self.gossip.subscribe())
            nursery.start_soon(self._keep_remembered)
            task_status.started()

    async def _relay(self, events: trio.MemoryReceiveChannel) -> None:
        async for event in events:
            m = event.member
            now = trio.current_time()
            self._first_seen.setdefault(m.name, now)
            self._since[m.name] = now
            item = MemberEvent(event.kind.value, m.name, m.meta.vtep)
            self._peers_changed.set()
            for send in list(self._subscribers):
                try:
                    send.send_nowait(item)
                except trio.WouldBlock:
                    log.warning("member event subscriber is behind; event dropped kind=%s", item.kind)
                except trio.BrokenResourceError:
                    self._subscribers.remove(send)

    def subscribe(self, max_buffer: int = 1024) -> trio.MemoryReceiveChannel:
        """A stream of :class:`MemberEvent`, from now on (subscribe before joining)."""
        send, recv = trio.open_memory_channel(max_buffer)
        self._subscribers.append(send)
        return recv

    async def _keep_remembered(self) -> None:
        """Keep the live members' gossip addresses on disk, to rejoin after a restart.

        Written at most every ``REMEMBER_INTERVAL_S`` and only when the set
        changed, in a worker thread: a join storm of 200 hosts brings each
        agent ~200 member events, and one write + rename per event (ext4
        flushes the data on rename) blocked every agent's event loop on the
        disk for minutes (docs/scale.md). Any one remembered member is enough
        to rejoin, so a file a few seconds old does.
        """
        while True:
            await self._peers_changed.wait()
            self._peers_changed = trio.Event()
            addrs = sorted(m.addr for m in self._live() if m.name != self.name)
            if addrs and addrs != self._remembered:
                await trio.to_thread.run_sync(self._write_peers, addrs)
                self._remembered = addrs
            await trio.sleep(REMEMBER_INTERVAL_S)

    def _write_peers(self, addrs: list[str]) -> None:
        tmp = self._peers_file.with_suffix(".tmp")
        tmp.write_text("\n".join(addrs) + "\n")
        os.replace(tmp, self._peers_file)

    def remembered(self) -> list[str]:
        """Gossip addresses of the members alive when this host last ran."""
        try:
            return [line for line in self._peers_file.read_text().split() if line]
        except FileNotFoundError:
            return []

    async def join(self, addresses: Iterable[str]) -> int:
        """Join through any of ``addresses``; returns the number of members known.

        Raises:
          JoinError: none answered after the retries (names them and the likely causes).
        """
        seeds = [gossip_address(a, self.cfg.agent.gossip_port) for a in addresses]
        try:
            return await self.gossip.join(seeds, timeout_s=self.cfg.agent.join_timeout_s)
        except GossipJoinError as exc:
            raise JoinError(str(exc)) from None

    async def leave(self) -> None:
        """Announce LEFT and wait (bounded) until every live member acknowledged."""
        await self.gossip.leave()

    # --- views -------------------------------------------------------------------

    def _members(self) -> tuple[Any, ...]:
        return self.gossip.members() if self.gossip.core is not None else ()

    def _live(self) -> list[Any]:
        return [m for m in self._members() if m.state in (State.ALIVE, State.SUSPECT)]

    def raft_peers(self) -> dict[str, str]:
        """Raft addresses of every member but this host and those that left, failed ones included.

        A failed member keeps its address (and so its Raft connection) until it leaves or gossip
        reaps it: a member falsely declared failed (starved, a lost ack) keeps its TCP
        connections, so coming back costs it nothing, where dropping the address made every
        other host close its connection and dial again, and the member answer all of their
        CURVE handshakes at once, just when it was late already (docs/scale.md). Frames to a
        member that is really down are dropped at once (ZeroMQ's IMMEDIATE), as while it is only
        suspected; Raft retries. The member set therefore changes only on join, update and
        leave, which is when :meth:`Agent._on_members` passes it on.
        """
        return {m.name: m.meta.raft_addr for m in self._members()
                if m.name != self.name and m.state is not State.LEFT and m.meta.raft_addr}

    def live_vteps(self) -> dict[str, str]:
        return {m.name: m.meta.vtep for m in self._live() if m.meta.vtep}

    def underlay_mtus(self) -> dict[str, int]:
        """Every member's advertised underlay MTU (0: not said), except members that left:
        a failed member's data plane may still carry traffic."""
        return {m.name: m.meta.underlay_mtu for m in self._members() if m.state is not State.LEFT}

    def dataplanes(self) -> dict[str, tuple[str, ...]]:
        """The link kinds every member said its kernel can create (empty: not said), except
        members that left (see :mod:`._dataplane`)."""
        return {m.name: m.meta.dataplane for m in self._members() if m.state is not State.LEFT}

    def dataplane_of(self, host: str) -> dict[str, tuple[str, ...]]:
        """:meth:`dataplanes` of ``host`` alone (empty if it is unknown or left): one lookup, not a scan."""
        m = self.gossip.member(host) if self.gossip.core is not None else None
        return {} if m is None or m.state is State.LEFT else {m.name: m.meta.dataplane}

    def alive_names(self) -> set[str]:
        return {m.name for m in self._live()}

    def views(self, lags: dict[str, int], raft_members: Iterable[str] = ()) -> list[ap.MemberView]:
        """Autopilot's view.  A Raft member gossip does not know (yet: this host just
        started) counts as failed since this host started, so the grace period runs
        from here instead of removing it at once."""
        views = [ap.MemberView(m.name, _HEALTH[m.state], self._since.get(m.name, 0.0),
                               self._first_seen.get(m.name, 0.0), lags.get(m.name))
                 for m in self._members()]
        known = {v.name for v in views}
        start = self._first_seen.get(self.name, 0.0)
        views += [ap.MemberView(n, ap.Health.FAILED, start, start, None) for n in raft_members if n not in known]
        return views

    def as_maps(self) -> list[dict[str, Any]]:
        return [{"name": m.name, "state": _STATE_NAMES[m.state], "incarnation": m.incarnation,
                 "address": m.meta.vtep, "gossip": m.addr, "role": m.meta.role, "version": m.meta.version,
                 "underlay_mtu": m.meta.underlay_mtu or None, **_dataplane_map(m.meta.dataplane)}
                for m in sorted(self._members(), key=lambda m: m.name)]

    def gossip_status(self) -> Any:
        return self.gossip.status() if self.gossip.core is not None else {}


_STATE_NAMES = {State.ALIVE: "alive", State.SUSPECT: "suspect", State.DEAD: "failed", State.LEFT: "left"}


def _dataplane_map(kinds: tuple[str, ...]) -> dict[str, list[str] | None]:
    """A member's link kinds and those of :data:`netops.LINK_KINDS` it lacks (None: not said)."""
    if not kinds:
        return {"dataplane": None, "dataplane_missing": None}
    return {"dataplane": list(kinds), "dataplane_missing": [k for k in LINK_KINDS if k not in kinds]}

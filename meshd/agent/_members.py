"""MemberBook: the agent's gossip — the SWIM core over a Mesh, and the views the agent needs.

Theory of operation
-------------------
A thin trio driver around :class:`meshd.gossip.GossipCore`: one task receives
and steps messages, one ticks the core at its ``next_deadline()``; every
Outbox is sent with ``Mesh.send_nowait`` (a probe never waits behind a dead
peer: an unconnected or full peer drops the frame, which SWIM tolerates).
Members that appear are dialled at once, so the next probe finds a connection.
Joining sends a push-pull to every seed, waiting for the connection, and
retries with backoff until one answers.  Leaving waits (bounded) until every
live member acknowledged.

Views for the agent: Raft peer addresses and VTEPs from member metadata,
autopilot's member views, plain maps for the API and TUI, and a stream of
:class:`MemberEvent`.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Any, Iterable

import trio

from meshd.config import Config
from meshd.gossip import Event, EventKind, GossipCore, Meta, Outbox, State
from meshd.transport import Mesh, ZmqHost

from . import _autopilot as ap
from ._local import AgentStartError

log = logging.getLogger("meshd.gossip")

_HEALTH = {State.ALIVE: ap.Health.ALIVE, State.SUSPECT: ap.Health.SUSPECT, State.DEAD: ap.Health.FAILED,
           State.LEFT: ap.Health.LEFT}
#: join: attempts and the first backoff (doubling, capped at 5 s)
_JOIN_ATTEMPTS = 8
_JOIN_BACKOFF_S = 0.25


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
    host, _, port = addr.rpartition(":") if addr.count(":") == 1 else (addr, "", "")
    return f"tcp://{host or addr}:{port or default_port}"


class MemberBook:
    """Gossip membership of one agent; see the module docstring."""

    def __init__(self, host: ZmqHost, name: str, cfg: Config, *, advertise: str, version: str) -> None:
        self.name = name
        self.cfg = cfg
        a = cfg.agent
        self.addr = f"tcp://{advertise}:{a.gossip_port}"
        self.meta = Meta(vtep=advertise, raft_addr=f"tcp://{advertise}:{a.raft_port}",
                         api_addr=f"tcp://{advertise}:{cfg.api.router_port}", version=version, role="agent")
        self.mesh = Mesh(host, name, f"tcp://{a.bind_address}:{a.gossip_port}")
        self.core: GossipCore | None = None
        self._subscribers: list[trio.MemorySendChannel] = []
        self._first_seen: dict[str, float] = {}
        self._since: dict[str, float] = {}
        self._wake = trio.Event()

    # --- running ---------------------------------------------------------------

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        self.mesh.open()
        self.core = GossipCore(name=self.name, addr=self.addr, config=self.cfg.gossip, rng=random.Random(),
                               now=trio.current_time(), meta=self.meta)
        self._first_seen[self.name] = self._since[self.name] = trio.current_time()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._receive)
                nursery.start_soon(self._tick)
                task_status.started()
        finally:
            self.mesh.close()

    async def _receive(self) -> None:
        assert self.core is not None
        while True:
            _, msg = await self.mesh.receive_message()
            self._handle(self.core.step(msg, trio.current_time()))

    async def _tick(self) -> None:
        assert self.core is not None
        while True:
            with trio.move_on_at(self.core.next_deadline()):
                await self._wake.wait()
            self._wake = trio.Event()
            self._handle(self.core.tick(trio.current_time()))

    def _handle(self, out: Outbox) -> None:
        for addr, msg in out.messages:
            if not self.mesh.send_message_nowait(addr, msg) and self.core is not None:
                self.core.count_dropped()
        for note in out.notes:
            log.debug("%s", note)
        for event in out.events:
            self._on_event(event)
        self._wake.set()  # the deadline may have moved

    def _on_event(self, event: Event) -> None:
        m = event.member
        now = trio.current_time()
        self._first_seen.setdefault(m.name, now)
        self._since[m.name] = now
        if event.kind in (EventKind.JOIN, EventKind.UPDATE):
            self.mesh.connect(m.addr)
        level = logging.INFO if event.kind is not EventKind.UPDATE else logging.DEBUG
        log.log(level, "member event=%s name=%s addr=%s incarnation=%d", event.kind.value, m.name, m.addr,
                m.incarnation)
        item = MemberEvent(event.kind.value, m.name, m.meta.vtep)
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

    async def join(self, addresses: Iterable[str]) -> int:
        """Join through any of ``addresses``; returns the number of members known.

        Raises:
          JoinError: none answered after the retries (names them).
        """
        assert self.core is not None
        seeds = [gossip_address(a, self.cfg.agent.gossip_port) for a in addresses]
        backoff = _JOIN_BACKOFF_S
        for _ in range(_JOIN_ATTEMPTS):
            for seed in seeds:
                self.mesh.connect(seed)
            await trio.sleep(0.05)  # let the connections come up before the first push-pull
            self._handle(self.core.join(seeds, trio.current_time()))
            with trio.move_on_after(backoff):
                while not self.core.joined:
                    await trio.sleep(0.02)
            if self.core.joined:
                log.info("joined through=%s members=%d", ",".join(seeds), len(self.core.members()))
                return len(self.core.members())
            backoff = min(backoff * 2, 5.0)
        raise JoinError(f"no member answered at {', '.join(seeds)}: is meshd running there, is the gossip "
                        f"port {self.cfg.agent.gossip_port} reachable, and do both hosts hold the same "
                        "cluster secret?")

    async def leave(self) -> None:
        """Announce LEFT and wait (at most a few probe intervals) for every live member's ack."""
        if self.core is None:
            return
        self._handle(self.core.leave(trio.current_time()))
        with trio.move_on_after(max(2.0, 5 * self.cfg.gossip.probe_interval_s)):
            while not self.core.leave_confirmed:
                await trio.sleep(0.02)
        log.info("left the cluster confirmed=%s", self.core.leave_confirmed)

    # --- views -------------------------------------------------------------------

    def _live(self) -> list[Any]:
        if self.core is None:
            return []
        return [m for m in self.core.members() if m.state in (State.ALIVE, State.SUSPECT)]

    def raft_peers(self) -> dict[str, str]:
        return {m.name: m.meta.raft_addr for m in self._live() if m.name != self.name and m.meta.raft_addr}

    def live_vteps(self) -> dict[str, str]:
        return {m.name: m.meta.vtep for m in self._live() if m.meta.vtep}

    def alive_names(self) -> set[str]:
        return {m.name for m in self._live()}

    def views(self, lags: dict[str, int]) -> list[ap.MemberView]:
        if self.core is None:
            return []
        return [ap.MemberView(m.name, _HEALTH[m.state], self._since.get(m.name, 0.0),
                              self._first_seen.get(m.name, 0.0), lags.get(m.name))
                for m in self.core.members()]

    def as_maps(self) -> list[dict[str, Any]]:
        if self.core is None:
            return []
        return [{"name": m.name, "state": _STATE_NAMES[m.state], "incarnation": m.incarnation,
                 "address": m.meta.vtep, "gossip": m.addr, "role": m.meta.role, "version": m.meta.version}
                for m in sorted(self.core.members(), key=lambda m: m.name)]

    def gossip_status(self) -> Any:
        return self.core.status() if self.core is not None else {}


_STATE_NAMES = {State.ALIVE: "alive", State.SUSPECT: "suspect", State.DEAD: "failed", State.LEFT: "left"}

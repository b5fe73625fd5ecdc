"""GossipAgent: the thin trio driver that runs a GossipCore over meshd.transport.

Theory of operation
-------------------
One :class:`meshd.transport.Mesh` (a ROUTER inbox, one IMMEDIATE DEALER per
peer) carries every gossip message.  Two tasks: ``_receive`` steps the core
with each decoded message (the Mesh drops and counts what does not decode)
and ``_tick`` calls ``tick`` at the core's ``next_deadline``.  Every
:class:`Outbox` is handled the same way, in this order:

1. events: a member that joins or changes address is dialled at once, then
   the event goes to every subscriber's memory channel (no coalescing);
2. messages: ``send_nowait`` — queued, or dropped at once when the peer is
   not connected or its queue is full.  A probe therefore never waits behind
   a dead peer; SWIM treats the drop like a lost packet.  Only an address
   first contacted less than ``connect_grace_s`` ago (a joiner, a new member)
   gets one bounded retry in its own task, so the first reply to a new member
   is not lost while its TCP/CURVE handshake completes.
3. notes: logged under ``meshd.gossip`` (INFO for membership transitions);
4. forgotten addresses (reaped members): their connections are closed, so
   the transport stops trying to reach them.

A TCP disconnect is never taken as proof of death: only SWIM decides.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import trio

from meshd import wire
from meshd.transport import Mesh, MeshStats, ZmqHost

from ._config import GossipConfig
from ._core import GossipCore
from ._messages import Meta
from ._types import Event, EventKind, GossipStatus, Member, Outbox

log = logging.getLogger("meshd.gossip")

_MAX_RETRY_TASKS = 256


class JoinError(RuntimeError):
    """No seed answered a join: names the addresses and the likely causes."""


@dataclass(frozen=True, slots=True)
class AgentStatus:
    """``GossipAgent.status()``: the core's counters plus the transport's bytes."""

    gossip: GossipStatus
    transport: MeshStats


class GossipAgent:
    """SWIM membership of this host over ZeroMQ.

    Args:
      host: the transport host (CURVE keys from the cluster secret, ZAP running).
      name: this member's unique name.
      bind: the inbox endpoint, e.g. ``tcp://0.0.0.0:7946`` (port 0 picks one).
      advertise_host: the address others dial (replaces the bind host);
        None keeps the bound endpoint as is.
      config: gossip timing.
      meta: this member's metadata.
      rng: randomness (a fresh ``random.Random()`` if None).
      connect_grace_s: how long after first contact a send may wait for the
        connection instead of being dropped.

    Use::

        agent = GossipAgent(host, name="h1", bind="tcp://0.0.0.0:7946", config=cfg)
        events = agent.subscribe()
        await nursery.start(agent.run)
        await agent.join(["tcp://192.0.2.1:7946"])
        ...
        await agent.leave()
    """

    def __init__(self, host: ZmqHost, *, name: str, bind: str, config: GossipConfig,
                 advertise_host: str | None = None, meta: Meta = Meta(),
                 rng: random.Random | None = None, connect_grace_s: float = 1.0) -> None:
        self.name, self.config, self.meta = name, config, meta
        self.mesh = Mesh(host, name, bind)
        self._advertise_host = advertise_host
        self._rng = rng or random.Random()
        self._grace_s = connect_grace_s
        self.core: GossipCore | None = None
        self._subscribers: list[trio.MemorySendChannel[Event]] = []
        self._first_contact: dict[str, float] = {}
        self._retry_tasks = 0
        self._nursery: trio.Nursery | None = None
        self._wake = trio.Event()
        self._changed = trio.Event()

    # --- lifecycle ------------------------------------------------------------

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Bind, create the core and serve until cancelled; ``started(address)``."""
        endpoint = self.mesh.open()
        if self._advertise_host:
            endpoint = f"tcp://{self._advertise_host}:{endpoint.rsplit(':', 1)[1]}"
        self.core = GossipCore(name=self.name, addr=endpoint, config=self.config, rng=self._rng,
                               now=trio.current_time(), meta=self.meta)
        log.info("gossip started name=%s addr=%s", self.name, endpoint)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._receive)
                nursery.start_soon(self._tick)
                task_status.started(endpoint)
        finally:
            self.mesh.close()

    @property
    def addr(self) -> str:
        return self._core().addr

    async def join(self, seeds: Iterable[str], *, timeout_s: float = 120.0, first_backoff_s: float = 0.25,
                   max_backoff_s: float = 5.0) -> int:
        """Join through any one of ``seeds`` (gossip addresses); returns members known.

        Sends a push-pull to every seed, again and again until one answers:
        the wait doubles from ``first_backoff_s`` up to ``max_backoff_s``, each
        wait drawn between half and all of that (jitter: agents started
        together do not retry in step and flood the seeds together).

        Raises:
          JoinError: none answered within ``timeout_s``.
        """
        core, seeds = self._core(), [s for s in seeds if s]
        backoff, tries = first_backoff_s, 0
        with trio.move_on_after(timeout_s):
            while True:
                tries += 1
                for seed in seeds:
                    self._touch(seed)
                self._handle(core.join(seeds, trio.current_time()))
                with trio.move_on_after(backoff * self._rng.uniform(0.5, 1.0)):
                    while not core.joined:
                        await self._wait_changed()
                if core.joined:
                    log.info("joined through=%s members=%d tries=%d", ",".join(seeds), len(core.members()), tries)
                    return len(core.members())
                if tries in (4, 16) or tries % 64 == 0:
                    log.warning("no gossip member answered yet at %s after %d tries; still trying",
                                ",".join(seeds) or "(no address given)", tries)
                backoff = min(backoff * 2, max_backoff_s)
        raise JoinError(
            f"no gossip member answered at {', '.join(seeds) or '(no address given)'} within "
            f"{timeout_s:g}s ({tries} tries): check that meshd runs there, that the gossip port is reachable "
            f"from here, and that both hosts hold the same cluster secret")

    async def leave(self) -> bool:
        """Leave gracefully; True when every live member confirmed within leave_timeout_s."""
        core = self._core()
        self._handle(core.leave(trio.current_time()))
        with trio.move_on_after(self.config.leave_timeout_s):
            while not core.leave_confirmed:
                await self._wait_changed()
        log.info("left name=%s confirmed=%s", self.name, core.leave_confirmed)
        return core.leave_confirmed

    def update_meta(self, meta: Meta) -> None:
        """Publish new metadata (a fresh incarnation) to the cluster."""
        self.meta = meta
        self._handle(self._core().update_meta(meta, trio.current_time()))

    def subscribe(self, max_buffer: int = 4096) -> trio.MemoryReceiveChannel[Event]:
        """A stream of membership :class:`Event`, from now on, delivered at once.

        A subscriber more than ``max_buffer`` events behind loses events
        (counted in ``dropped`` and logged); close the channel to unsubscribe.
        """
        send, recv = trio.open_memory_channel[Event](max_buffer)
        self._subscribers.append(send)
        return recv

    def members(self) -> tuple[Member, ...]:
        return self._core().members()

    def member(self, name: str) -> Member | None:
        """One member by name (None if unknown): a lookup, where :meth:`members` copies them all."""
        return self._core().member(name)

    def status(self) -> AgentStatus:
        return AgentStatus(self._core().status(), self.mesh.statistics())

    # --- tasks ------------------------------------------------------------------

    async def _receive(self) -> None:
        core = self._core()
        while True:
            _, msg = await self.mesh.receive_message()
            self._handle(core.step(msg, trio.current_time()))

    async def _tick(self) -> None:
        core = self._core()
        while True:
            with trio.move_on_at(core.next_deadline()):
                await self._wake.wait()
            self._wake = trio.Event()
            if trio.current_time() >= core.next_deadline():
                # what arrived while this loop was busy is heard before any timer judges: after a
                # stall, an ack waiting in the inbox must not lose to the probe's timeout
                while (received := self.mesh.receive_message_nowait()) is not None:
                    self._handle(core.step(received[1], trio.current_time()))
                self._handle(core.tick(trio.current_time()))

    async def _wait_changed(self) -> None:
        await self._changed.wait()

    def _handle(self, out: Outbox) -> None:
        for event in out.events:
            self._deliver(event)
        for addr, msg in out.messages:
            self._send(addr, msg)
        for note in out.notes:
            log.log(logging.INFO if "event=" in note and "probe_failed" not in note
                    else logging.DEBUG, "%s", note)
        for addr in out.forgotten:
            self.mesh.forget(addr)
            self._first_contact.pop(addr, None)
        self._wake.set()  # the next deadline may have moved
        self._changed.set()
        self._changed = trio.Event()

    def _deliver(self, event: Event) -> None:
        if event.kind in (EventKind.JOIN, EventKind.UPDATE):
            self._touch(event.member.addr)
        for send in list(self._subscribers):
            try:
                send.send_nowait(event)
            except trio.WouldBlock:
                self._core().count_dropped()
                log.warning("gossip subscriber is behind; event dropped kind=%s member=%s",
                            event.kind.value, event.member.name)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._subscribers.remove(send)

    def _touch(self, addr: str) -> None:
        """Dial ``addr`` now if it is new, remembering when (for the grace period)."""
        if addr and addr not in self._first_contact:
            if len(self._first_contact) > 4 * 4096:
                self._first_contact.clear()  # bounded; old entries are past grace anyway
            self._first_contact[addr] = trio.current_time()
            self.mesh.connect(addr)

    def _send(self, addr: str, msg: Any) -> None:
        self._touch(addr)
        payload = wire.encode(msg)
        if self.mesh.send_nowait(addr, payload):
            return
        fresh = trio.current_time() - self._first_contact[addr] < self._grace_s
        if fresh and self._nursery is not None and self._retry_tasks < _MAX_RETRY_TASKS:
            self._retry_tasks += 1
            self._nursery.start_soon(self._send_when_connected, addr, payload)
        else:
            self._core().count_dropped()

    async def _send_when_connected(self, addr: str, payload: bytes) -> None:
        try:
            if not await self.mesh.send(addr, payload, timeout_s=self._grace_s):
                self._core().count_dropped()
        finally:
            self._retry_tasks -= 1

    def _core(self) -> GossipCore:
        if self.core is None:
            raise RuntimeError("GossipAgent.run() must be started first (nursery.start(agent.run))")
        return self.core

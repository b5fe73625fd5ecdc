"""Member events from every host's PUB socket (30029), timestamped as they arrive.

Each host's subscriber lives in that host's own netns (its ZeroMQ context,
and so its I/O thread, is made there) and connects to the host's own
address: a cut never hides a host's events from the watcher, and a
restarted agent is found again by ZeroMQ's reconnect.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import zmq

import netops
from meshd.api import MsgType, unpack
from meshd.transport import ClientKey
from tools.chaos._background import Background
from tools.chaos._checks import MemberEvent
from tools.lab import Lab

KINDS: dict[int, str] = {
    MsgType.EVENT_MEMBER_JOIN: "join", MsgType.EVENT_MEMBER_FAIL: "fail", MsgType.EVENT_MEMBER_LEAVE: "leave",
}
PUB_PORT = 30029


class EventWatcher(Background):
    """Collects member join/fail/leave events of ``hosts`` into ``events`` (a list, append-only)."""

    thread_name = "chaos-events"

    def __init__(self, lab: Lab, hosts: Sequence[str], key: ClientKey) -> None:
        self.events: list[MemberEvent] = []
        self._subs: dict[zmq.Socket, str] = {}
        self._contexts = []
        for host in hosts:
            h = lab.host(host)
            with netops.in_netns(f"/run/netns/{h.netns}"):
                ctx = zmq.Context()
                sock = ctx.socket(zmq.SUB)
            self._contexts.append(ctx)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.CURVE_SERVERKEY, key.api_server_public)
            sock.setsockopt(zmq.CURVE_PUBLICKEY, key.pair.public)
            sock.setsockopt(zmq.CURVE_SECRETKEY, key.pair.secret)
            sock.setsockopt(zmq.SUBSCRIBE, b"")
            sock.connect(f"tcp://{h.underlay_ip}:{PUB_PORT}")
            self._subs[sock] = host

    def close(self) -> None:
        for ctx in self._contexts:
            ctx.destroy(linger=0)

    def loop(self, stop: threading.Event) -> None:
        poller = zmq.Poller()
        for sock in self._subs:
            poller.register(sock, zmq.POLLIN)
        while not stop.is_set():
            for sock, _ in poller.poll(200):
                now = time.monotonic()
                try:
                    msg_type, body = unpack(sock.recv(zmq.NOBLOCK), max_bytes=1 << 20)
                except (zmq.Again, ValueError):
                    continue
                kind = KINDS.get(msg_type)
                if kind is not None:
                    self.events.append(MemberEvent(now, self._subs[sock], kind, str(body.get("name", ""))))

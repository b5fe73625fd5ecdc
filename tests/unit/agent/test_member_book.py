"""MemberBook's views of the gossip table (a real GossipCore, driven by gossip messages)."""

from __future__ import annotations

import random

from meshd.agent._members import MemberBook
from meshd.config import Config
from meshd.gossip import Gossip, GossipConfig, GossipCore, Member, Meta, State, Update
from meshd.transport import ZmqHost

CFG = GossipConfig.local()


def meta(name: str) -> Meta:
    return Meta(vtep=name, raft_addr=f"tcp://{name}:30029")


def test_raft_peers_keep_failed_members_and_vteps_are_the_live_members_but_this_host() -> None:
    """Raft is told the addresses of the members (not this host's own) that did not leave: a failed
    member keeps its address, so a false failure does not make every host drop its connection and
    dial again; the data plane's VTEPs are the live members only."""
    cfg = Config()  # nothing is written: the book is not run
    host = ZmqHost(None)
    try:
        book = MemberBook(host, "me", cfg, advertise="192.0.2.11", version="test")
        core = GossipCore(name="me", addr="me", config=CFG, rng=random.Random(1), now=0.0, meta=meta("me"))
        core.preload([Member(n, n, State.ALIVE, 0, meta(n)) for n in ("a", "b", "c")], 0.0)
        book.gossip.core = core
        now = 0.0
        while now < 60.0:  # nobody answers: every member is suspected, then declared dead
            now = core.next_deadline()
            core.tick(now)
        core.step(Gossip(src="c", src_addr="c", updates=(  # c is back; b says it left
            Update(name="c", state=State.ALIVE, incarnation=5, by="c", addr="c", meta=meta("c")),
            Update(name="b", state=State.LEFT, incarnation=5, by="b"),
        )), now)
        states = {m.name: m.state for m in book.gossip.members()}
        assert states == {"me": State.ALIVE, "a": State.DEAD, "b": State.LEFT, "c": State.ALIVE}
        assert book.raft_peers() == {"a": "tcp://a:30029", "c": "tcp://c:30029"}
        assert book.live_vteps() == {"me": "me", "c": "c"}  # the data plane: live members only
    finally:
        host.close()

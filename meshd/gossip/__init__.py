"""meshd.gossip: SWIM membership with Lifeguard.

The protocol is :class:`GossipCore` (pure: messages and ticks in, messages,
events and notes out); :class:`GossipAgent` runs it over meshd.transport.
"""

from ._config import GossipConfig
from ._core import GossipCore
from ._messages import (
    MESSAGES,
    Ack,
    Gossip,
    IndirectPing,
    LeaveAck,
    Meta,
    Nack,
    Ping,
    PushPullReq,
    PushPullResp,
    State,
    Update,
)
from ._types import Event, EventKind, GossipStatus, Member, Outbox

__all__ = [
    "MESSAGES", "Ack", "AgentStatus", "Event", "EventKind", "Gossip", "GossipConfig", "GossipCore",
    "GossipAgent", "GossipStatus", "IndirectPing", "JoinError", "LeaveAck", "Member", "Meta", "Nack", "Outbox", "Ping",
    "PushPullReq", "PushPullResp", "State", "Update",
]


def __getattr__(name: str):
    # The driver imports meshd.transport, which imports meshd.config, which
    # imports GossipConfig from here: load it lazily to keep that cycle open.
    if name in ("AgentStatus", "GossipAgent", "JoinError"):
        from . import _driver

        return getattr(_driver, name)
    raise AttributeError(f"module 'meshd.gossip' has no attribute {name!r}")

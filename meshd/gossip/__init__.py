"""meshd.gossip: SWIM membership with Lifeguard.

The protocol is :class:`GossipCore` (pure: messages and ticks in, messages,
events and notes out); :class:`GossipAgent` runs it over meshd.transport.
"""

from ._config import GossipConfig
from ._core import GossipCore
from ._messages import (
    MESSAGES, Ack, Gossip, IndirectPing, LeaveAck, Meta, Nack, Ping, PushPullReq,
    PushPullResp, State, Update,
)
from ._types import Event, EventKind, GossipStatus, Member, Outbox

__all__ = [
    "MESSAGES", "Ack", "Event", "EventKind", "Gossip", "GossipConfig", "GossipCore",
    "GossipStatus", "IndirectPing", "LeaveAck", "Member", "Meta", "Nack", "Outbox", "Ping",
    "PushPullReq", "PushPullResp", "State", "Update",
]

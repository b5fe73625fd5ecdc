"""meshd.gossip: SWIM membership with Lifeguard."""

from ._config import GossipConfig

__all__ = ["GossipConfig"]

"""consensus: a pure Raft core, durable storage and a trio driver. Knows nothing of meshd."""

from ._config import RaftConfig

__all__ = ["RaftConfig"]

"""meshd.agent: the daemon that wires gossip, Raft, the state, the reconciler and the APIs.

:class:`Agent` runs one host (``meshd agent``); see ``_agent.py`` for the
theory of operation.  Pure parts: :mod:`._autopilot` (Raft voter choice) and
:mod:`._translate` (state + members + containers -> the host's data plane).
"""

from ._agent import Agent
from ._dataplane import NEEDS
from ._local import AgentStartError
from ._members import JoinError

__all__ = ["NEEDS", "Agent", "AgentStartError", "JoinError"]

"""consensus: a pure Raft core, durable storage and a trio driver. Knows nothing of meshd."""

from ._config import RaftConfig
from ._core import RaftCore
from ._driver import Applied, NodeStatus, RaftNode, RoleChanged
from ._errors import (
    ConfChangeInProgress,
    NotLeader,
    ProposalDropped,
    RaftError,
    StorageCorrupt,
    Unavailable,
)
from ._messages import (
    Append,
    AppendResp,
    ConfChange,
    ConfOp,
    ConfState,
    DecodeError,
    Entry,
    EntryKind,
    HardState,
    Heartbeat,
    HeartbeatResp,
    InstallSnapshot,
    MatchReport,
    Message,
    Propose,
    ReadIndex,
    ReadIndexResp,
    RelayAppend,
    RelayHeartbeat,
    RelaySnapshot,
    SnapshotResp,
    TimeoutNow,
    Vote,
    VoteResp,
    decode,
    encode,
)
from ._ready import Action, Advance, AnswerReads, Apply, Persist, Report, Send, plan_ready
from ._relay import RelayTree, relay_tree
from ._sessions import SessionExpired, StateMachine, decode_command, encode_command
from ._storage import Recovery, Storage
from ._transport import MemoryNetwork, MemoryTransport, Transport
from ._types import CoreStatus, PeerStatus, ReadState, Ready, Role, Snapshot, SoftState

__all__ = [
    "Action", "Advance", "AnswerReads", "Apply", "Persist", "Report", "Send", "plan_ready",
    "Applied", "MemoryNetwork", "MemoryTransport", "NodeStatus", "RaftNode", "Recovery",
    "RoleChanged", "RelayTree", "relay_tree", "Storage", "Transport", "decode_command", "encode_command",
    "Append", "AppendResp", "ConfChange", "ConfChangeInProgress", "ConfOp", "ConfState",
    "CoreStatus", "DecodeError", "Entry", "EntryKind", "HardState", "Heartbeat",
    "HeartbeatResp", "InstallSnapshot", "MatchReport", "Message", "NotLeader", "PeerStatus", "Propose",
    "ProposalDropped", "RaftConfig", "RaftCore", "RaftError", "ReadIndex", "ReadIndexResp",
    "RelayAppend", "RelayHeartbeat", "RelaySnapshot",
    "ReadState", "Ready", "Role", "SessionExpired", "Snapshot", "SnapshotResp", "SoftState",
    "StateMachine", "StorageCorrupt", "TimeoutNow", "Unavailable", "Vote", "VoteResp",
    "decode", "encode",
]

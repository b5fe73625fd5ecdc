"""meshd.state: the replicated network state machine (pure, deterministic).

Plug :class:`NetworkState` into the Raft log (``apply(index, bytes) -> bytes``,
``snapshot() -> bytes``, ``restore(bytes)``), or drive it with typed commands
through :meth:`NetworkState.execute`.  See docs/state.md.
"""

from ._bitvec import BitVector
from ._codec import decode_command, decode_result, encode_command, encode_result
from ._commands import (
    COMMAND_TYPES,
    AddPolicy,
    Command,
    CommandError,
    Connect,
    Connected,
    CreateNetwork,
    DeleteNetwork,
    Disconnect,
    Disconnected,
    ErrorCode,
    HostMarked,
    HostRemoved,
    MarkHostStale,
    Moved,
    MoveEndpoint,
    NetworkCreated,
    NetworkDeleted,
    NetworkUpdated,
    PolicyAdded,
    PolicyRemoved,
    PublishService,
    QosUpdated,
    RemoveHost,
    RemovePolicy,
    Result,
    ServiceHealthSet,
    ServicePublished,
    ServiceUnpublished,
    SetQos,
    SetServiceHealth,
    UnpublishService,
    UpdateNetwork,
)
from ._machine import NetworkState, replay
from ._precheck import precheck
from ._svccmds import check_service_name
from ._types import (
    DEFAULT_LATENCY_MS,
    DHCP_MAC_PREFIX,
    MAC_PREFIX,
    MIN_DEFAULT_BURST_BYTES,
    NO_QOS,
    VNI_MAX,
    VNI_MIN,
    Change,
    ChangeKind,
    ChangeSet,
    Endpoint,
    Mode,
    Network,
    NetworkInfo,
    Policy,
    PolicyKind,
    Qos,
    ServiceEntry,
    StateStatus,
    default_burst_bytes,
    dhcp_mac,
    qos_with_defaults,
)
from ._validate import BURST_MAX_BYTES, LATENCY_MAX_MS, MTU_MAX, MTU_MIN, RATE_MAX_KBIT

__all__ = [
    "AddPolicy", "BURST_MAX_BYTES", "DEFAULT_LATENCY_MS", "MIN_DEFAULT_BURST_BYTES", "default_burst_bytes",
    "qos_with_defaults", "BitVector", "COMMAND_TYPES", "Change", "ChangeKind", "ChangeSet", "Command",
    "LATENCY_MAX_MS", "MTU_MAX", "MTU_MIN", "RATE_MAX_KBIT",
    "CommandError", "Connect", "Connected", "CreateNetwork", "DeleteNetwork", "Disconnect",
    "Disconnected", "Endpoint", "ErrorCode", "HostMarked", "HostRemoved", "MAC_PREFIX",
    "DHCP_MAC_PREFIX", "dhcp_mac",
    "MarkHostStale", "Mode", "MoveEndpoint", "Moved", "NO_QOS", "Network", "NetworkCreated",
    "NetworkDeleted", "NetworkInfo", "NetworkState", "NetworkUpdated", "Policy", "PolicyAdded",
    "PolicyKind", "PolicyRemoved", "Qos", "QosUpdated", "RemoveHost", "RemovePolicy", "Result",
    "SetQos", "StateStatus", "UpdateNetwork", "VNI_MAX", "VNI_MIN", "decode_command",
    "decode_result", "encode_command", "encode_result", "precheck", "replay",
    "PublishService", "UnpublishService", "SetServiceHealth", "ServicePublished", "ServiceUnpublished",
    "ServiceHealthSet", "ServiceEntry", "check_service_name",
]  # fmt: skip

"""meshd.transport: trio over ZeroMQ, CURVE from the cluster secret, ZAP in trio.

Public API:

* :class:`TrioSocket` — async send/receive on a non-blocking zmq socket;
* :class:`ZmqHost` — a context with its ZAP handler; makes every socket with
  the inter-host rules (LINGER 0, bounded HWMs, IMMEDIATE dialers, CURVE);
* :class:`Mesh` — datagram-like ROUTER/DEALER messaging between hosts;
  :class:`PeerTransport` — the same addressed by node id (for ``consensus``);
* :class:`ClusterKeys`, :func:`new_secret`, :func:`read_secret`, ... — keys.
"""

from ._config import TransportConfig
from ._host import CLUSTER_DOMAIN, HostStatus, ZmqHost, bound_endpoint
from ._mesh import Mesh, MeshStats, PeerTransport
from ._security import (
    ClientKey,
    ClusterKeys,
    KeyPair,
    SecretError,
    format_client_key,
    format_secret,
    load_client_keys,
    new_secret,
    parse_client_key,
    parse_secret,
    read_client_key,
    read_secret,
    write_private,
)
from ._socket import TrioSocket
from ._zap import API_DOMAIN, SecurityStats, ZapHandlerFailed

__all__ = [
    "ZapHandlerFailed",
    "API_DOMAIN", "CLUSTER_DOMAIN", "ClientKey", "ClusterKeys", "HostStatus", "KeyPair", "Mesh", "MeshStats",
    "PeerTransport",
    "SecretError", "SecurityStats", "TrioSocket", "ZmqHost", "bound_endpoint", "format_client_key",
    "format_secret", "load_client_keys", "new_secret", "parse_client_key", "parse_secret",
    "TransportConfig", "read_client_key", "read_secret", "write_private",
]

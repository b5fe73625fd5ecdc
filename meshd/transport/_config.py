"""TransportConfig: bounds of every inter-host socket (nested in meshd.config.Config)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class TransportConfig:
    """Bounds of every inter-host ZeroMQ socket, so a dead peer cannot grow memory."""

    #: Messages queued per peer for sending before new ones are dropped.
    #: Memory held for a dead peer is at most this times the message size.
    send_hwm_msgs: int = 1000
    #: Messages queued per socket on the receive side.
    recv_hwm_msgs: int = 1000
    #: First reconnect delay to a peer that went away, milliseconds.
    reconnect_ivl_ms: int = 100
    #: Reconnect backoff cap, milliseconds (ZeroMQ doubles up to this).  A
    #: peer back from a partition is reached within about this plus
    #: connect_timeout_ms; each attempt at an unreachable peer costs one SYN.
    reconnect_ivl_max_ms: int = 500
    #: A connection attempt unanswered this long is abandoned and retried,
    #: milliseconds (the kernel's own SYN retries back off to a minute).
    connect_timeout_ms: int = 500
    #: A connection whose sent data stays unacknowledged this long is dropped
    #: with every frame queued on it, milliseconds (TCP_USER_TIMEOUT, set via
    #: ZMQ_TCP_MAXRT).  A frame is thus delivered within about this long or
    #: never, as a datagram would be: without it, what was queued for a peer
    #: behind a partition arrives in a burst after the heal, at the next TCP
    #: retransmission (up to ~13 s after a 15 s cut).
    tcp_user_timeout_ms: int = 1000
    #: Largest inbound message accepted; bigger frames are dropped by ZeroMQ
    #: itself (ZMQ_MAXMSGSIZE) and the connection is reset.
    max_message_bytes: int = 16 << 20
    #: TCP keepalive on accepted connections: idle time before the first
    #: probe, seconds. A peer whose machine died sends no RST; keepalive frees
    #: its half-open connection after idle + interval x probes (80 s by
    #: default). The gossip and Raft listeners only receive, so
    #: tcp_user_timeout_ms is not set on them: with it the kernel resets an
    #: idle connection when a single probe goes unanswered, and a busy
    #: 200-host lab lost thousands of connections that way (docs/scale.md).
    #: Dialled connections have no keepalive: what they send falls under
    #: tcp_user_timeout_ms, which notices a dead peer within a second.
    tcp_keepalive_idle_s: int = 30
    #: Seconds between unanswered keepalive probes (see tcp_keepalive_idle_s).
    tcp_keepalive_interval_s: int = 10
    #: Unanswered keepalive probes before the connection is dropped.
    tcp_keepalive_probes: int = 5
    #: ZeroMQ sockets one host may hold at once (ZMQ_MAX_SOCKETS of its
    #: context). Each mesh (gossip, Raft) keeps one DEALER per peer it talks
    #: to, up to 1,024 each, plus the listeners, their monitors and the API's:
    #: ZeroMQ's default of 1,023 runs out at about 500 hosts (a Raft leader
    #: dials every member). Each socket uses about two file descriptors;
    #: deploy/meshd.service sets LimitNOFILE=65536.
    max_sockets: int = 4096
    #: Connections a listener's kernel queue holds until ZeroMQ accepts them
    #: (ZMQ_BACKLOG; the kernel caps it at net.core.somaxconn). Every host
    #: dials every other in two meshes, so a host is dialled about 2 × hosts
    #: times when a cluster starts. ZeroMQ's default, 100, overflowed in a
    #: 150-agent join: a busy host accepted late, the kernel dropped the new
    #: connections (3,303 listen overflows at one host in 13 minutes) and
    #: each dialler gave up after connect_timeout_ms and dialled again (7,312
    #: connection attempts from that host for its 298 connections).
    listen_backlog: int = 4096

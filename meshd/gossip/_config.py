"""GossipConfig: SWIM/Lifeguard timing, default beside its doc."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True, kw_only=True)
class GossipConfig:
    """Timing of the SWIM failure detector and dissemination.

    Defaults are hashicorp/memberlist's DefaultLANConfig (probe 1 s, timeout
    500 ms, suspicion multiplier 4, gossip 200 ms to 3 members, push-pull 30 s)
    plus Serf-style reconnection to failed members so partitions heal alone
    (here a ping every probe interval rather than a push-pull every 30 s).
    """

    #: One member is probed every protocol period, seconds.  Shorter detects
    #: failures sooner at the cost of more probe traffic (2 messages/period).
    probe_interval_s: float = 1.0
    #: A direct probe with no ack after this long triggers indirect probes,
    #: seconds.  Must be smaller than probe_interval_s.
    probe_timeout_s: float = 0.5
    #: Members asked to probe indirectly when a direct probe times out (k).
    indirect_checks: int = 3
    #: Minimum suspicion timeout = suspicion_mult * max(1, log10(n)) *
    #: probe_interval_s.  Larger tolerates slower refutation, detects later.
    suspicion_mult: int = 4
    #: Lifeguard: a suspicion starts at suspicion_max_timeout_mult times the
    #: minimum and shrinks to it as independent confirmations arrive.
    suspicion_max_timeout_mult: int = 6
    #: Each update is piggybacked retransmit_mult * ceil(log10(n + 1)) times.
    retransmit_mult: int = 4
    #: Queued updates are gossiped every gossip_interval_s ...
    gossip_interval_s: float = 0.2
    #: ... to this many random members.
    gossip_nodes: int = 3
    #: Most updates piggybacked on one message.
    piggyback_max: int = 16
    #: Full-state push-pull with one random member, seconds (scaled up by
    #: ceil(log2(n / 32)) + 1 above 32 members, as memberlist does).
    push_pull_interval_s: float = 30.0
    #: Left members are forgotten after this long, seconds.
    dead_reap_s: float = 30.0
    #: One random failed member is pinged this often, seconds; one that
    #: answers (or speaks first) gets a full-state push-pull, so a healed
    #: partition merges back with no operator action.  A ping to a member
    #: that cannot be reached is not even sent over TCP (IMMEDIATE).
    reconnect_interval_s: float = 1.0
    #: Failed members are retried, then forgotten, after this long, seconds
    #: (bounds the member table; Serf keeps them 24 h).
    reconnect_timeout_s: float = 3600.0
    #: Lifeguard local health: probe timing stretches up to this many times
    #: when this node misses acks or has to refute.
    awareness_max_multiplier: int = 8
    #: A graceful leave waits this long for every member to confirm, seconds.
    leave_timeout_s: float = 2.0

    @classmethod
    def lan(cls) -> GossipConfig:
        """memberlist's LAN defaults (probe 1 s, timeout 500 ms, gossip 200 ms to 3)."""
        return cls()

    @classmethod
    def local(cls) -> GossipConfig:
        """Fast timing for tests, the lab and a quiet LAN: failures detected in ~2 s at 50 members."""
        return cls(
            probe_interval_s=0.2,
            probe_timeout_s=0.1,
            gossip_interval_s=0.05,
            push_pull_interval_s=5.0,
            dead_reap_s=10.0,
            reconnect_interval_s=0.2,
            reconnect_timeout_s=300.0,
            leave_timeout_s=1.0,
        )

    def problems(self, section: str = "gossip") -> list[str]:
        """Every invalid setting, each message naming the field, its value and the fix."""
        out: list[str] = []
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (int, float)) and value <= 0:
                out.append(f"{section}.{f.name} ({value}) must be greater than 0; set a positive value")
        if self.probe_timeout_s >= self.probe_interval_s:
            out.append(
                f"{section}.probe_timeout_s ({self.probe_timeout_s}) must be smaller than "
                f"{section}.probe_interval_s ({self.probe_interval_s}); lower the timeout "
                f"or lengthen the interval"
            )
        if self.suspicion_mult < 2:
            out.append(
                f"{section}.suspicion_mult ({self.suspicion_mult}) must be at least 2 so a "
                f"suspected member has time to refute; raise it"
            )
        if self.reconnect_timeout_s < self.dead_reap_s:
            out.append(
                f"{section}.reconnect_timeout_s ({self.reconnect_timeout_s}) must be at least "
                f"{section}.dead_reap_s ({self.dead_reap_s}); raise the reconnect timeout"
            )
        return out

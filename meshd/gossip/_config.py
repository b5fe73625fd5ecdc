"""GossipConfig: SWIM/Lifeguard timing, default beside its doc."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True, kw_only=True)
class GossipConfig:
    """Timing of the SWIM failure detector and dissemination.

    Defaults are hashicorp/memberlist's DefaultLANConfig.
    """

    #: One member is probed every protocol period, seconds.
    probe_interval_s: float = 1.0
    #: A direct probe with no ack after this long triggers indirect probes,
    #: seconds.  Must be smaller than probe_interval_s.
    probe_timeout_s: float = 0.5
    #: Members asked to probe indirectly when a direct probe times out.
    indirect_checks: int = 3
    #: Suspicion timeout = suspicion_mult * log10(max(1, n)) * probe_interval_s
    #: (Lifeguard shrinks it from suspicion_max_timeout_mult times that as
    #: independent confirmations arrive).
    suspicion_mult: int = 4
    #: Upper bound of the dynamic suspicion timeout, as a multiple of the base.
    suspicion_max_timeout_mult: int = 6
    #: Retransmit limit of each update = retransmit_mult * ceil(log10(n + 1)).
    retransmit_mult: int = 4
    #: Piggyback gossip is sent every gossip_interval_s to gossip_nodes members.
    gossip_interval_s: float = 0.2
    #: Random members each gossip round goes to.
    gossip_nodes: int = 3
    #: Full-state push-pull exchange with one random member, seconds.
    push_pull_interval_s: float = 30.0
    #: Dead and left members are forgotten after this long, seconds.
    dead_reap_s: float = 30.0
    #: Lifeguard local health multiplier cap (probe timing stretches up to
    #: (awareness_max_multiplier + 1) times when this node misses acks).
    awareness_max_multiplier: int = 8

    @classmethod
    def lan(cls) -> "GossipConfig":
        """memberlist's LAN defaults (probe 1 s, timeout 500 ms, gossip 200 ms to 3)."""
        return cls()

    @classmethod
    def local(cls) -> "GossipConfig":
        """Fast timing for tests and a lab on one machine."""
        return cls(
            probe_interval_s=0.2,
            probe_timeout_s=0.1,
            gossip_interval_s=0.05,
            push_pull_interval_s=5.0,
            dead_reap_s=10.0,
        )

    def problems(self, section: str = "gossip") -> list[str]:
        """Every invalid setting, each message naming the field and the fix."""
        out: list[str] = []
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (int, float)) and value <= 0:
                out.append(f"{section}.{f.name} ({value}) must be greater than 0")
        if self.probe_timeout_s >= self.probe_interval_s:
            out.append(
                f"{section}.probe_timeout_s ({self.probe_timeout_s}) must be smaller than "
                f"{section}.probe_interval_s ({self.probe_interval_s}); lower the timeout "
                f"or lengthen the interval"
            )
        return out

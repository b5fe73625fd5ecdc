"""RaftConfig: every tunable of the Raft core and driver, default beside its doc."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True, kw_only=True)
class RaftConfig:
    """Timing and sizing of one Raft node.

    Ticks are the core's unit of time; the driver turns ``tick_interval_s``
    of wall clock into one tick, so the core itself never reads a clock.
    """

    #: Wall-clock length of one tick, seconds.  Election and heartbeat
    #: timeouts below are counted in ticks.
    tick_interval_s: float = 0.1
    #: A follower that hears no leader for a random time in
    #: [election_ticks, 2*election_ticks) starts a (pre-)election.  Larger
    #: means fewer spurious elections on a slow network, slower failover.
    election_ticks: int = 10
    #: The leader sends a heartbeat (empty AppendEntries) every this many ticks.
    #: Must be well below election_ticks (etcd: "election tick must be
    #: greater than heartbeat tick").
    heartbeat_ticks: int = 1
    #: The leader heartbeats a learner (and a relay its children) every this
    #: many ticks.  Learners do not vote, and new entries and commit indexes
    #: reach them at once without a heartbeat, so this only bounds how long a
    #: restarted learner waits to learn the leader; it sets most of an idle
    #: learner's Raft messages (two per heartbeat) and a relay's (two per
    #: child per heartbeat).  At least heartbeat_ticks.
    learner_heartbeat_ticks: int = 10
    #: Most entries in one AppendEntries message.
    max_entries_per_msg: int = 512
    #: Most bytes of entry data in one AppendEntries message (at least one
    #: entry is always sent).
    max_append_bytes: int = 1 << 20
    #: Most AppendEntries in flight to one follower before the leader waits
    #: for acks (pipelining bound).
    max_inflight_msgs: int = 64
    #: Take a snapshot and compact the log after this many applied entries.
    snapshot_every_entries: int = 100_000
    #: Entries kept behind a snapshot so a slightly lagging follower is sent
    #: entries rather than the whole snapshot.
    snapshot_trailing_entries: int = 5_000
    #: Size of one InstallSnapshot chunk, bytes.
    snapshot_chunk_bytes: int = 1 << 20
    #: Client sessions remembered for exactly-once commands; the least
    #: recently used is forgotten beyond this (its retries then fail clearly).
    max_sessions: int = 10_000
    #: How long a proposal waits for its result before ``Unavailable``, seconds.
    propose_timeout_s: float = 5.0
    #: Relay tree fan-out (docs/consensus.md, "Relay tree"): the leader sends
    #: to every voter and to at most this many learners; every other learner
    #: gets the committed log from a parent learner, so the leader sends each
    #: entry at most (voters - 1 + relay_fanout) times.  0 turns relaying off
    #: (the leader sends to every learner).  All members must agree on it.
    relay_fanout: int = 16
    #: A relayed learner reports its commit index to the leader every this
    #: many ticks (what the leader's status shows as its match); learners
    #: report at different ticks, so the leader receives about
    #: learners / relay_report_ticks reports per tick.
    relay_report_ticks: int = 50
    #: Start a node's election clock almost expired (etcd's
    #: ``--initial-election-tick-advance``): the first election after a start
    #: comes after 1..election_ticks ticks instead of election_ticks..2x, which
    #: is what a cold restart of the whole cluster waits for.  Safe in a live
    #: cluster: a member that hears its leader ignores (pre-)votes (leader lease),
    #: and a restarted node hears the leader's next heartbeat within a tick.
    initial_election_advance: bool = True

    @classmethod
    def lan(cls) -> RaftConfig:
        """Defaults for hosts on one LAN (etcd-like 100 ms tick, 1 s election)."""
        return cls()

    @classmethod
    def local(cls) -> RaftConfig:
        """Fast timing for tests and the lab on one machine."""
        return cls(tick_interval_s=0.02, election_ticks=10, propose_timeout_s=2.0)

    def problems(self, section: str = "raft") -> list[str]:
        """Every invalid setting, each message naming the field and the fix."""
        out: list[str] = []
        may_be_zero = {"snapshot_trailing_entries", "relay_fanout"}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool):
                continue
            if f.name in may_be_zero:
                if value < 0:
                    out.append(f"{section}.{f.name} ({value}) must be 0 or greater; set 0 or a positive value")
                continue
            if isinstance(value, (int, float)) and value <= 0:
                out.append(f"{section}.{f.name} ({value}) must be greater than 0; set a positive value")
        for name in ("snapshot_chunk_bytes", "max_append_bytes"):
            value = getattr(self, name)
            if value > 16 << 20:
                out.append(
                    f"{section}.{name} ({value}) exceeds the 16 MiB transport frame limit; "
                    "lower it to at most 16777216"
                )
        if 0 < self.learner_heartbeat_ticks < self.heartbeat_ticks:  # 0 is reported above
            out.append(
                f"{section}.learner_heartbeat_ticks ({self.learner_heartbeat_ticks}) must be at least "
                f"{section}.heartbeat_ticks ({self.heartbeat_ticks}); raise learner_heartbeat_ticks"
            )
        if self.heartbeat_ticks >= self.election_ticks:
            out.append(
                f"{section}.heartbeat_ticks ({self.heartbeat_ticks}) must be smaller than "
                f"{section}.election_ticks ({self.election_ticks}); raise election_ticks"
            )
        return out

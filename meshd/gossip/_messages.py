"""Gossip wire messages (tags 1..63 of meshd.wire) and member metadata.

Every message names its sender (``src``) and the gossip address replies go to
(``src_addr``): the transport is one-way, so a reply is a new message sent to
that address, never a response on the same socket.

Membership changes travel as :class:`Update` records, piggybacked on every
probe, ack, nack and gossip message, and as whole tables in push-pull.

ONLY APPEND to the tags below: they are part of the protocol.
"""

from __future__ import annotations

import enum

from meshd import wire

#: Most bytes of text a member's metadata may carry (sum of every string).
META_MAX_BYTES = 1024
#: Most labels a member may carry.
META_MAX_LABELS = 32
#: Most updates one message may piggyback (decoder bound, not a tuning knob).
MAX_UPDATES_PER_MESSAGE = 4096
#: Most member records one push-pull may carry (the largest cluster supported).
MAX_MEMBERS_PER_PUSH_PULL = 65536


class State(enum.IntEnum):
    """What the cluster believes about a member."""

    ALIVE = 1
    SUSPECT = 2
    DEAD = 3
    LEFT = 4


class Meta(wire.Record, kw_only=True, frozen=True):
    """A member's metadata, bounded to META_MAX_BYTES of text.

    It changes only with a fresh incarnation (``Gossip.update_meta``), so
    every member can tell the newest version.  New fields are appended with a
    default, so an older peer's shorter record still decodes.
    """

    vtep: str = ""
    raft_addr: str = ""
    api_addr: str = ""
    version: str = ""
    role: str = ""
    labels: dict[str, str] = {}
    underlay_mtu: int = 0  #: the member's underlay device MTU (0: not said)
    #: the kernel link kinds the member can create (``netops.probe_link_kinds``; empty: not said)
    dataplane: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.labels) > META_MAX_LABELS:
            raise ValueError(
                f"member metadata has {len(self.labels)} labels; at most "
                f"{META_MAX_LABELS} are allowed, drop some labels"
            )
        if len(self.dataplane) > META_MAX_LABELS:
            raise ValueError(
                f"member metadata names {len(self.dataplane)} data-plane link kinds; at most "
                f"{META_MAX_LABELS} are allowed"
            )
        size = self.size_bytes()
        if size > META_MAX_BYTES:
            raise ValueError(
                f"member metadata is {size} bytes of text; at most {META_MAX_BYTES} "
                f"are allowed, shorten the labels or addresses"
            )

    def size_bytes(self) -> int:
        """Bytes of text in every field and label (the bounded quantity)."""
        texts = [self.vtep, self.raft_addr, self.api_addr, self.version, self.role, *self.dataplane]
        texts += list(self.labels) + list(self.labels.values())
        return sum(len(t.encode()) for t in texts)


class Update(wire.Record, kw_only=True, frozen=True):
    """One membership fact: ``name`` is ``state`` at ``incarnation``.

    ``by`` is the member that asserts it (the suspecter for SUSPECT, the
    declarer for DEAD, the member itself for ALIVE and LEFT).  ALIVE records
    carry the address and metadata; the others leave ``meta`` None.
    """

    name: str
    state: State
    incarnation: int
    by: str
    addr: str = ""
    meta: Meta | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a membership update must name a member")
        if self.incarnation < 0:
            raise ValueError(f"incarnation {self.incarnation} of {self.name} is negative")


class _GossipMessage(wire.Message, frozen=True):
    """A gossip message: its ``updates`` (or ``members``) list is bounded,
    whether it is built here or decoded from a peer."""

    def __post_init__(self) -> None:
        updates = getattr(self, "updates", ())
        if len(updates) > MAX_UPDATES_PER_MESSAGE:
            raise ValueError(f"{len(updates)} updates exceed {MAX_UPDATES_PER_MESSAGE}")
        members = getattr(self, "members", ())
        if len(members) > MAX_MEMBERS_PER_PUSH_PULL:
            raise ValueError(f"{len(members)} member records exceed {MAX_MEMBERS_PER_PUSH_PULL}")


@wire.message
class Ping(_GossipMessage, tag=1, kw_only=True, frozen=True):
    """Direct probe of ``target``; answered with :class:`Ack` of the same seq."""

    seq: int
    target: str
    src: str
    src_addr: str
    updates: tuple[Update, ...] = ()


@wire.message
class Ack(_GossipMessage, tag=2, kw_only=True, frozen=True):
    """Answer to a Ping (or, relayed, to an IndirectPing) from ``src``."""

    seq: int
    src: str
    src_addr: str
    updates: tuple[Update, ...] = ()


@wire.message
class IndirectPing(_GossipMessage, tag=3, kw_only=True, frozen=True):
    """Ask the receiver to probe ``target`` for ``src`` and relay the ack."""

    seq: int
    target: str
    target_addr: str
    src: str
    src_addr: str
    updates: tuple[Update, ...] = ()


@wire.message
class Nack(_GossipMessage, tag=4, kw_only=True, frozen=True):
    """Lifeguard: the relay got no ack from the target in time (the relay is alive)."""

    seq: int
    src: str
    src_addr: str
    updates: tuple[Update, ...] = ()


@wire.message
class Gossip(_GossipMessage, tag=5, kw_only=True, frozen=True):
    """Fan-out of queued updates to a few random members every gossip interval."""

    src: str
    src_addr: str
    updates: tuple[Update, ...] = ()


@wire.message
class PushPullReq(_GossipMessage, tag=6, kw_only=True, frozen=True):
    """Full state of the sender; the receiver merges it and replies with its own."""

    src: str
    src_addr: str
    join: bool
    members: tuple[Update, ...] = ()


@wire.message
class PushPullResp(_GossipMessage, tag=7, kw_only=True, frozen=True):
    """Full state of the responder to a PushPullReq."""

    src: str
    src_addr: str
    members: tuple[Update, ...] = ()


@wire.message
class LeaveAck(_GossipMessage, tag=8, kw_only=True, frozen=True):
    """Confirms to a leaving member that its LEFT record was applied here."""

    src: str
    src_addr: str
    incarnation: int


#: Every gossip message class, by tag (for the driver's decoder check and tests).
MESSAGES: tuple[type, ...] = (Ping, Ack, IndirectPing, Nack, Gossip, PushPullReq, PushPullResp, LeaveAck)
#: The typed decoder of gossip frames (anything else is a DecodeError).
DECODER: wire.Decoder[Ping | Ack | IndirectPing | Nack | Gossip | PushPullReq | PushPullResp | LeaveAck] = wire.Decoder(
    MESSAGES, what="gossip message"
)

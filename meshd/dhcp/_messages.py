"""The DHCP messages the client core reads and writes, as plain values (no wire format here).

Only the fields a client uses are kept; :mod:`._codec` turns them into BOOTP
bytes and back. Addresses are dotted-quad strings, the MAC ``aa:bb:cc:dd:ee:ff``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

BROADCAST = "255.255.255.255"
ANY = "0.0.0.0"


class Kind(enum.IntEnum):
    """DHCP message type (option 53, RFC 2132 9.6)."""

    DISCOVER = 1
    OFFER = 2
    REQUEST = 3
    DECLINE = 4
    ACK = 5
    NAK = 6
    RELEASE = 7


@dataclass(frozen=True, slots=True)
class DhcpMessage:
    """One DHCP message, client or server side.

    ``broadcast`` is the BOOTP broadcast flag: a client without an address
    sets it so that the server's answer comes as a broadcast frame.
    """

    kind: Kind
    xid: int
    mac: str
    ciaddr: str = ANY
    yiaddr: str = ANY
    server_id: str | None = None
    requested_ip: str | None = None
    lease_s: int | None = None
    t1_s: int | None = None
    t2_s: int | None = None
    prefix_len: int | None = None
    router: str | None = None
    broadcast: bool = False
    message: str = ""  #: option 56 (a NAK's reason)


@dataclass(frozen=True, slots=True)
class Send:
    """A message to send: to the limited broadcast address, or unicast to a server."""

    msg: DhcpMessage
    to: str = BROADCAST

"""A DHCP client for dhcp networks: a pure core (``_core``), scapy's codec, a trio driver.

See docs/dhcp.md. The core (:class:`DhcpClient`) does no I/O; :func:`acquire`
and :func:`release` and :func:`drive` run it on a UDP socket inside a
container's network namespace.
"""

from meshd.dhcp._core import Bound, DhcpClient, DhcpTiming, Event, GaveUp, Lease, Lost, Outbox, State
from meshd.dhcp._driver import COUNTERS, DhcpError, DhcpSocket, acquire, drive, release
from meshd.dhcp._messages import BROADCAST, DhcpMessage, Kind, Send

__all__ = [
    "BROADCAST", "COUNTERS", "Bound", "DhcpClient", "DhcpError", "DhcpMessage", "DhcpSocket", "DhcpTiming", "Event",
    "GaveUp", "Kind", "Lease", "Lost", "Outbox", "Send", "State", "acquire", "drive", "release",
]

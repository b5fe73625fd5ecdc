"""meshd.dns: DNS for the containers of each tenant (docs/dns.md).

* :mod:`~meshd.dns._core` (pure): a tenant's :class:`View` from the state,
  and :func:`answer` for one query packet (dnslib's codec);
* :mod:`~meshd.dns._server`: the trio UDP server in tenant router namespaces,
  forwarding with bounds.
"""

from ._core import EMPTY_VIEW, MAX_UDP_BYTES, Outcome, Target, View, answer, build_view
from ._server import DNS_PORT, DnsServer, DnsStatus, host_resolvers, open_socket, resolv_conf

__all__ = [
    "DNS_PORT", "EMPTY_VIEW", "MAX_UDP_BYTES", "DnsServer", "DnsStatus", "Outcome", "Target", "View", "answer",
    "build_view", "host_resolvers", "open_socket", "resolv_conf",
]  # fmt: skip

"""What this kernel can build: the link kinds the network models need, probed through netlink.

A probe asks the kernel to create a link of each kind with MTU 1, which no
link accepts. The kernel looks the kind up first, loading its module if it
can; a kind it does not know is refused with EOPNOTSUPP ("Unknown device
type"), a kind it knows fails validation (EINVAL). So the probe tells a
missing feature from a present one — built in or loadable — and never leaves
a device behind. It needs CAP_NET_ADMIN, as the agent does.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable

from netops import _nl
from netops._errors import NetopsError
from netops._links import IFLA_IFNAME, IFLA_MTU, del_link, ifinfo, linkinfo
from netops._nl import CREATE, Msg, cstr, u32

#: the link kinds probed, and the kernel feature (module) each one is
LINK_KINDS: dict[str, str] = {
    "vxlan": "VXLAN (module vxlan)",
    "bridge": "Linux bridges (module bridge)",
    "veth": "veth pairs (module veth)",
    "macvlan": "macvlan (module macvlan)",
    "vlan": "802.1Q VLANs (module 8021q)",
    "ipvlan": "ipvlan (module ipvlan)",
}

_PROBE_NAME = "meshd-probe"


def probe_link_kinds(kinds: Iterable[str] = LINK_KINDS) -> frozenset[str]:
    """The kinds of ``kinds`` this kernel can create, probed in the calling thread's netns.

    Raises:
        NetopsError: the kernel refused the probe for another reason (EPERM: not root).
    """
    found = set()
    with _nl.NlSocket() as nl:
        for kind in kinds:
            body = ifinfo() + cstr(IFLA_IFNAME, _PROBE_NAME) + u32(IFLA_MTU, 1) + linkinfo(kind)
            failures = nl.batch([Msg(_nl.RTM_NEWLINK, CREATE, body, f"probe link kind {kind!r} with", _PROBE_NAME)])
            if not failures:  # an MTU of 1 was taken after all: it exists, so remove it again
                nl.batch([del_link(0, _PROBE_NAME)])
                found.add(kind)
                continue
            code = failures[0].errno
            if code in (errno.EPERM, errno.EACCES):
                raise NetopsError(f"probe link kind {kind!r} with", _PROBE_NAME, code,
                                  "creating links needs CAP_NET_ADMIN: run the agent as root")
            if code != errno.EOPNOTSUPP:
                found.add(kind)
    return frozenset(found)


def describe_link_kind(kind: str) -> str:
    """The kernel feature behind a link kind, for messages: ``802.1Q VLANs (module 8021q)``."""
    return LINK_KINDS.get(kind, f"{kind} links")


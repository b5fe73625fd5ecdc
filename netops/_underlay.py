"""Find the underlay device of a VTEP address and the container MTU it allows."""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct
import subprocess
from dataclasses import dataclass, field

from netops import _nl
from netops._addr import IFA_ADDRESS, IFA_LOCAL, ifaddrmsg
from netops._errors import NetopsError
from netops._links import ifinfo, parse_link
from netops._nl import InNetns
from netops._ops import VXLAN_OVERHEAD


@dataclass(frozen=True, slots=True)
class Underlay:
    ip: str
    dev: str
    mtu: int
    prefixlen: int = 32
    #: the L2 segment the address is on (the subnet of its address on ``dev``), as a CIDR;
    #: computed once (every reconcile pass reads it)
    subnet: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "subnet", str(ipaddress.ip_network(f"{self.ip}/{self.prefixlen}", strict=False)))

    @property
    def overlay_mtu(self) -> int:
        """Container MTU over VXLAN: underlay MTU − 50 (outer IPv4 20 + UDP 8 + VXLAN 8 + Ethernet 14)."""
        return self.mtu - VXLAN_OVERHEAD


def underlay_for(ip: str) -> Underlay:
    """The device holding ``ip`` in the calling thread's netns, and its MTU.

    Raises:
        NetopsError: no device has the address (wrong underlay_ip in the config?).
    """
    with _nl.NlSocket() as nl:
        for _kind, body in nl.dump(_nl.RTM_GETADDR, ifaddrmsg(_nl.AF_INET)):
            prefixlen, index = body[1], struct.unpack_from("=I", body, 4)[0]
            attrs = _nl.parse_attrs(body, 8)
            local = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
            if local is not None and socket.inet_ntoa(bytes(local)) == ip:
                answer = nl.get(_nl.RTM_GETLINK, ifinfo(index))
                if answer is None:
                    continue  # the device went away since the dump
                link = parse_link(answer)
                return Underlay(ip, link.name, link.mtu, prefixlen)
    raise NetopsError("find the underlay device of", ip, errno.EADDRNOTAVAIL,
                      "no interface has this address — check the configured underlay IP")


@dataclass(frozen=True, slots=True)
class MtuCheck:
    """Result of the tunnel MTU self-check towards one remote VTEP."""

    remote_ip: str
    mtu: int
    full_size_passes: bool
    one_more_fails: bool

    @property
    def ok(self) -> bool:
        return self.full_size_passes and self.one_more_fails


#: how long one don't-fragment ping may take, start to exit (it waits 1 s for the reply)
PING_DEADLINE_S = 10.0


def _df_ping(remote_ip: str, size: int) -> bool:
    """Whether a don't-fragment ping of ``size`` bytes is answered within 1 s.

    Raises:
        NetopsError: ``ping`` did not finish within :data:`PING_DEADLINE_S` (errno ETIMEDOUT: a
          starved machine; the answer is unknown, ask again later) or cannot be run (ENOENT: not
          installed; another errno: e.g. no process could be forked).
    """
    argv = ["ping", "-n", "-q", "-c1", "-W1", "-M", "do", "-s", str(size - 28), remote_ip]
    what = f"{remote_ip} ({size}-byte don't-fragment ping)"
    try:
        return subprocess.run(argv, capture_output=True, timeout=PING_DEADLINE_S).returncode == 0
    except subprocess.TimeoutExpired:
        raise NetopsError("check the path MTU to", what, errno.ETIMEDOUT,
                          f"ping did not finish within {PING_DEADLINE_S:g} s: the host is overloaded") from None
    except FileNotFoundError:
        raise NetopsError("check the path MTU to", what, errno.ENOENT,
                          "no `ping` on this host: install iputils-ping") from None
    except OSError as exc:
        raise NetopsError("check the path MTU to", what, exc.errno or 0) from None


def check_path_mtu(remote_ip: str, mtu: int, netns: str | None = None) -> MtuCheck:
    """Self-check of the underlay path a tunnel uses: a don't-fragment ping of
    exactly ``mtu`` bytes must pass and one of ``mtu + 1`` must fail.

    A failing full-size ping means VXLAN frames of the full overlay MTU would be
    dropped on the way (lower the overlay MTU or fix the underlay).

    Raises:
        NetopsError: a ping gave no answer either way (see :func:`_df_ping`; errno ETIMEDOUT when
          it is worth asking again).
    """
    if netns is None:
        return MtuCheck(remote_ip, mtu, _df_ping(remote_ip, mtu), not _df_ping(remote_ip, mtu + 1))
    with InNetns(netns):
        return check_path_mtu(remote_ip, mtu)

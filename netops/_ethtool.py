"""Transmit checksum offload of a device, through the legacy ethtool ioctl.

A VXLAN device offloads the inner packet's checksum to the layers below; on
some kernel/driver combinations (veth underlays, certain NICs, the bug
flannel and Calico work around) the checksum is never filled in and TCP
through the tunnel collapses to near zero while ping works. Turning tx
checksum offload off on the VXLAN device makes the kernel compute it in
software, at a small CPU cost. ``EnsureVxlan(tx_csum_offload=False)`` does that.
"""

from __future__ import annotations

import ctypes
import fcntl
import socket
import struct

from netops._errors import NetopsError

SIOCETHTOOL = 0x8946
ETHTOOL_GTXCSUM, ETHTOOL_STXCSUM = 0x16, 0x17


def _ioctl(dev: str, cmd: int, data: int) -> int:
    value = ctypes.create_string_buffer(struct.pack("=II", cmd, data))
    ifreq = struct.pack("16sP", dev.encode(), ctypes.addressof(value))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:  # bound to the thread's netns
        try:
            fcntl.ioctl(sock.fileno(), SIOCETHTOOL, ifreq)
        except OSError as exc:
            what = "read tx checksum offload of" if cmd == ETHTOOL_GTXCSUM else "set tx checksum offload of"
            raise NetopsError(what, dev, exc.errno or 0) from None
    return struct.unpack_from("=II", value.raw)[1]


def tx_csum_offload(dev: str) -> bool:
    """Whether ``dev`` offloads transmit checksums (calling thread's netns)."""
    return bool(_ioctl(dev, ETHTOOL_GTXCSUM, 0))


def set_tx_csum_offload(dev: str, on: bool) -> None:
    _ioctl(dev, ETHTOOL_STXCSUM, int(on))

"""Lab pieces that need neither root nor dockerd: names, the image's root filesystem."""

from __future__ import annotations

import io
import tarfile

import pytest

from tools.lab import Lab, LabError, unique_prefix
from tools.lab._docker import busybox_rootfs_tar, find_busybox
from tools.lab._net import host_index, lab_netns, make_host


def test_hosts_are_numbered_from_192_0_2_11() -> None:
    assert make_host("mlab", 1) == make_host("mlab", 1)
    h = make_host("mlab", 7)
    assert (h.name, h.netns, h.underlay_ip, h.underlay_dev) == ("h7", "mlab-h7", "192.0.2.17", "eth0")
    assert host_index("h12") == 12
    for bad in ("h0", "h", "x1", "h01", "mlab-h1"):
        with pytest.raises(LabError, match="is not h<N>"):
            host_index(bad)


def test_prefixes_are_validated_and_unique() -> None:
    for bad in ("", "1lab", "Mlab", "m-lab", "m_lab", "a" * 13):
        with pytest.raises(LabError, match="lab prefix .* is invalid: use 1-12 lowercase"):
            Lab(bad)
    prefixes = {unique_prefix() for _ in range(100)}
    assert len(prefixes) == 100 and all(Lab(p).prefix == p for p in prefixes)


def test_discovery_matches_only_this_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    names = ["mlab-ul", "mlab-h1", "mlab-h10", "mlab2-h1", "mlab-hx", "mlab-h1-x", "xmlab-h2", "nt1234"]
    monkeypatch.setattr("tools.lab._net.list_netns", lambda: sorted(names))
    assert lab_netns("mlab") == ["mlab-h1", "mlab-h10", "mlab-ul"]


def test_image_rootfs_is_busybox_with_applet_links() -> None:
    with tarfile.open(fileobj=io.BytesIO(busybox_rootfs_tar(find_busybox()))) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["bin/busybox"].isfile() and members["bin/busybox"].mode & 0o111
    for applet in ("bin/sh", "bin/sleep", "bin/ls"):
        assert members[applet].issym() and members[applet].linkname == "/bin/busybox"
    assert members["tmp"].isdir() and members["tmp"].mode == 0o1777

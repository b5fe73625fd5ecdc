"""The path-MTU check's ping: an answer that never comes, or a ping that cannot run, is a
NetopsError naming the remote and the fix, never a raw subprocess error."""

from __future__ import annotations

import errno

import pytest

import netops
from netops import _underlay


def test_a_ping_that_does_not_finish_in_time_is_an_etimedout_netops_error(monkeypatch) -> None:
    monkeypatch.setattr(_underlay, "PING_DEADLINE_S", 1e-6)
    with pytest.raises(netops.NetopsError) as info:
        netops.check_path_mtu("127.0.0.1", 1500)
    assert info.value.errno == errno.ETIMEDOUT
    assert str(info.value).startswith("cannot check the path MTU to 127.0.0.1 (1500-byte don't-fragment ping)")
    assert "host is overloaded" in str(info.value)


def test_no_ping_installed_is_an_enoent_netops_error_naming_the_package(monkeypatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(netops.NetopsError) as info:
        netops.check_path_mtu("127.0.0.1", 1500)
    assert info.value.errno == errno.ENOENT and "install iputils-ping" in str(info.value)


def test_loopback_carries_a_full_size_frame() -> None:
    """The real thing on this host's own loopback (MTU 65536): 1500 bytes pass, so do 1501."""
    check = netops.check_path_mtu("127.0.0.1", 1500)
    assert check.full_size_passes and not check.one_more_fails and not check.ok

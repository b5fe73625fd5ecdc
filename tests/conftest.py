"""Shared fixtures: the multi-host lab, and skip logic for the `root`/`docker` markers.

A test marked `root` needs root and network namespaces; one marked `docker`
needs a running dockerd. Such a test is skipped, with the reason, only when the
capability is really absent; under CI=true a missing capability is an error
instead, so CI can never pass by skipping them.

Fixtures:
    lab3             a 3-host lab (unique prefix), torn down after the test
    make_lab(hosts)  factory for more labs, each torn down after the test
    docker_available dockerd is reachable (skips / errors like the marker)
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Callable, Iterator

import pytest

from tools.lab import Lab, unique_prefix
from tools.lab import docker_available as _docker_up


@functools.cache
def _missing_root() -> str:
    if os.geteuid() != 0:
        return "needs root for network namespaces: run the tests as root"
    for tool, package in (("ip", "iproute2"), ("nft", "nftables")):
        if shutil.which(tool) is None:
            return f"needs {tool}: install {package} (tools/setup.sh does)"
    return ""


@functools.cache
def _missing_docker() -> str:
    return "" if _docker_up() else "needs a running dockerd: start it with tools/setup.sh"


def _require(reason: str) -> None:
    if not reason:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI=true: the capability must be present, not skipped)", pytrace=False)
    pytest.skip(reason)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("root"):
        _require(_missing_root())
    if item.get_closest_marker("docker"):
        _require(_missing_docker())


@pytest.fixture
def docker_available() -> bool:
    """Requires dockerd: skips (errors under CI) when it is not running."""
    _require(_missing_docker())
    return True


@pytest.fixture
def make_lab() -> Iterator[Callable[..., Lab]]:
    """Factory: `make_lab(hosts=3)` returns a Lab that is up; all are torn down after the test."""
    _require(_missing_root())
    labs: list[Lab] = []

    def make(hosts: int = 3) -> Lab:
        lab = Lab(unique_prefix())
        labs.append(lab)  # before up(): a half-made lab is torn down too
        lab.up(hosts)
        return lab

    try:
        yield make
    finally:
        errors = []
        for lab in labs:  # tear every lab down even if one fails
            try:
                lab.down()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


@pytest.fixture
def lab3(make_lab: Callable[..., Lab]) -> Lab:
    """A 3-host lab (h1..h3 at 192.0.2.11-13) with a unique prefix."""
    return make_lab(hosts=3)

"""Helpers for netops kernel tests: bare network namespaces as stand-in containers."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator

import pytest


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=60)


@pytest.fixture
def make_ns() -> Iterator[Callable[[], str]]:
    """Factory of bare network namespaces (stand-in containers); returns their /run/netns path."""
    made: list[str] = []

    def make() -> str:
        name = f"nt{uuid.uuid4().hex[:8]}"
        sh("ip", "netns", "add", name)
        made.append(name)
        return f"/run/netns/{name}"

    try:
        yield make
    finally:
        for name in made:
            sh("ip", "netns", "del", name, check=False)


def ns_name(path: str) -> str:
    return path.rsplit("/", 1)[1]

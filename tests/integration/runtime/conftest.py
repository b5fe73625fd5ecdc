"""Fixtures for the Docker integration tests: real containers from meshd-busybox, always removed."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.integration.runtime.runtime_helpers import Containers
from tools.lab import ensure_image


@pytest.fixture
def containers(docker_available: bool) -> Iterator[Containers]:
    import docker

    client = docker.from_env(timeout=60)
    ensure_image(client)
    made = Containers(client, f"mrt-{uuid.uuid4().hex[:8]}")
    try:
        yield made
    finally:
        made.remove_all()
        client.close()

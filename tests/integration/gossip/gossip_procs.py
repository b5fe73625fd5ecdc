"""Run ``python -m meshd.gossip`` agents as real processes and read their JSON events.

The process wrapper is the benchmark's (tools/bench/gossip.py ``Member``), so
tests and benchmark observe members the same way.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tools.bench.gossip import Member, _meshd_parse


def write_secret(path: Path) -> Path:
    from meshd.transport import format_secret, new_secret, write_private

    write_private(path, format_secret(new_secret()), force=True)
    return path


class Agent(Member):
    """One agent process with the local (fast) profile, CURVE from ``secret``.

    ``inside`` prefixes the command (e.g. ``lab.exec_argv(host)``: run it in a
    lab host's netns, where ``extra=["--bind", "tcp://<its address>:0"]``).
    """

    def __init__(self, name: str, secret: Path, *, join: list[str] = (), profile: str = "local",
                 extra: list[str] = (), inside: list[str] = ()) -> None:
        cmd = [*inside, sys.executable, "-m", "meshd.gossip", "--name", name,
               "--secret-file", str(secret), "--profile", profile, *extra]
        for addr in join:
            cmd += ["--join", addr]
        super().__init__(name, cmd, _meshd_parse)

    def wait_for(self, event: str, member: str | None = None, timeout_s: float = 20.0,
                 after: float = 0.0) -> dict[str, Any]:
        try:
            return super().wait_for(event, member, timeout_s=timeout_s, after=after)
        except TimeoutError as exc:
            raise AssertionError(str(exc)) from None

    @property
    def addr(self) -> str:
        return self.wait_for("ready", timeout_s=30.0)["addr"]

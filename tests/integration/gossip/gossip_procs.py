"""Run ``python -m meshd.gossip`` agents as real processes and read their JSON events."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any


def write_secret(path: Path) -> Path:
    from meshd.transport import format_secret, new_secret, write_private

    write_private(path, format_secret(new_secret()), force=True)
    return path


class Agent:
    """One agent process; ``lines`` fills from its stdout in a reader thread."""

    def __init__(self, name: str, secret: Path, *, join: list[str] = (), profile: str = "local",
                 extra: list[str] = ()) -> None:
        self.name = name
        cmd = [sys.executable, "-m", "meshd.gossip", "--name", name, "--secret-file", str(secret),
               "--profile", profile, *extra]
        for addr in join:
            cmd += ["--join", addr]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, bufsize=1)
        self.lines: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                item = json.loads(line)
            except ValueError:
                continue
            with self._lock:
                self.lines.append(item)

    def events(self, event: str | None = None, member: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [x for x in self.lines if (event is None or x["event"] == event)
                    and (member is None or x.get("member") == member)]

    def wait_for(self, event: str, member: str | None = None, timeout_s: float = 20.0,
                 after: float = 0.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = [x for x in self.events(event, member) if x["t"] >= after]
            if found:
                return found[0]
            if self.proc.poll() is not None and not found:
                time.sleep(0.1)
                found = [x for x in self.events(event, member) if x["t"] >= after]
                if found:
                    return found[0]
                raise AssertionError(f"{self.name} exited ({self.proc.returncode}) before "
                                     f"{event} {member}: {self.stderr_tail()}")
            time.sleep(0.02)
        raise AssertionError(f"{self.name}: no {event} {member or ''} within {timeout_s} s; "
                             f"saw {self.lines[-5:]}")

    @property
    def addr(self) -> str:
        return self.wait_for("ready", timeout_s=30.0)["addr"]

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stderr_tail(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return ""
        return self.proc.stderr.read()[-2000:]

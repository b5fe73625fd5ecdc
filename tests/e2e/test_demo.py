"""The README's main command: the demo runs to the end and its checks hold."""

import subprocess
import sys

import pytest

pytestmark = [pytest.mark.root, pytest.mark.docker]


def test_demo_runs_and_tears_down():
    out = subprocess.run([sys.executable, "-m", "tools.demo", "--once"], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    for fragment in ("web -> db 10.1.0.3: answers", "web -> other 10.1.0.30: blocked", "meshd top",
                     "role=leader", "tearing down"):
        assert fragment in out.stdout, fragment
    assert "mdemo-h1" not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout

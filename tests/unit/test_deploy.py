"""deploy/ stays in step with the CLI: the unit's and the image's commands parse; the script is valid bash."""

import json
import re
import shlex
import subprocess
from pathlib import Path

from meshd.cli import build_parser

DEPLOY = Path(__file__).parents[2] / "deploy"


def test_systemd_unit_command_parses():
    unit = (DEPLOY / "meshd.service").read_text()
    (exec_start,) = re.findall(r"^ExecStart=(.+)$", unit, re.M)
    argv = shlex.split(exec_start)
    assert argv[0].endswith("/meshd")
    args = build_parser().parse_args(argv[1:])
    assert args.command == "agent" and args.config == "/etc/meshd/meshd.toml"
    assert "KillSignal=SIGTERM" in unit  # the graceful leave


def test_container_image_command_parses():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", dockerfile, re.M).group(1))
    assert build_parser().parse_args(cmd).command == "agent"


def test_install_script_is_valid_bash_and_explains_itself():
    script = DEPLOY / "install.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    out = subprocess.run(["bash", str(script), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--secret" in out.stdout and "--join" in out.stdout

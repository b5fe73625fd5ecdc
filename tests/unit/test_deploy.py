"""deploy/ stays in step with the CLI and the docs: the unit's and the image's commands parse, the
unit's documentation is installed, the install script explains itself and refuses bad input with
its own words, and the image's build context is small."""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from meshd.cli import build_parser

ROOT = Path(__file__).parents[2]
DEPLOY = ROOT / "deploy"
INSTALL = DEPLOY / "install.sh"


def test_systemd_unit_command_parses():
    unit = (DEPLOY / "meshd.service").read_text()
    (exec_start,) = re.findall(r"^ExecStart=(.+)$", unit, re.M)
    argv = shlex.split(exec_start)
    assert argv[0].endswith("/meshd")
    args = build_parser().parse_args(argv[1:])
    assert args.command == "agent" and args.config == "/etc/meshd/meshd.toml"
    assert "KillSignal=SIGTERM" in unit


def test_the_units_documentation_is_installed_by_the_script():
    unit = (DEPLOY / "meshd.service").read_text()
    (doc,) = re.findall(r"^Documentation=file://(\S+)$", unit, re.M)
    path = Path(doc)
    assert path.parent == Path("/usr/share/doc/meshd") and (ROOT / "docs" / path.name).is_file()
    assert 'install -m 0644 "$SRC"/docs/*.md /usr/share/doc/meshd/' in INSTALL.read_text()


def test_container_image_command_parses():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", dockerfile, re.M).group(1))
    assert build_parser().parse_args(cmd).command == "agent"


def _install(*args: str, path: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **({"PATH": path} if path else {})}
    return subprocess.run(["/bin/bash", str(INSTALL), *args], capture_output=True, text=True, env=env, timeout=60)


def test_install_script_is_valid_bash_and_explains_itself():
    subprocess.run(["bash", "-n", str(INSTALL)], check=True)
    out = _install("--help")
    assert out.returncode == 0 and "--secret FILE" in out.stdout and "--join" in out.stdout
    assert "--new-secret" in out.stdout and "set -euo" not in out.stdout


@pytest.mark.parametrize("args,fragment", [
    (["--secret"], "--secret needs a value"),               # was "SECRET: unbound variable"
    (["--secret", "--join", "h1"], "--secret needs a value"),
    (["--join"], "--join needs a value"),
    (["--bogus"], "unknown option --bogus"),
    ([], "give --new-secret (first host) or --secret FILE"),
    (["--new-secret", "--secret", "x"], "not both"),
])
def test_install_script_refuses_bad_options_in_its_own_words(args, fragment):
    out = _install(*args)
    assert out.returncode == 2 and fragment in out.stderr, out.stderr
    assert "unbound variable" not in out.stderr and "see: " in out.stderr


def test_install_check_needs_python_311_and_docker(tmp_path):
    """`--check` changes nothing; without docker on PATH it says what to install."""
    if shutil.which("docker"):
        out = _install("--check")
        assert out.returncode == 0 and "this host can run meshd" in out.stdout, out.stderr
    bin_dir = tmp_path / "bin"  # a PATH with Python 3.11 and the basic tools, but no docker
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(os.path.realpath(sys.executable))
    for tool in ("dirname", "env"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    out = _install("--check", path=str(bin_dir))
    assert out.returncode == 1 and "Docker is not installed" in out.stderr and "docker.io" in out.stderr


def test_dockerignore_keeps_the_venv_and_git_out_of_the_image_context():
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    for needed in (".venv", ".git", "tests"):
        assert needed in patterns, needed
    assert "README.md" not in patterns and "meshd" not in patterns  # pip install needs them


@pytest.mark.docker
def test_image_build_context_is_small(tmp_path):
    """The context `docker build -f deploy/Dockerfile .` sends, measured by a real build."""
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM meshd-busybox:latest\nCOPY . /ctx\n")
    iid = tmp_path / "iid"
    subprocess.run(["docker", "build", "-q", "--iidfile", str(iid), "-f", str(dockerfile), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    image = iid.read_text().strip()
    try:
        du = subprocess.run(["docker", "run", "--rm", "--network", "none", image, "du", "-sk", "/ctx"],
                            check=True, capture_output=True, text=True, timeout=120)
        listing = subprocess.run(["docker", "run", "--rm", "--network", "none", image, "ls", "-a", "/ctx"],
                                 check=True, capture_output=True, text=True, timeout=120).stdout.split()
    finally:
        subprocess.run(["docker", "rmi", "-f", image], capture_output=True, timeout=120)
    assert int(du.stdout.split()[0]) < 20_000, du.stdout  # KiB; the venv alone is ~250 MB
    assert ".venv" not in listing and "pyproject.toml" in listing and "meshd" in listing

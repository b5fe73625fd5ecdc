"""Running commands for the lab, with errors that name the object and the fix.

Every kernel object the lab makes is made with iproute2 (`ip`) and nftables
(`nft`) run as subprocesses: they are what an operator would type, so a failed
step can be repeated by hand from the error message.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from collections.abc import Sequence

DEFAULT_TIMEOUT_S = 30.0


class LabError(RuntimeError):
    """A lab operation failed; the message names the object and the fix."""


def require_tool(name: str, package: str) -> str:
    """Return the path of `name`, or raise LabError naming the package to install."""
    path = shutil.which(name)
    if path is None:
        raise LabError(f"{name} is not installed: install the {package} package (tools/setup.sh does)")
    return path


def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    input_text: str | None = None,
    what: str = "",
) -> subprocess.CompletedProcess[str]:
    """Run `argv`, capturing text output.

    Args:
        argv: the command and its arguments.
        check: raise LabError when the command exits non-zero.
        timeout_s: kill the command after this many seconds.
        input_text: text fed to the command's standard input.
        what: the object the command acts on, named in errors.

    Raises:
        LabError: the command is missing, timed out, or (with check) failed.
    """
    try:
        proc = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            input=input_text,
            stdin=None if input_text is not None else subprocess.DEVNULL,
        )
    except FileNotFoundError as exc:
        raise LabError(f"{argv[0]} not found: install it with tools/setup.sh") from exc
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"{_label(argv, what)} timed out after {timeout_s:g} s") from exc
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()
        raise LabError(f"{_label(argv, what)} failed (exit {proc.returncode}): {detail}")
    return proc


def _label(argv: Sequence[str], what: str) -> str:
    cmd = shlex.join(argv)
    return f"{what}: `{cmd}`" if what else f"`{cmd}`"

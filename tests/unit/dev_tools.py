"""Finding the developer tools of the ``test`` extra (lint-imports, ruff, mypy): beside the running
Python first (the venv), then on PATH. Missing in CI is a failure; elsewhere a skip naming the fix."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


def dev_tool(name: str) -> str:
    path = Path(sys.executable).parent / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is missing: tools/setup.sh installs the test extra (pip install -e '.[test]')",
                        pytrace=False)
        pytest.skip(f"needs {name}: pip install -e '.[test]'")
    return found

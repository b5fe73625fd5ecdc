"""The lint rules of pyproject.toml ``[tool.ruff]`` hold for every file, checked with the suite so CI
runs them: pyflakes' unused names and undefined variables, bugbear's traps, trio's async pitfalls,
import order, and lines of at most 120 characters. So do the type checks of ``[tool.mypy]``: strict
for the protocol cores and the state machine, mypy's default checks for the rest of the packages."""

from __future__ import annotations

import subprocess

from tests.unit.dev_tools import ROOT, dev_tool


def test_ruff_finds_nothing():
    r = subprocess.run([dev_tool("ruff"), "check", "--no-cache", "--output-format", "concise", "."],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"ruff check . (fix with `ruff check --fix .` where it can):\n{r.stdout}{r.stderr}"


def test_mypy_finds_nothing():
    r = subprocess.run([dev_tool("mypy")], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"mypy (the packages and flags of pyproject.toml [tool.mypy]):\n{r.stdout}{r.stderr}"

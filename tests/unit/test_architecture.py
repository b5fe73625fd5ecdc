"""The architecture is checked, not a convention: import-linter's contracts (pyproject.toml
``[tool.importlinter]``) run here, so CI runs them with the suite (issue 14 item 6)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.unit.dev_tools import ROOT, dev_tool
from tools.contracts import may_import, private_owner


def test_every_import_contract_is_kept():
    r = subprocess.run([dev_tool("lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "5 kept, 0 broken" in r.stdout, r.stdout


def test_a_private_module_belongs_to_the_package_that_holds_it():
    assert private_owner("meshd.api._requests") == "meshd.api"
    assert private_owner("meshd.agent._backend") == "meshd.agent"
    assert private_owner("meshd.api") is None and private_owner("meshd.__main__") is None
    assert may_import("meshd.api._service", "meshd.api._requests")  # inside its package
    assert may_import("meshd.api", "meshd.api._requests")  # the package exports it
    assert may_import("meshd.agent._status", "meshd._attach")  # meshd.agent is inside meshd
    assert not may_import("meshd.agent._backend", "meshd.api._requests")
    assert not may_import("tools.bench.codec", "consensus._sessions")
    assert not may_import("meshd.apix", "meshd.api._requests")  # a name prefix is not a package


def test_test_modules_have_unique_basenames():
    """pytest imports test modules by basename (rootdir mode, no packages): two files named
    alike make the whole collection fail, as it did in CI once (tests/*/test_mtu.py)."""
    seen: dict[str, Path] = {}
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        assert path.name not in seen, f"{path} and {seen[path.name]} share a name: rename one"
        seen[path.name] = path

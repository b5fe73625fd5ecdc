"""meshd-cni's answers that need no agent: VERSION, and the spec's errors (JSON on stdout, exit status 1)."""

import io
import json
from pathlib import Path

from meshd.plugin._cni import main


def _run(conf: object, **env: str) -> tuple[int, dict]:
    out = io.StringIO()
    rc = main([], stdin=io.StringIO(conf if isinstance(conf, str) else json.dumps(conf)), stdout=out, environ=env)
    return rc, json.loads(out.getvalue()) if out.getvalue() else {}


def test_version_lists_the_versions_spoken() -> None:
    rc, out = _run({}, CNI_COMMAND="VERSION")
    assert rc == 0 and out["supportedVersions"][-1] == "1.1.0" and "0.4.0" in out["supportedVersions"]


def test_errors_carry_the_spec_codes(tmp_path: Path) -> None:
    conf = {"cniVersion": "1.0.0", "name": "blue", "type": "meshd", "runDir": str(tmp_path)}
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "abc123", "CNI_NETNS": "/run/netns/x", "CNI_IFNAME": "eth0"}
    assert _run(conf)[1]["code"] == 4  # no CNI_COMMAND
    assert _run("{nope", **env)[1]["code"] == 6
    rc, out = _run({**conf, "cniVersion": "9.9.9"}, **env)
    assert rc == 1 and out["code"] == 1 and "1.1.0" in out["msg"]
    assert _run({**conf, "name": ""}, **env)[1]["code"] == 7
    assert _run(conf, **{**env, "CNI_CONTAINERID": ""})[1]["code"] == 4
    rc, out = _run(conf, **env)  # no agent listens in runDir: try again later
    assert rc == 1 and out["code"] == 11 and "no meshd agent runs" in out["msg"]
    assert out["cniVersion"] == "1.0.0"

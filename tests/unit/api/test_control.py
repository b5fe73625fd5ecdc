"""The root-only control socket and the CLI verbs built on it (real ipc socket, real state)."""

import json
import os
import stat

import pytest
import trio

from meshd.api import SchedulerService
from meshd.api._control import ControlServer
from meshd.cli import main
from meshd.transport import ZmqHost


@pytest.fixture
async def control(nursery, backend, tmp_path):
    host = ZmqHost(None)
    await nursery.start(host.run)
    server = ControlServer(host, SchedulerService(backend), str(tmp_path / "run"))
    await nursery.start(server.run)
    return server


async def cli(*argv):
    return await trio.to_thread.run_sync(main, list(argv))


async def test_socket_is_root_only(control):
    assert stat.S_IMODE(os.stat(control.path).st_mode) & 0o077 == 0
    assert stat.S_IMODE(os.stat(control.path.parent).st_mode) == 0o700


async def test_cli_verbs_round_trip(control, capsys):
    run = ["--run-dir", str(control.path.parent)]
    assert await cli("network", "create", "blue", "10.1.0.0/24", "--label", "team=a", *run) == 0
    assert await cli("endpoint", "connect", "c1", "blue", "--rate-kbit", "1000", "--burst-bytes", "32768", *run) == 0
    capsys.readouterr()
    assert await cli("endpoint", "list", "--json", *run) == 0
    eps = json.loads(capsys.readouterr().out)["endpoints"]
    assert [(e["endpoint_id"], e["ip"], e["qos"]["rate_kbit"]) for e in eps] == [("c1", "10.1.0.2", 1000)]
    assert await cli("network", "list", *run) == 0
    out = capsys.readouterr().out
    assert "blue" in out and "10.1.0.0/24" in out
    assert await cli("policy", "add", "isolate-within", "blue", "--policy-id", "p1", *run) == 0
    assert "policy_id  p1" in capsys.readouterr().out
    assert await cli("policy", "list", "--json", *run) == 0
    assert json.loads(capsys.readouterr().out)["policies"][0]["policy_id"] == "p1"
    assert await cli("network", "delete", "blue", *run) == 1
    err = capsys.readouterr().err
    assert "blue" in err and "delete with --force" in err and "error code" not in err
    assert await cli("status", *run) == 0
    assert capsys.readouterr().out.startswith("h1")

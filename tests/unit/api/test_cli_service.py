"""``meshd service ...`` against a real control socket and state: publish, ls, inspect, unpublish, errors."""

from __future__ import annotations

import json

from meshd import state as st
from meshd.cli import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_publish_list_inspect_unpublish(agent, capsys):
    run_dir, backend = agent
    assert run(capsys, "network", "create", "blue", "10.1.0.0/24", "--run-dir", run_dir)[0] == 0
    assert run(capsys, "endpoint", "connect", "c1", "blue", "--run-dir", run_dir)[0] == 0
    code, out, err = run(capsys, "service", "publish", "web", "c1", "--port", "80", "--check", "tcp",
                         "--ttl-s", "9", "--run-dir", run_dir)
    assert code == 0, err
    (cmd,) = [c for c in backend.executed if isinstance(c, st.PublishService)]
    assert (cmd.name, cmd.network, cmd.port, cmd.check, cmd.ttl_s, cmd.interval_s) == ("web", "blue", 80, "tcp", 9, 5)
    code, out, _ = run(capsys, "service", "ls", "--run-dir", run_dir)
    assert code == 0 and "web" in out and "10.1.0.2:80" in out and "healthy" in out
    code, out, _ = run(capsys, "service", "inspect", "web", "--json", "--run-dir", run_dir)
    assert json.loads(out)["services"][0]["port"] == 80
    assert run(capsys, "service", "unpublish", "web", "--run-dir", run_dir)[0] == 0
    code, out, _ = run(capsys, "service", "ls", "--run-dir", run_dir)
    assert "no services" in out


def test_errors_are_one_line_with_a_hint(agent, capsys):
    run_dir, _ = agent
    code, _, err = run(capsys, "service", "publish", "we_b", "c1", "--port", "80", "--run-dir", run_dir)
    assert code == 2 and "is not a DNS label" in err
    code, _, err = run(capsys, "service", "publish", "web", "c1", "--port", "70000", "--run-dir", run_dir)
    assert code == 2 and "1..65535" in err
    code, _, err = run(capsys, "service", "unpublish", "nope", "--network", "blue", "--run-dir", run_dir)
    assert code != 0 and "Traceback" not in err and "nope" in err
    code, _, err = run(capsys, "service", "inspect", "nope", "--run-dir", run_dir)
    assert code != 0 and "is not published" in err

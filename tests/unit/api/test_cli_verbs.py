"""The CLI verbs against a real control socket and a real network state (LocalBackend): values are
checked before anything is sent, errors speak the CLI's words, no input prints a traceback."""

from __future__ import annotations

import argparse
import json
import re
import socket
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from meshd import state as st
from meshd.cli import build_parser, describe_error, main
from meshd.cli_errors import in_cli_words
from meshd.cli_verbs import label
from meshd.state import default_burst_bytes

CID = "a47f5346b4efe9b4dd6b9d5a4db82c9c288f0a7e0bc0da51294d5902ab00b034"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse: the command line was wrong
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_out_of_range_numbers_are_refused_before_sending(capsys, tmp_path):
    """Issue 12 item 5: --rate-kbit 999999999999999999999 was an OverflowError traceback."""
    for verb in (["endpoint", "connect"], ["endpoint", "qos"]):
        code, _, err = run(capsys, *verb, "web", "blue", "--rate-kbit", "999999999999999999999",
                           "--run-dir", str(tmp_path))
        assert code == 2 and "Traceback" not in err
        assert "--rate-kbit: 999999999999999999999 is out of range: use 0..100000000 (kbit/s)" in err
    for flag, value in (("--vni", "16777216"), ("--mtu", "9001"), ("--egress-kbit", "-1")):
        code, _, err = run(capsys, "network", "create", "n", "10.0.0.0/24", flag, value)
        assert code == 2 and "out of range" in err, (flag, err)
    code, _, err = run(capsys, "endpoint", "connect", "web", "blue", "--pid", "x")
    assert code == 2 and "'x' is not a whole number" in err


def test_a_rate_alone_gets_the_label_defaults_and_a_burst_alone_is_refused(agent, capsys):
    run_dir, backend = agent
    assert run(capsys, "network", "create", "blue", "10.1.0.0/24", "--run-dir", run_dir)[0] == 0
    assert run(capsys, "endpoint", "connect", "c1", "blue", "--rate-kbit", "10000", "--run-dir", run_dir)[0] == 0
    (connect,) = [c for c in backend.executed if isinstance(c, st.Connect)]
    assert connect.qos == st.Qos(10_000, default_burst_bytes(10_000), 50)  # as meshd.rate_kbit alone would
    for verb in ("connect", "qos"):
        code, _, err = run(capsys, "endpoint", verb, "c1", "blue", "--burst-bytes", "4096", "--run-dir", run_dir)
        assert code == 2 and "--burst-bytes shape a rate limit, but no --rate-kbit above 0 is given" in err
    code, _, err = run(capsys, "endpoint", "qos", "c1", "blue", "--run-dir", run_dir)
    assert code == 2 and "nothing to change" in err and "--rate-kbit 0 removes the limit" in err
    assert run(capsys, "endpoint", "qos", "c1", "blue", "--rate-kbit", "0", "--run-dir", run_dir)[0] == 0
    assert backend.executed[-1].qos == st.Qos(0, 0, 0)


def test_labels_must_be_key_value(agent, capsys):
    run_dir, backend = agent
    code, _, err = run(capsys, "network", "create", "blue", "10.1.0.0/24", "--label", "nokey", "--run-dir", run_dir)
    assert code == 2 and "'nokey' must look like KEY=VALUE" in err
    code, _, err = run(capsys, "network", "create", "blue", "10.1.0.0/24", "--label", "=v", "--run-dir", run_dir)
    assert code == 2
    assert not backend.executed  # nothing half-done
    assert run(capsys, "network", "create", "blue", "10.1.0.0/24", "--label", "team=a=b", "--run-dir", run_dir)[0] == 0
    assert backend.executed[-1].labels == {"team": "a=b"}


def test_listing_by_a_network_or_host_that_does_not_exist_is_an_error(agent, capsys):
    run_dir, _ = agent
    run(capsys, "network", "create", "blue", "10.1.0.0/24", "--run-dir", run_dir)
    code, out, err = run(capsys, "endpoint", "ls", "--network", "bleu", "--run-dir", run_dir)
    assert code == 1 and "network 'bleu' does not exist (networks: blue)" in err
    assert run(capsys, "endpoint", "ls", "--network", "blue", "--run-dir", run_dir)[:2] == (0, "no endpoints\n")
    code, _, err = run(capsys, "endpoint", "ls", "--host", "h9", "--run-dir", run_dir)
    assert code == 1 and "host 'h9' is not a member" in err and "members: h1" in err
    code, _, err = run(capsys, "policy", "ls", "--network", "bleu", "--run-dir", run_dir)
    assert code == 1 and "does not exist" in err


def test_agent_errors_speak_the_cli_words_and_say_the_fix(agent, capsys):
    run_dir, _ = agent
    run(capsys, "network", "create", "blue", "10.1.0.0/24", "--run-dir", run_dir)
    code, _, err = run(capsys, "endpoint", "qos", CID, "blue", "--rate-kbit", "100", "--run-dir", run_dir)
    assert code == 1 and "endpoint 'a47f5346b4ef' is not connected to network 'blue'" in err
    assert "hint: list the endpoints with `meshd endpoint ls`" in err and "error code" not in err
    code, _, err = run(capsys, "network", "delete", "red", "--run-dir", run_dir)
    assert code == 1 and "hint: list the networks with `meshd network ls`" in err


def test_api_words_are_put_in_cli_words():
    assert in_cli_words("NetworkCreate: field 'vni' must be an integer, got str") == "--vni must be an integer, got str"
    assert in_cli_words(f"QoS of endpoint '{CID}' sets rate_kbit=10000 without burst_bytes: give a burst") == (
        "QoS of endpoint 'a47f5346b4ef' sets --rate-kbit 10000 without --burst-bytes: give a burst")
    assert in_cli_words("EndpointConnect: field 'bandwidth_kbit' must not be negative") == (
        "--rate-kbit must not be negative")
    assert in_cli_words("disconnect it first, or use move / set-qos").endswith(
        "use `meshd endpoint move` / `meshd endpoint qos`")
    assert in_cli_words("QosSet: unknown field(s) 'netwrok', 'burst_bytes'; allowed: ...").startswith(
        "unknown netwrok, --burst-bytes")
    said = "meshd.rate_kbit='fast' is not a whole number"
    assert in_cli_words(said) == said


def test_no_agent_is_said_at_once_with_how_to_start_it(tmp_path):
    """No agent: said without waiting for --timeout-s (an hour here: waiting would hit the
    subprocess timeout and fail the test)."""
    stale = tmp_path / "stale"
    stale.mkdir()
    with socket.socket(socket.AF_UNIX) as s:  # a socket file nobody accepts on (an agent that died)
        s.bind(str(stale / "control.sock"))
        for run_dir, fragment in ((tmp_path / "none", "does not exist"), (stale, "nobody listens")):
            out = subprocess.run([sys.executable, "-m", "meshd", "status", "--run-dir", str(run_dir),
                                  "--timeout-s", "3600"], capture_output=True, text=True, timeout=60)
            assert out.returncode == 1 and fragment in out.stderr, out.stderr
            assert "hint: start it: `systemctl start meshd`" in out.stderr and "Traceback" not in out.stderr


def test_unexpected_errors_are_one_line_naming_a_bug():
    message, hint, code = describe_error(KeyError("x"))
    assert message == "internal error: KeyError: 'x'" and "--debug" in hint and code == 1
    assert "`meshd agent` logs it" in hint
    assert describe_error(FileNotFoundError(2, "No such file or directory", "/x")) == (
        "No such file or directory: /x", "", 1)


def test_status_summary_and_why(agent, capsys):
    run_dir, backend = agent
    backend.status = lambda: {  # the agent's status map (docs/api.md), as a multi-host agent answers it
        "host": "h1", "advertise": "192.0.2.11", "version": "0.1.0", "uptime_s": 75.0, "log_level": "info",
        "members": [{"name": "h1", "state": "alive", "address": "192.0.2.11", "version": "0.1.0"},
                    {"name": "h2", "state": "suspect", "address": "192.0.2.12", "version": "0.1.0"}],
        "raft": {"role": "leader", "term": 3, "leader": "h1", "commit_index": 9, "applied_index": 9,
                 "voters": ["h1", "h2"], "learners": [], "followers": [{"id": "h2", "match": 7, "lag": 2}]},
        "networks": [{"name": "blue", "tenant": "a", "subnet": "10.1.0.0/24", "vni": 1, "used": 1, "free": 252}],
        "endpoints": [{"endpoint_id": CID, "container": "web", "network": "blue", "vni": 1, "ip": "10.1.0.2",
                       "running": False, "up": False, "rate_kbit": 0}],
        "reconcile": {"passes": 3, "passes_skipped": 1, "last_errors": [], "last_pass_ms": 4.2, "errors_total": 0},
        "events": [{"time": 1.0, "kind": "join", "text": "h2 join (192.0.2.12)"}],
        "attach": [{"container_id": CID, "container": "web", "network": "blue", "ip": "10.1.0.2", "step": "running",
                    "error": "the container is not running on this host (no PID known): start it", "time": 0.0}],
    }
    code, out, _ = run(capsys, "status", "--run-dir", run_dir)
    assert code == 0 and "{" not in out  # no Python dicts
    for fragment in ("leader, term 3", "h2 2 behind", "1 of 2 alive", "suspect", "web", "10.1.0.2", "stopped",
                     "h2 join (192.0.2.12)", " ago", "`meshd why CONTAINER` says why (web)"):
        assert fragment in out, fragment
    code, out, _ = run(capsys, "why", "web", "--run-dir", run_dir)
    assert code == 1 and re.search(r"FAILED +running +the container is not running", out)
    assert re.search(r"ok +address +10.1.0.2 allocated in network blue", out)
    assert run(capsys, "why", "a47f", "--run-dir", run_dir)[0] == 1  # an id prefix names it too
    assert json.loads(run(capsys, "why", "web", "--json", "--run-dir", run_dir)[1])[0]["step"] == "running"
    code, _, err = run(capsys, "why", "db", "--run-dir", run_dir)
    assert code == 1 and "knows no container 'db'" in err


VERBS = [["status"], ["members"], ["why"], ["log-level"], ["network", "create"], ["network", "update"],
         ["network", "delete"], ["network", "ls"], ["network", "inspect"], ["endpoint", "connect"],
         ["endpoint", "qos"], ["endpoint", "disconnect"], ["endpoint", "move"], ["endpoint", "ls"],
         ["endpoint", "inspect"], ["policy", "add"], ["policy", "rm"], ["policy", "ls"]]
#: values that pass argparse for most flags, and wild ones (huge, negative, junk)
PLAIN_TEXT = hs.sampled_from(["blue", "c1", "h1", "10.1.0.0/24", "10.1.0.9", "k=v", "vxlan", "isolate-within",
                              "debug", "02:00:00:00:00:01"])
PLAIN_NUMBER = hs.integers(1, 1400).map(str)
EDGES = hs.sampled_from(["999999999999999999999", str(2**64), str(-2**64), str(2**63), "-1", "0", "", "nan"])
WILD = hs.one_of(EDGES, EDGES, hs.integers().map(str), hs.text(max_size=16))  # edges weigh double


def _parser_of(verb: list[str]) -> argparse.ArgumentParser:
    parser = build_parser()
    for word in verb:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[word]
    return parser


def _argv(data, verb: list[str]) -> list[str]:
    """The verb with plausible positionals and a few of its own flags (each given or not,
    independently), then one value replaced by a wild one."""
    actions = _parser_of(verb)._actions
    positionals = [a for a in actions if not a.option_strings]
    flags = [a for a in actions if a.option_strings and a.dest not in ("help", "run_dir", "timeout_s")]
    argv, slots = list(verb), []
    for _ in positionals:
        slots.append(len(argv))
        argv.append(data.draw(PLAIN_TEXT))
    for action in flags:
        if data.draw(hs.booleans()):
            argv.append(action.option_strings[0])
            if action.nargs != 0:
                slots.append(len(argv))
                number = action.type not in (None, str, label)
                slots += [len(argv)] if number else []  # numbers are the wild one twice as often
                argv.append(data.draw(PLAIN_NUMBER if number else PLAIN_TEXT))
    if slots:
        argv[data.draw(hs.sampled_from(slots))] = data.draw(WILD)
    return argv


@pytest.mark.parametrize("verb", VERBS, ids=" ".join)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=hs.data())
def test_no_command_line_prints_a_traceback(agent, verb, data):
    """Any values: exit 0, 1 or 2, never an exception out of main() (which would be a traceback)."""
    run_dir, _ = agent
    argv = _argv(data, verb)
    try:
        code = main([*argv, "--run-dir", run_dir, "--timeout-s", "5"])
    except SystemExit as exc:
        code = exc.code
    assert code in (0, 1, 2), argv


def test_an_agent_stopped_by_a_bug_says_what_in_one_line_and_logs_the_traceback(monkeypatch, tmp_path, capsys,
                                                                                 caplog):
    import trio

    import meshd.agent

    class CrashingAgent:  # the real Agent needs a lab host; what is tested here is the CLI's report
        def __init__(self, *args, **kwargs) -> None:
            """Takes the real Agent's arguments; nothing to set up."""

        async def run(self) -> None:
            async with trio.open_nursery() as outer:  # trio nests a task's group in its parent's
                async def task() -> None:
                    async with trio.open_nursery() as inner:
                        async def apply() -> None:
                            raise KeyError("entry 7")
                        inner.start_soon(apply)
                outer.start_soon(task)

    monkeypatch.setattr(meshd.agent, "Agent", CrashingAgent)
    code = main(["agent", "--data-dir", str(tmp_path / "data"), "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 1
    assert "meshd: error: internal error: KeyError: 'entry 7'" in err and "ExceptionGroup" not in err, err
    assert "`meshd agent` logs it" in err
    crit = [r for r in caplog.records if r.levelname == "CRITICAL"]
    assert crit and crit[0].getMessage() == "agent stopped by an internal error"
    assert crit[0].exc_info and crit[0].exc_info[0] is KeyError

"""``meshd network advise`` and ``network create --mode auto``: answers without an agent, checks the
cluster's hard constraints with one (a real control socket over LocalBackend)."""

from __future__ import annotations

import json

from meshd import advisor
from meshd import state as st
from tests.unit.api.test_cli_verbs import run  # (code, stdout, stderr) of one `meshd ...`

EXAMPLE = ["--security", "6", "--scale", "0", "--throughput", "7", "--extensibility", "2"]
FLAT_NEEDS = ["--security", "0", "--scale", "0", "--throughput", "10", "--extensibility", "0"]


def test_without_an_agent_the_weights_answer_and_one_line_says_nothing_was_checked(capsys, tmp_path):
    code, out, err = run(capsys, "network", "advise", *EXAMPLE, "--run-dir", str(tmp_path))
    expected = advisor.advise(6, 0, 7, 2)  # the shipped model's answer (it follows the measured report)
    lines = out.splitlines()
    assert code == 0 and not err
    assert lines[0] == f"{expected.mode}  (the regression's P({expected.mode}) = {expected.probability:.2f})"
    assert [ln[4:] for ln in lines[1:-2]] == list(expected.reasons)
    assert lines[-2].startswith("not checked: the cluster's constraints") and "no meshd agent runs" in lines[-2]
    assert lines[-1] == f"create it: meshd network create NAME SUBNET --mode {expected.mode}"


def test_json_shape(capsys, tmp_path):
    code, out, _ = run(capsys, "network", "advise", *EXAMPLE, "--tenant", "a", "--subnet", "10.1.0.9/24", "--json",
                       "--run-dir", str(tmp_path))
    result = json.loads(out)
    assert code == 0 and set(result) == {"mode", "probability", "p_flat", "regression_mode", "overridden",
                                         "reasons", "ruled_out", "unchecked", "weights", "checked",
                                         "not_checked_because", "command"}
    assert result["weights"] == {"security": 6, "scale": 0, "throughput": 7, "extensibility": 2}
    mode = advisor.advise(6, 0, 7, 2).mode
    assert result["checked"] is False and result["mode"] == mode
    assert result["command"] == f"meshd network create NAME 10.1.0.0/24 --tenant a --mode {mode}"


def test_argument_errors_are_one_line_with_the_fix_and_exit_2(capsys, tmp_path):
    bad = [*EXAMPLE[:-1], "11"]
    code, _, err = run(capsys, "network", "advise", *bad)
    assert code == 2 and "argument --extensibility: 11 is out of range: use 0..10 (0 = does not matter" in err
    code, _, err = run(capsys, "network", "advise", "--security", "x", *EXAMPLE[2:])
    assert code == 2 and "'x' is not a whole number" in err
    code, _, err = run(capsys, "network", "advise", *EXAMPLE[:6])
    assert code == 2 and "required: --extensibility" in err
    code, _, err = run(capsys, "network", "advise", *EXAMPLE, "--subnet", "10.1.0.0/33")
    assert code == 2 and "'10.1.0.0/33' is not an IPv4 CIDR" in err
    code, _, err = run(capsys, "network", "advise", *EXAMPLE, "--no-shared-l2", "--l2-prefix", "24",
                       "--run-dir", str(tmp_path))
    assert code == 2 and "contradict" in err and "hint: give --l2-prefix LEN" in err
    code, _, err = run(capsys, "network", "create", "n", "10.0.0.0/24", "--security", "3", "--run-dir", str(tmp_path))
    assert code == 2 and "--security only counts with --mode auto" in err and "hint: add --mode auto" in err
    code, _, err = run(capsys, "network", "create", "n", "10.0.0.0/24", "--mode", "auto", *EXAMPLE[:4])
    assert code == 2 and "missing --throughput, --extensibility" in err
    assert all("Traceback" not in e for e in err)


def test_an_overlap_with_another_tenant_overrides_the_regression(agent, capsys):
    run_dir, _ = agent
    assert run(capsys, "network", "create", "red", "10.1.0.0/16", "--tenant", "b", "--run-dir", run_dir)[0] == 0
    code, out, _ = run(capsys, "network", "advise", *FLAT_NEEDS, "--tenant", "a", "--subnet", "10.1.5.0/24",
                       "--json", "--run-dir", run_dir)
    result = json.loads(out)
    assert code == 0 and result["checked"] and result["regression_mode"] == "flat" and result["mode"] == "vxlan"
    assert "red (tenant b, 10.1.0.0/16)" in result["ruled_out"]["flat"][0]
    assert result["unchecked"] == ["whether the hosts share one L2 segment"]
    code, out, _ = run(capsys, "network", "advise", *FLAT_NEEDS, "--subnet", "10.2.0.0/24", "--run-dir", run_dir)
    assert code == 0 and out.startswith("flat  ") and "not checked: whether the hosts share one L2 segment\n" in out


def test_members_kernels_and_the_l2_segment_are_checked(agent, capsys):
    run_dir, backend = agent
    members = [{"name": "h1", "state": "alive", "address": "10.0.0.1", "dataplane_missing": ["vlan"]},
               {"name": "h2", "state": "alive", "address": "10.0.1.1", "dataplane_missing": ["macvlan", "vlan"]},
               {"name": "h9", "state": "left", "address": "192.0.2.1", "dataplane_missing": ["vxlan"]}]
    backend.members = lambda: members
    backend.status = lambda: {"host": "h1", "advertise": "10.0.0.1"}
    result = json.loads(run(capsys, "network", "advise", *FLAT_NEEDS, "--json", "--run-dir", run_dir)[1])
    assert result["mode"] == "vxlan" and result["ruled_out"] == {"flat": ["host h2's kernel lacks macvlan links"]}
    members[1]["dataplane_missing"] = []
    result = json.loads(run(capsys, "network", "advise", *FLAT_NEEDS, "--l2-prefix", "24", "--json",
                            "--run-dir", run_dir)[1])
    assert result["mode"] == "vxlan" and "do not share one L2 segment" in result["ruled_out"]["flat"][0]
    result = json.loads(run(capsys, "network", "advise", *FLAT_NEEDS, "--l2-prefix", "16", "--json",
                            "--run-dir", run_dir)[1])
    assert result["mode"] == "flat" and result["unchecked"] == [
        "whether the new network's subnet overlaps another tenant's (no subnet given)"]


def test_create_mode_auto_says_its_choice_then_creates(agent, capsys):
    run_dir, backend = agent
    code, out, _ = run(capsys, "network", "create", "blue", "10.3.0.0/24", "--mode", "auto", "--security", "9",
                       "--scale", "5", "--throughput", "1", "--extensibility", "5", "--run-dir", run_dir)
    assert code == 0 and out.startswith("mode auto: vxlan (the regression's P(vxlan) = 1.00): security 9/10 weighed")
    assert "not checked: whether the hosts share one L2 segment" in out
    (create,) = [c for c in backend.executed if isinstance(c, st.CreateNetwork)]
    assert create.mode == "vxlan"

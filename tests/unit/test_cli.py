"""The meshd command line: version, keygen, config check/show."""

import os
import stat
import subprocess
import sys

import pytest

from meshd.cli import main
from meshd.transport import ClusterKeys, load_client_keys, read_client_key, read_secret


def test_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "meshd", "--help"], capture_output=True, text=True, check=True)
    for command in ("version", "keygen", "config"):
        assert command in out.stdout


def test_version(capsys):
    assert main(["version"]) == 0
    assert "meshd 0.1.0" in capsys.readouterr().out


def test_keygen_writes_a_private_secret_and_refuses_to_overwrite(tmp_path, capsys):
    path = tmp_path / "secret"
    assert main(["keygen", "--out", str(path)]) == 0
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    secret = read_secret(path)
    ClusterKeys.from_secret(secret)  # derives keys
    assert main(["keygen", "--out", str(path)]) == 1
    err = capsys.readouterr().err
    assert "already exists" in err and "--force" in err
    assert read_secret(path) == secret
    assert main(["keygen", "--out", str(path), "--force"]) == 0
    assert read_secret(path) != secret


def test_two_secrets_give_different_keys_one_secret_same_keys(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    main(["keygen", "--out", str(a)])
    main(["keygen", "--out", str(b)])
    assert ClusterKeys.from_secret(read_secret(a)) == ClusterKeys.from_secret(read_secret(a))
    assert ClusterKeys.from_secret(read_secret(a)) != ClusterKeys.from_secret(read_secret(b))


def test_keygen_client_pair_is_loadable(tmp_path, capsys):
    secret = tmp_path / "secret"
    assert main(["keygen", "--client", "s1", "--dir", str(tmp_path), "--secret-file", str(secret)]) == 1
    assert "does not exist" in capsys.readouterr().err
    main(["keygen", "--out", str(secret)])
    assert main(["keygen", "--client", "sched-1", "--dir", str(tmp_path), "--secret-file", str(secret)]) == 0
    key = read_client_key(tmp_path / "sched-1.key")
    assert key.name == "sched-1"
    assert key.api_server_public == ClusterKeys.from_secret(read_secret(secret)).api.public
    clients = tmp_path / "clients"  # api.clients_dir on a host: the .pub only
    clients.mkdir()
    (clients / "sched-1.pub").write_text((tmp_path / "sched-1.pub").read_text())
    assert load_client_keys(clients) == {key.pair.public: "sched-1"}


@pytest.mark.parametrize("text,fragment", [
    ("", "no meshd cluster secret"),
    ("meshd-secret-v1:AAAA", "damaged"),
])
def test_bad_secret_files_are_explained(tmp_path, text, fragment):
    path = tmp_path / "secret"
    path.write_text(text)
    with pytest.raises(ValueError) as info:
        read_secret(path)
    assert str(path) in str(info.value)
    assert fragment.replace("no meshd", "not a meshd") in str(info.value)


def test_config_check_ok_and_errors(tmp_path, capsys):
    good = tmp_path / "good.toml"
    good.write_text('[agent]\nname = "h1"\n')
    assert main(["config", "check", str(good)]) == 0
    bad = tmp_path / "bad.toml"
    bad.write_text("[gossip]\nprobe_timeout_s = 2.0\n")
    assert main(["config", "check", str(bad)]) == 1
    assert "gossip.probe_timeout_s (2.0) must be smaller than gossip.probe_interval_s (1.0)" in capsys.readouterr().err
    assert main(["config", "check", str(good), "--set", "agent.raft_port=7946"]) == 1


def test_config_show_prints_loadable_toml(tmp_path, capsys):
    assert main(["config", "show", "--profile", "local", "--set", "gossip.gossip_nodes=5"]) == 0
    text = capsys.readouterr().out
    path = tmp_path / "shown.toml"
    path.write_text(text)
    assert main(["config", "check", str(path)]) == 0
    assert "gossip_nodes = 5" in text


def test_status_raft_line_names_silent_and_adopted_learners():
    from meshd.cli_show import raft_line

    raft = {"role": "leader", "term": 3, "leader": "h1", "commit_index": 9, "applied_index": 9,
            "voters": ["h1", "h2", "h3"], "learners": ["h4", "h5", "h6"],
            "followers": [
                {"id": "h2", "lag": 0, "voter": True, "responsive": True, "adopted": False},
                {"id": "h4", "lag": 0, "voter": False, "responsive": False, "adopted": False},
                {"id": "h5", "lag": 0, "voter": False, "responsive": True, "adopted": True},
                {"id": "h6", "lag": 2, "voter": False, "responsive": True, "adopted": True},
            ]}
    line = raft_line(raft)
    assert line.endswith("h6 2 behind, h4 not answering, h5 h6 fed by the leader (their relay is not answering)")
    raft["followers"] = raft["followers"][:1]
    assert "fed by the leader" not in raft_line(raft)

"""Config: defaults valid, every validation path, TOML round trip, overrides."""

import dataclasses
import re

import pytest

from consensus import RaftConfig
from meshd.config import AgentConfig, ApiConfig, Config, ConfigError, DataplaneConfig, TransportConfig, load
from meshd.gossip import GossipConfig


@pytest.mark.parametrize("cfg", [Config.lan(), Config.local(), Config()])
def test_profiles_are_valid(cfg):
    assert cfg.problems() == []
    assert cfg.validate() is cfg


def test_local_profile_is_faster_than_lan():
    assert Config.local().gossip.probe_interval_s < Config.lan().gossip.probe_interval_s
    assert Config.local().raft.tick_interval_s < Config.lan().raft.tick_interval_s


def test_lan_defaults_are_memberlists():
    g = Config.lan().gossip
    assert (g.probe_interval_s, g.probe_timeout_s, g.suspicion_mult, g.gossip_interval_s,
            g.gossip_nodes, g.push_pull_interval_s) == (1.0, 0.5, 4, 0.2, 3, 30.0)


def _problems(**sections):
    return Config.lan().replace(**sections).problems()


# Each invalid setting, and a fragment its message must contain.
INVALID = [
    (dict(gossip=dataclasses.replace(GossipConfig.lan(), probe_timeout_s=2.0)),
     "gossip.probe_timeout_s (2.0) must be smaller than gossip.probe_interval_s (1.0)"),
    (dict(gossip=dataclasses.replace(GossipConfig.lan(), gossip_nodes=0)),
     "gossip.gossip_nodes (0) must be greater than 0"),
    (dict(raft=dataclasses.replace(RaftConfig.lan(), heartbeat_ticks=10)),
     "raft.heartbeat_ticks (10) must be smaller than raft.election_ticks (10)"),
    (dict(raft=dataclasses.replace(RaftConfig.lan(), tick_interval_s=0.0)),
     "raft.tick_interval_s (0.0) must be greater than 0"),
    (dict(agent=AgentConfig(gossip_port=70000)), "agent.gossip_port (70000) must be a TCP/UDP port"),
    (dict(agent=AgentConfig(gossip_port=7000, raft_port=7000)), "give Raft its own port"),
    (dict(agent=AgentConfig(bind_address="not-an-ip")), "agent.bind_address ('not-an-ip') must be an IP address"),
    (dict(agent=AgentConfig(advertise_address="1.2.3")), "agent.advertise_address ('1.2.3') must be an IP address"),
    (dict(agent=AgentConfig(log_level="loud")), "agent.log_level ('loud') must be one of"),
    (dict(agent=AgentConfig(name="a b")), "agent.name ('a b') must be at most 64 characters without spaces"),
    (dict(agent=AgentConfig(data_dir="var/lib")), "agent.data_dir ('var/lib') must be an absolute path"),
    (dict(transport=TransportConfig(send_hwm_msgs=0)), "transport.send_hwm_msgs (0) must be greater than 0"),
    (dict(transport=TransportConfig(reconnect_ivl_ms=500, reconnect_ivl_max_ms=100)),
     "transport.reconnect_ivl_max_ms (100) must be at least transport.reconnect_ivl_ms (500)"),
    (dict(api=ApiConfig(sub_port=1, router_port=1)), "must all differ"),
    (dict(api=ApiConfig(pub_port=0)), "api.pub_port (0) must be a TCP/UDP port in 1..65535"),
    (dict(api=ApiConfig(metrics_port=-1)), "api.metrics_port (-1) must be a TCP/UDP port in 0..65535"),
    (dict(api=ApiConfig(max_frame_bytes=8)), "api.max_frame_bytes (8) must be at least 64"),
    (dict(api=ApiConfig(stats_interval_s=0.0)), "api.stats_interval_s (0.0) must be greater than 0"),
    (dict(agent=AgentConfig(container_labels=("nolabel",))),
     "agent.container_labels: 'nolabel' must look like key=value"),
    (dict(api=ApiConfig(web_hosts=("meshd.example.org", "http://evil:80"))),
     "api.web_hosts: 'http://evil:80' must be a DNS name such as meshd.example.org (no port, no scheme)"),
    (dict(api=ApiConfig(metrics_address="localhost")), "api.metrics_address ('localhost') must be an IP address"),
    (dict(dataplane=DataplaneConfig(vxlan_port=0)), "dataplane.vxlan_port (0) must be a TCP/UDP port"),
    (dict(dataplane=DataplaneConfig(reconcile_interval_s=-1.0)),
     "dataplane.reconcile_interval_s (-1.0) must be greater than 0"),
    (dict(dataplane=DataplaneConfig(agent_down_probe_interval_s=0.1)),
     "dataplane.agent_down_probe_interval_s (0.1) must be at least dataplane.probe_interval_s (0.2)"),
]


@pytest.mark.parametrize("sections,fragment", INVALID, ids=[f for _, f in INVALID])
def test_each_invalid_setting_is_named_with_its_fix(sections, fragment):
    found = _problems(**sections)
    assert any(fragment in p for p in found), found
    with pytest.raises(ConfigError) as info:
        Config.lan().replace(**sections).validate("meshd.toml")
    assert fragment in str(info.value) and "meshd.toml" in str(info.value)


def test_metrics_port_zero_disables_metrics_and_is_valid():
    assert _problems(api=ApiConfig(metrics_port=0)) == []


def test_toml_round_trip(tmp_path):
    cfg = Config.local().with_overrides({"agent.name": "h1", "agent.join": ["192.0.2.11", "192.0.2.12:7946"],
                                         "gossip.gossip_nodes": 4})
    path = tmp_path / "meshd.toml"
    path.write_text(cfg.to_toml())
    assert load(path, profile="lan") == cfg


def test_file_then_overrides_take_precedence(tmp_path):
    path = tmp_path / "meshd.toml"
    path.write_text('[gossip]\nprobe_interval_s = 2\nprobe_timeout_s = 1.0\n[agent]\nname = "from-file"\n')
    cfg = load(path, overrides=["agent.name=from-flag", "gossip.retransmit_mult=6"])
    assert cfg.agent.name == "from-flag"
    assert cfg.gossip.probe_interval_s == 2.0 and isinstance(cfg.gossip.probe_interval_s, float)
    assert cfg.gossip.retransmit_mult == 6
    assert cfg.gossip.suspicion_mult == GossipConfig.lan().suspicion_mult  # untouched default


def test_override_string_values_without_quotes():
    cfg = Config.lan().with_overrides(["agent.advertise_address=192.0.2.11", "agent.log_level=debug"])
    assert cfg.agent.advertise_address == "192.0.2.11" and cfg.agent.log_level == "debug"


@pytest.mark.parametrize("text,fragment", [
    ("[gosip]\nx = 1\n", "unknown section 'gosip'; did you mean 'gossip'?"),
    ("[gossip]\nprobe_intervl_s = 1.0\n", "did you mean 'gossip.probe_interval_s'?"),
    ("[agent]\ngossip_port = 'x'\n", "agent.gossip_port ('x') must be an integer"),
    ("[agent]\njoin = 'h1'\n", "agent.join ('h1') must be a list"),
    ("[gossip]\nprobe_interval_s = true\n", "gossip.probe_interval_s (True) must be a number"),
    ("gossip = 3\n", "[gossip] must be a table"),
    ("[gossip\n", "not valid TOML"),
    ("[gossip]\nprobe_timeout_s = 5.0\n", "gossip.probe_timeout_s (5.0) must be smaller"),
])
def test_bad_files_are_reported_with_the_key(tmp_path, text, fragment):
    path = tmp_path / "meshd.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load(path)
    assert fragment in str(info.value)
    assert str(path) in str(info.value)


def test_missing_file_and_bad_profile_and_bad_override():
    with pytest.raises(ConfigError, match="does not exist"):
        load("/nonexistent/meshd.toml")
    with pytest.raises(ConfigError, match="profile 'wan' is unknown"):
        load(None, profile="wan")
    with pytest.raises(ConfigError, match="must look like section.field=value"):
        Config.lan().with_overrides(["gossip"])


def test_deploy_sample_is_current_and_uncommented_gives_the_defaults(tmp_path):
    from pathlib import Path

    from meshd._sample import sample_toml

    sample = sample_toml()
    shipped = (Path(__file__).parents[2] / "deploy" / "meshd.toml").read_text()
    assert shipped == sample, "deploy/meshd.toml is stale: regenerate it with `meshd config sample > deploy/meshd.toml`"
    setting = re.compile(r"^# [a-z_]+ = ")
    uncommented = "\n".join(line[2:] if setting.match(line) else line for line in sample.splitlines())
    path = tmp_path / "meshd.toml"
    path.write_text(uncommented)
    assert load(path) == Config.lan()
    documented = sum(1 for line in sample.splitlines() if line.startswith("# ") and not setting.match(line))
    assert documented > 60  # every field carries its documentation


def test_type_errors_and_value_errors_are_reported_in_one_round(tmp_path):
    """A wrong type does not hide the invalid values behind it (one `config check`, every problem)."""
    path = tmp_path / "meshd.toml"
    path.write_text("[agent]\ngossip_port = 'x'\nlog_level = 'loud'\n[gossip]\nprobe_timeout_s = 5.0\n"
                    "[api]\nmetrics_prt = 1\n")
    with pytest.raises(ConfigError) as info:
        load(path, overrides=["dataplane.vxlan_port=0", "agent.nmae=h1"])
    problems = info.value.problems
    for fragment in ("agent.gossip_port ('x') must be an integer", "agent.log_level ('loud') must be one of",
                     "gossip.probe_timeout_s (5.0) must be smaller", "did you mean 'api.metrics_port'?",
                     "dataplane.vxlan_port (0) must be a TCP/UDP port", "did you mean 'agent.name'?"):
        assert sum(fragment in p for p in problems) == 1, (fragment, problems)
    assert len(problems) == 6


def test_cli_config_check_reports_everything_at_once(tmp_path, capsys):
    from meshd.cli import main

    path = tmp_path / "meshd.toml"
    path.write_text("[agent]\ngossip_port = 'x'\nlog_level = 'loud'\n")
    assert main(["config", "check", str(path)]) == 1
    err = capsys.readouterr().err
    assert "2 problem(s)" in err and "gossip_port" in err and "log_level" in err


def test_the_raft_relay_fanout_is_set_from_the_raft_section(tmp_path):
    path = tmp_path / "meshd.toml"
    path.write_text("[raft]\nrelay_fanout = 0\n")
    assert load(path).raft.relay_fanout == 0
    assert Config.lan().raft.relay_fanout == 16
    assert Config.lan().with_overrides(["raft.relay_fanout=4"]).raft.relay_fanout == 4
    with pytest.raises(ConfigError, match=r"raft.relay_fanout \(-2\) must be 0 or greater"):
        Config.lan().with_overrides(["raft.relay_fanout=-2"]).validate("meshd.toml")

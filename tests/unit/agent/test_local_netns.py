"""LocalContainers: containers attached by netns path (CNI, the Docker driver) survive an agent restart."""

from pathlib import Path

from meshd.agent._containers import LocalContainers

HERE = "/proc/self/ns/net"  # a netns that exists


def test_attached_netns_paths_and_names_survive_a_restart_and_are_forgotten_when_detached(tmp_path: Path) -> None:
    f = str(tmp_path / "run" / "netns.json")
    c = LocalContainers(docker=False, netns_file=f)
    c.attached("pod1", HERE, "blue", "net1")
    c.attached("pod1", HERE, "green", None)
    c.attached("gone", "/run/netns/does-not-exist", "blue", None)
    again = LocalContainers(docker=False, netns_file=f)
    assert again.netns == {"pod1": HERE}  # a netns that no longer exists is not running
    assert again.running("pod1") and not again.running("gone")
    assert again.ifnames == {("pod1", "blue"): "net1"}
    again.detached("pod1", "blue")
    assert again.running("pod1")  # still in green
    again.detached("pod1", "green")
    assert not again.running("pod1")
    assert "pod1" not in LocalContainers(docker=False, netns_file=f).netns


def test_docker_sandboxes_get_the_first_free_eth_name(tmp_path: Path) -> None:
    c = LocalContainers(docker=False, netns_file=str(tmp_path / "netns.json"))
    assert c.free_ifname("/var/run/docker/netns/x") == "eth0"
    c.attached("ep1", "/var/run/docker/netns/x", "blue", "eth0")
    c.attached("ep2", "/var/run/docker/netns/x", "green", c.free_ifname("/var/run/docker/netns/x"))
    assert c.ifnames[("ep2", "green")] == "eth1"
    c.detached("ep1")
    assert c.free_ifname("/var/run/docker/netns/x") == "eth0"


def test_an_unreadable_record_is_ignored_with_a_warning(tmp_path: Path, caplog) -> None:
    f = tmp_path / "netns.json"
    f.write_text("{not json")
    c = LocalContainers(docker=False, netns_file=str(f))
    assert c.netns == {} and "ignoring" in caplog.text

"""Docker's network + IPAM driver and the CNI plugin with real dockerd and real podman (docs/integrations.md).

Two lab hosts: h1's agent serves the Docker plugin (a name unique to the lab:
the lab's agents share this machine's dockerd), h2's agent is asked by podman
through ``meshd-cni`` (CNI backend, a conflist pointing at h2's control socket).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meshd.api import MsgType
from tools.lab._docker import IMAGE, LABEL_HOST, LABEL_PREFIX

pytestmark = pytest.mark.skipif(shutil.which("podman") is None,
                                reason="podman is not installed (tools/setup.sh installs it)")

CNI = shutil.which("meshd-cni") or str(Path(sys.executable).parent / "meshd-cni")


def run(*argv: str, check: bool = True, env: dict[str, str] | None = None, timeout: float = 60,
        stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, input=stdin,
                       env={**os.environ, **(env or {})})
    if check and r.returncode:
        raise AssertionError(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr.strip() or r.stdout.strip()}")
    return r


class Podman:
    """podman with the CNI backend, its networks in a directory of this test only."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "bin").mkdir(parents=True)
        (root / "net.d").mkdir()
        (root / "bin" / "meshd").symlink_to(CNI)
        conf = root / "containers.conf"
        # this VM's hard limits are below podman's default rlimits: keep the container's within them;
        # crun refuses this VM's hybrid cgroups: runc (dockerd's runtime) runs podman's containers too
        conf.write_text(f'[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n'
                        f'[engine]\nruntime = "runc"\n'
                        f'[network]\nnetwork_backend = "cni"\ncni_plugin_dirs = ["{root}/bin", "/usr/lib/cni"]\n'
                        f'network_config_dir = "{root}/net.d"\n')
        self.env = {"CONTAINERS_CONF": str(conf)}
        self.names: list[str] = []

    def network(self, name: str, **plugin: Any) -> None:
        conflist = {"cniVersion": "1.0.0", "name": name,
                    "plugins": [{"type": "meshd", "dataDir": str(self.root / "data"), **plugin}]}
        (self.root / "net.d" / f"{name}.conflist").write_text(json.dumps(conflist))

    def __call__(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run("podman", *argv, check=check, env=self.env, timeout=120)

    def start(self, name: str, network: str) -> str:
        self.names.append(name)
        self("run", "-d", "--name", name, "--network", network, f"localhost/{IMAGE}", "sleep", "3600")
        return name

    def ip(self, name: str, network: str) -> str:
        out = self("inspect", name, "--format", "{{json .NetworkSettings.Networks}}").stdout
        return str(json.loads(out)[network]["IPAddress"])

    def cleanup(self) -> None:
        for name in self.names:
            self("rm", "-f", "-t", "0", name, check=False)


@pytest.fixture
def podman(tmp_path: Path) -> Iterator[Podman]:
    p = Podman(tmp_path / "podman")
    # podman keeps images apart from dockerd: the test image is copied over
    load = subprocess.run(f"docker save {IMAGE} | podman load", shell=True, capture_output=True, text=True,
                          env={**os.environ, **p.env}, timeout=120)
    assert load.returncode == 0, load.stderr
    try:
        yield p
    finally:
        p.cleanup()


class DockerNets:
    def __init__(self, plugin: str) -> None:
        self.plugin = plugin
        self.networks: list[str] = []
        self.containers: list[str] = []

    def create(self, name: str, *opts: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        r = run("docker", "network", "create", "-d", self.plugin, "--ipam-driver", self.plugin, *opts, name,
                check=check)
        if r.returncode == 0:
            self.networks.append(name)
        return r

    def start(self, name: str, network: str, *opts: str) -> str:
        self.containers.append(name)
        run("docker", "run", "-d", "--name", name, "--network", network, *opts, IMAGE, "sleep", "3600")
        return name

    def ip(self, name: str, network: str) -> str:
        out = run("docker", "inspect", name, "--format", "{{json .NetworkSettings.Networks}}").stdout
        return str(json.loads(out)[network]["IPAddress"])

    def cleanup(self) -> None:
        for name in self.containers:
            run("docker", "rm", "-f", name, check=False)
        for name in self.networks:
            run("docker", "network", "rm", name, check=False)


def ping(runtime: list[str], name: str, ip: str, env: dict[str, str] | None = None) -> bool:
    r = subprocess.run([*runtime, "exec", name, "ping", "-c", "2", "-W", "1", ip], capture_output=True, text=True,
                       timeout=30, env={**os.environ, **(env or {})})
    return r.returncode == 0


def _cluster(make_cluster: Any) -> tuple[Any, Any, str]:
    lab, cluster = make_cluster(hosts=2, started=0)
    plugin = f"meshd-{lab.prefix}"
    cluster.start("h1", extra=("--set", f"api.docker_plugin={plugin}"))
    cluster.wait("h1 leads", lambda: cluster.query("h1", MsgType.QUERY_STATUS)["raft"]["role"] == "leader",
                 timeout_s=60)
    cluster.start("h2", join=["192.0.2.11"])
    cluster.wait_members("h1", 2, timeout_s=60)
    return lab, cluster, plugin


def _endpoints(cluster: Any, network: str) -> list[dict[str, Any]]:
    return list(cluster.query("h1", MsgType.QUERY_ENDPOINTS, network=network)["endpoints"])


def test_a_docker_container_and_a_podman_container_of_one_tenant_reach_each_other_across_hosts(
        make_cluster: Any, podman: Podman) -> None:
    lab, cluster, plugin = _cluster(make_cluster)
    docker = DockerNets(plugin)
    try:
        docker.create(f"{lab.prefix}-a", "--subnet", "10.1.0.0/24", "-o", "tenant=a", "-o", "name=blue")
        docker.create(f"{lab.prefix}-b", "--subnet", "10.1.0.0/24", "-o", "tenant=b", "-o", "name=red")
        nets = cluster.wait("h2 has both networks (replication is asynchronous)", lambda: (n := {
            x["name"]: x for x in cluster.query("h2", MsgType.QUERY_NETWORKS)["networks"]}).keys() >= {"blue", "red"}
            and n, timeout_s=10)
        assert nets["blue"]["tenant"] == "a" and nets["red"]["tenant"] == "b"  # replicated: h2 knows both
        refused = docker.create(f"{lab.prefix}-c", "--subnet", "10.1.0.0/24", "-o", "tenant=a", "-o", "mode=flat",
                                check=False)
        assert refused.returncode and "exists with mode vxlan" in refused.stderr, refused.stderr

        run_dir = str(cluster.agents["h2"].run_dir)
        podman.network(f"{lab.prefix}-pa", network="blue", tenant="a", subnet="10.1.0.0/24", runDir=run_dir)
        podman.network(f"{lab.prefix}-pb", network="red", tenant="b", subnet="10.1.0.0/24", runDir=run_dir)

        # the lab's labels make the container h1's (its agent watches only those): its endpoint takes its name
        d_a = docker.start(f"{lab.prefix}-da", f"{lab.prefix}-a", "--label", f"{LABEL_HOST}=h1",
                           "--label", f"{LABEL_PREFIX}={lab.prefix}")
        d_b = docker.start(f"{lab.prefix}-db", f"{lab.prefix}-b")
        p_a = podman.start(f"{lab.prefix}-pa1", f"{lab.prefix}-pa")
        ip_da, ip_db = docker.ip(d_a, f"{lab.prefix}-a"), docker.ip(d_b, f"{lab.prefix}-b")
        ip_pa = podman.ip(p_a, f"{lab.prefix}-pa")
        # addresses come from the replicated pool: what Docker and podman show is meshd's endpoint
        blue = {e["ip"]: e for e in _endpoints(cluster, "blue")}
        assert blue[ip_da]["host"] == "h1" and blue[ip_pa]["host"] == "h2"
        assert ip_da != ip_pa
        named = lambda: {e["container"] for e in cluster.query("h1", MsgType.QUERY_STATUS)["endpoints"]}  # noqa: E731
        cluster.wait("the Docker driver's endpoint shown under its container's name", lambda: d_a in named())

        assert ping(["docker"], d_a, ip_pa), "Docker container (h1) cannot reach the podman container (h2)"
        assert ping(["podman"], p_a, ip_da, podman.env), "podman container (h2) cannot reach the Docker one (h1)"
        assert ip_pa != ip_db  # tenant b has no endpoint at that address: a reply could only come from tenant a
        assert not ping(["docker"], d_b, ip_pa), "tenant b reached tenant a's podman container"

        # another model through both paths: a flat (macvlan) network of tenant a
        docker.create(f"{lab.prefix}-lan", "--subnet", "10.77.0.0/24", "-o", "tenant=a", "-o", "mode=flat",
                      "-o", "name=lan")
        podman.network(f"{lab.prefix}-plan", network="lan", tenant="a", subnet="10.77.0.0/24", mode="flat",
                       runDir=run_dir)
        d_f = docker.start(f"{lab.prefix}-df", f"{lab.prefix}-lan")
        p_f = podman.start(f"{lab.prefix}-pf", f"{lab.prefix}-plan")
        pid = run("docker", "inspect", d_f, "--format", "{{.State.Pid}}").stdout.strip()
        assert "macvlan" in run("nsenter", "-t", pid, "-n", "ip", "-d", "link", "show", "eth0").stdout
        assert ping(["docker"], d_f, podman.ip(p_f, f"{lab.prefix}-plan"))

        # both agents killed and restarted: the interfaces stay, and the agents still know them (netns.json,
        # docker-plugin.json): traffic flows, and removal below still releases the addresses
        for host, extra in (("h1", ("--set", f"api.docker_plugin={plugin}")), ("h2", ())):
            cluster.kill(host)
            cluster.start(host, extra=extra)
        cluster.wait_members("h1", 2, timeout_s=60)
        cluster.wait("both containers running after the restarts", lambda: {
            e["ip"] for e in cluster.query("h2", MsgType.QUERY_ENDPOINTS, network="blue")["endpoints"]
            if e["running"]} == {ip_pa}, timeout_s=30)
        assert ping(["docker"], d_a, ip_pa) and ping(["podman"], p_a, ip_da, podman.env)

        # --ip, and removal releases the address (docker rm and podman rm)
        d_fixed = docker.start(f"{lab.prefix}-dfix", f"{lab.prefix}-a", "--ip", "10.1.0.77")
        assert docker.ip(d_fixed, f"{lab.prefix}-a") == "10.1.0.77"
        run("docker", "rm", "-f", d_fixed)
        podman("rm", "-f", "-t", "0", p_a)
        cluster.wait("addresses released", lambda: {e["ip"] for e in _endpoints(cluster, "blue")} == {ip_da},
                     timeout_s=30)
    finally:
        docker.cleanup()


def _cni(command: str, conf: dict[str, Any], **env: str) -> tuple[int, Any]:
    r = subprocess.run([CNI], input=json.dumps(conf), capture_output=True, text=True, timeout=60,
                       env={**os.environ, "CNI_COMMAND": command, "CNI_PATH": "/usr/lib/cni", **env})
    return r.returncode, (json.loads(r.stdout) if r.stdout.strip() else None)


def test_the_cni_plugin_follows_the_spec_for_add_check_del_gc_status_and_version(make_cluster: Any) -> None:
    lab, cluster = make_cluster(hosts=1)
    run_dir = str(cluster.agents["h1"].run_dir)
    netns = f"{lab.prefix}-cni1"
    run("ip", "netns", "add", netns)
    try:
        conf = {"cniVersion": "1.1.0", "name": "green", "type": "meshd", "subnet": "10.5.0.0/24",
                "runDir": run_dir, "dataDir": str(cluster.workdir / "cni")}
        env = {"CNI_CONTAINERID": "c0ffee" * 10, "CNI_NETNS": f"/run/netns/{netns}", "CNI_IFNAME": "net1"}
        rc, version = _cni("VERSION", {})
        assert rc == 0 and "1.1.0" in version["supportedVersions"]
        rc, status = _cni("STATUS", conf)
        assert rc == 0, status

        prev = {"cniVersion": "1.1.0", "interfaces": [{"name": "lo0"}], "ips": [], "routes": []}
        rc, result = _cni("ADD", {**conf, "prevResult": prev}, **env)
        assert rc == 0, result
        assert result["interfaces"][0] == {"name": "lo0"}  # chained after the previous plugin's result
        assert result["interfaces"][1]["name"] == "net1"
        assert result["interfaces"][1]["sandbox"] == f"/run/netns/{netns}"
        address = result["ips"][0]["address"]
        assert address.startswith("10.5.0.") and result["ips"][0]["interface"] == 1
        inside = run("ip", "netns", "exec", netns, "ip", "-o", "-4", "addr", "show", "net1").stdout
        assert address in inside  # the agent built the interface in the given netns, with the given name

        assert _cni("CHECK", conf, **env)[0] == 0
        rc, err = _cni("ADD", {**conf, "subnet": "10.6.0.0/24"}, **env)
        assert rc == 1 and err["code"] == 7 and "exists with subnet 10.5.0.0/24" in err["msg"]

        rc, err = _cni("CHECK", conf, **{**env, "CNI_CONTAINERID": "feed" * 10})
        assert rc == 1 and err["code"] == 3

        # GC releases attachments the runtime no longer knows, keeps the valid ones
        env2 = {**env, "CNI_CONTAINERID": "beef" * 10, "CNI_IFNAME": "net2", "CNI_ARGS": "IgnoreUnknown=1;IP=10.5.0.50"}
        rc, result2 = _cni("ADD", conf, **env2)
        assert rc == 0 and result2["ips"][0]["address"] == "10.5.0.50/24"  # CNI_ARGS IP= asks for the address
        valid = [{"containerID": env["CNI_CONTAINERID"], "ifname": "net1"}]
        assert _cni("GC", {**conf, "cni.dev/valid-attachments": valid})[0] == 0
        ids = {e["endpoint_id"] for e in cluster.query("h1", MsgType.QUERY_ENDPOINTS, network="green")["endpoints"]}
        assert ids == {env["CNI_CONTAINERID"]}

        assert _cni("DEL", conf, **env) == (0, None)
        assert _cni("DEL", conf, **env) == (0, None)  # idempotent
        assert cluster.query("h1", MsgType.QUERY_ENDPOINTS, network="green")["endpoints"] == []

        cluster.stop("h1")
        rc, err = _cni("STATUS", conf)
        assert rc == 1 and err["code"] == 11 and "no meshd agent runs" in err["msg"]
    finally:
        run("ip", "netns", "del", netns, check=False)


def test_docker_gets_a_clear_error_not_a_hang_while_the_cluster_cannot_commit(make_cluster: Any) -> None:
    lab, cluster = make_cluster(hosts=3, started=0)
    plugin = f"meshd-{lab.prefix}"
    cluster.start("h1", extra=("--set", f"api.docker_plugin={plugin}"))
    cluster.wait("h1 leads", lambda: cluster.query("h1", MsgType.QUERY_STATUS)["raft"]["role"] == "leader",
                 timeout_s=60)
    for host in ("h2", "h3"):
        cluster.start(host, join=["192.0.2.11"])
    cluster.wait("three voters", lambda: len(cluster.query("h1", MsgType.QUERY_STATUS)["raft"]["voters"]) == 3,
                 timeout_s=60)
    docker = DockerNets(plugin)
    try:
        docker.create(f"{lab.prefix}-a", "--subnet", "10.1.0.0/24", "-o", "tenant=a")
        cluster.kill("h2")
        cluster.kill("h3")  # h1 alone: no quorum, nothing can be committed
        name = f"{lab.prefix}-stuck"
        docker.containers.append(name)
        r = run("docker", "run", "-d", "--name", name, "--network", f"{lab.prefix}-a", IMAGE, "sleep", "60",
                check=False, timeout=60)
        assert r.returncode != 0
        assert "cannot commit" in r.stderr or "no Raft leader" in r.stderr, r.stderr
    finally:
        docker.cleanup()

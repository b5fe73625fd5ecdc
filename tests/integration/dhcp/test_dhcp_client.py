"""The DHCP client on the real kernel against a real dnsmasq on the lab's LAN: a lease for a macvlan
inside a netns (asked for on a temporary probe interface), renewal from the real interface, INIT-REBOOT
of the same address, a NAK, and RELEASE (the lease leaves dnsmasq's lease file)."""

from __future__ import annotations

import json
import sys
import time

import pytest

import netops
from netops import AttachMacvlan
from tests.integration.netops.conftest import ns_name, sh

pytestmark = pytest.mark.root

MAC = "02:6e:11:22:33:44"


def step(lab, *args: str) -> dict:
    out = lab.exec("h1", sys.executable, "-m", "tests.integration.dhcp.dhcp_steps", *args, timeout=60)
    return json.loads(out.stdout.splitlines()[-1])


def wait(what: str, fn, timeout_s: float = 10.0):
    deadline = time.monotonic() + timeout_s
    while not (got := fn()):
        assert time.monotonic() < deadline, f"timed out: {what}"
        time.sleep(0.1)
    return got


def test_lease_renew_reboot_nak_and_release_against_dnsmasq(make_lab, make_ns, tmp_path):
    lab = make_lab(1)
    server = lab.dhcp_server(tmp_path / "dnsmasq", lease_s=120)
    c1 = make_ns()

    lease = step(lab, "acquire", c1, "mdhprobe1", MAC)
    assert lease["server"] == server.address and lease["router"] == server.router and lease["prefix_len"] == 24
    assert (lease["lease_s"], lease["t1_s"], lease["t2_s"]) == (120, 60, 105)
    assert server.leases()[MAC].ip == lease["ip"]
    # the probe is gone again, in the container and in the host
    assert "mdhprobe1" not in sh("ip", "-n", ns_name(c1), "link").stdout
    assert "mdhprobe1" not in sh("ip", "-n", lab.host("h1").netns, "link").stdout

    # the endpoint's real interface with the leased address, as the reconciler builds it
    records = str(tmp_path / "records")
    op = AttachMacvlan("mvdhcp1", records, "eth0", "bridge", c1, "eth0", lease["ip"], 24, MAC, 1500, lease["router"],
                       None, "meshd ep mvdhcp1 q=-")
    with netops.in_netns(f"/run/netns/{lab.host('h1').netns}"):
        assert netops.apply([op]).errors == ()
    assert sh("ip", "netns", "exec", ns_name(c1), "ping", "-c1", "-W2", server.address).returncode == 0

    # renewal: a unicast REQUEST from the leased address; dnsmasq moves the lease's end
    before = server.leases()[MAC].expires
    time.sleep(1.1)
    renewed = step(lab, "renew", c1, "eth0", MAC, json.dumps(lease))
    assert renewed["event"] == "Bound" and renewed["renewed"] and renewed["lease"]["ip"] == lease["ip"]
    assert server.leases()[MAC].expires > before
    assert f"DHCPREQUEST(br0) {lease['ip']} {MAC}" in server.log() and f"DHCPACK(br0) {lease['ip']}" in server.log()

    # INIT-REBOOT (an agent restart): the same address again
    rebooted = step(lab, "reboot", c1, "eth0", MAC, lease["ip"])
    assert rebooted["event"] == "Bound" and rebooted["lease"]["ip"] == lease["ip"]
    # a reboot for an address the server will not give is a NAK: reported, not kept silently
    refused = step(lab, "reboot", c1, "eth0", MAC, "10.78.0.250")
    assert refused["event"] == "Lost" and "NAK" in refused["reason"], refused

    # RELEASE from the real interface: the lease leaves dnsmasq's lease file
    assert step(lab, "release", c1, "eth0", MAC, json.dumps(lease))["sent"] == 1
    wait("the lease is released", lambda: MAC not in server.leases())
    assert f"DHCPRELEASE(br0) {lease['ip']} {MAC}" in server.log()


def test_release_from_a_probe_when_the_container_is_gone(make_lab, make_ns, tmp_path):
    lab = make_lab(1)
    server = lab.dhcp_server(tmp_path / "dnsmasq")
    c1 = make_ns()
    lease = step(lab, "acquire", c1, "mdhprobe2", MAC)
    sh("ip", "netns", "del", ns_name(c1))  # the container exited
    assert step(lab, "release-probe", "-", "mdhrel2", MAC, json.dumps(lease))["sent"] is True
    wait("the lease is released", lambda: MAC not in server.leases())
    assert "mdhrel2" not in sh("ip", "-n", lab.host("h1").netns, "link").stdout


def test_no_server_gives_up_and_leaves_no_probe(make_lab, make_ns):
    lab = make_lab(1)
    c1 = make_ns()
    out = lab.exec("h1", sys.executable, "-c", (
        "import trio; from meshd import dhcp\n"
        "async def m():\n"
        "    try:\n"
        f"        await dhcp.acquire(netns={c1!r}, parent='eth0', probe='mdhprobe3', mac={MAC!r},\n"
        "                           timing=dhcp.DhcpTiming(acquire_timeout_s=2))\n"
        "    except dhcp.DhcpError as e:\n"
        "        print('refused:', e)\n"
        "trio.run(m)"), timeout=60)
    assert "refused: no DHCP server gave an address within 2s" in out.stdout
    assert "mdhprobe3" not in sh("ip", "-n", ns_name(c1), "link").stdout

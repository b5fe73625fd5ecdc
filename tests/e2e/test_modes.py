"""Network modes against the members' kernels, with real agents (issue 15 item 3).

Each agent probes which link kinds its kernel creates, says so in gossip, and
a network mode some member cannot build is refused with the host and the
missing kernel feature named.
"""

from __future__ import annotations

import pytest

import netops
from meshd.api import MsgType
from tests.e2e.test_operator import meshd

pytestmark = [pytest.mark.root]


def test_members_say_what_their_kernels_build_and_an_unbuildable_mode_is_refused(make_cluster):
    lab, cluster = make_cluster(hosts=2)
    kinds = sorted(netops.probe_link_kinds())  # one kernel for every lab host
    lacks = [k for k in netops.LINK_KINDS if k not in kinds]
    members = {m["name"]: m for m in cluster.query("h1", MsgType.QUERY_MEMBERS)["members"]}
    assert {h: (m["dataplane"], m["dataplane_missing"]) for h, m in members.items()} == \
        {"h1": (kinds, lacks), "h2": (kinds, lacks)}
    table = meshd(cluster, "h2", "members", check_code=0).stdout
    assert "KERNEL LACKS" in table and (", ".join(lacks) or "-") in table, table
    logged = (f"data plane: this kernel creates {', '.join(kinds)} links; missing: "
              f"{', '.join(netops.describe_link_kind(k) for k in lacks) or 'nothing'}")
    assert logged in cluster.agents["h1"].log.read_text()
    status = meshd(cluster, "h1", "status", check_code=0).stdout
    assert f"this kernel creates {', '.join(kinds)} links" in status, status

    if "vlan" in kinds:
        pytest.skip("this kernel has 8021q: a mode its hosts cannot build cannot be shown here")
    out = meshd(cluster, "h2", "network", "create", "lan", "10.5.0.0/24", "--mode", "vlan")
    assert out.returncode != 0 and out.stdout == ""
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "network 'lan' (mode vlan) cannot be built on host h1: its kernel has no 802.1Q VLANs (module 8021q)" \
        in out.stderr, out.stderr
    assert cluster.query("h1", MsgType.NETWORK_LIST)["networks"] == []

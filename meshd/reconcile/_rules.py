"""nftables isolation: one meshd-owned table per host namespace (pure rendering).

Table ``bridge meshd`` filters frames as they cross the tenant bridges. Its
rules never change with the state; only its sets do, so adding an endpoint is
a set-element update, never a ruleset rewrite. Ports identify networks
(``mv…`` a local endpoint, ``mx-<vni>`` the tunnel, ``mg-<vni>`` the tenant
router leg), so overlapping tenant subnets never alias each other.

Every drop rule counts (``nft list table bridge meshd``; the rule comments
name the policy), so what a policy blocked is visible.

- ``input``: nothing from a tenant port reaches the host's own stack — tenants
  can never be routed through the host between bridges (bridges also carry no
  address; each tenant routes only inside its own router namespace).
- ``deny_all``: local endpoint ports of networks under deny-all: every frame
  in or out is dropped.
- ``icc_off`` (isolate-within): (port, address) of every endpoint of the
  network — local ports and, for remote ones, the tunnel port; a frame whose
  source and destination are both in it is dropped; the gateway stays reachable.
- ``deny_to`` (deny A→B): (B's router leg, A's subnet) — A's new flows into B
  are dropped where they enter B's bridge from the router on A's host: TCP
  SYN without ACK, ICMP echo requests, and all UDP. Replies of flows that B
  opened pass. Stateless on purpose: each host routes its own containers'
  traffic, so a flow's two directions cross different hosts' routers and no
  single conntrack table sees both.
"""

from __future__ import annotations

import hashlib

from meshd.reconcile._desired import HostDesired, active_networks
from netops import leg_name, vxlan_name

FAMILY, TABLE = "bridge", "meshd"
SETS = ("icc_off", "deny_all", "deny_to")
_BODY = """\
  set icc_off { type ifname . ipv4_addr; }
  set deny_all { type ifname; }
  set deny_to { type ifname . ipv4_addr; flags interval; }
  chain forward {
    type filter hook forward priority 0; policy accept;
    iifname @deny_all counter drop comment "%(tag)s"
    oifname @deny_all counter drop comment "deny_all"
    iifname . ip saddr @icc_off oifname . ip daddr @icc_off counter drop comment "isolate"
    iifname . ip saddr @deny_to tcp flags & (syn | ack) == syn counter drop comment "deny"
    iifname . ip saddr @deny_to icmp type echo-request counter drop comment "deny"
    iifname . ip saddr @deny_to meta l4proto udp counter drop comment "deny"
  }
  chain input {
    type filter hook input priority 0; policy accept;
    iifname { "mv*", "mx-*", "mg-*" } counter drop comment "to-host"
  }
"""
TAG = "meshd rules=" + hashlib.sha1(_BODY.encode()).hexdigest()[:12]


def desired_sets(d: HostDesired) -> dict[str, frozenset[str]]:
    """The three sets' elements for this host (only networks with a local endpoint count)."""
    active = set(active_networks(d))
    subnets = {n.vni: n.subnet for n in d.networks}
    icc, deny_all, deny_to = set(), set(), set()
    for p in d.policies:
        if p.kind == "isolate" and p.a in active:
            icc |= {f"{ep.host_if} . {ep.ip}" for ep in d.local if ep.vni == p.a}
            live = d.vteps.get(p.a, frozenset())
            icc |= {f"{vxlan_name(p.a)} . {r.ip}" for r in d.remote if r.vni == p.a and r.vtep in live}
        elif p.kind == "deny_all" and p.a in active:
            deny_all |= {ep.host_if for ep in d.local if ep.vni == p.a}
        elif p.b is not None and p.a in subnets and p.b in subnets:
            pairs = [(p.a, p.b)] + ([(p.b, p.a)] if p.kind == "deny_both" else [])
            deny_to |= {f"{leg_name(dst)} . {subnets[src]}" for src, dst in pairs if dst in active}
    return {"icc_off": frozenset(icc), "deny_all": frozenset(deny_all), "deny_to": frozenset(deny_to)}


def _nft_element(element: str) -> str:
    """``mv1 . 10.1.0.2`` → ``"mv1" . 10.1.0.2``: names quoted, addresses not."""
    return " . ".join(x if x[:1].isdigit() else f'"{x}"' for x in element.split(" . "))


def _elements(verb: str, family: str, table: str, name: str, elements: frozenset[str] | set[str]) -> str:
    if not elements:
        return ""
    body = ", ".join(_nft_element(e) for e in sorted(elements))
    return f"{verb} element {family} {table} {name} {{ {body} }}\n"


def table_script(family: str, table: str, body: str, names: tuple[str, ...], sets: dict[str, frozenset[str]]) -> str:
    """Replace a whole table atomically (create-if-missing, delete, define ``body``, fill ``names``' sets)."""
    script = f"table {family} {table} {{}}\ndelete table {family} {table}\n"
    script += f"table {family} {table} {{\n{body}}}\n"
    return script + "".join(_elements("add", family, table, n, sets[n]) for n in names)


def elements_delta(family: str, table: str, names: tuple[str, ...], actual: dict[str, frozenset[str]],
                   wanted: dict[str, frozenset[str]]) -> str:
    """Set-element updates turning ``actual`` into ``wanted`` ("" when equal)."""
    script = ""
    for name in names:
        have, want = actual.get(name, frozenset()), wanted[name]
        script += _elements("delete", family, table, name, have - want)
        script += _elements("add", family, table, name, want - have)
    return script


def full_script(sets: dict[str, frozenset[str]]) -> str:
    """Replace the whole table atomically (create-if-missing, delete, define, fill)."""
    return table_script(FAMILY, TABLE, _BODY % {"tag": TAG}, SETS, sets)


def delta_script(actual: dict[str, frozenset[str]], wanted: dict[str, frozenset[str]]) -> str:
    """Set-element updates turning ``actual`` into ``wanted`` ("" when equal)."""
    return elements_delta(FAMILY, TABLE, SETS, actual, wanted)


# ---------------------------------------------------------------- external access (NAT)
# NAT cannot live in a bridge-family table, so external access adds a second
# meshd table, ``ip meshd``, present only while some network has external access:
# tenant routers' uplinks (100.64.0.0/10) are masqueraded out of the host, and
# uplinks never forward to each other (tenants never meet on the host).
UPLINK_NET = "100.64.0.0/10"
_NAT_BODY = """\
  chain postrouting {
    type nat hook postrouting priority 100; policy accept;
    ip saddr %(net)s oifname != "mu*" masquerade comment "%(tag)s"
  }
  chain forward {
    type filter hook forward priority 0; policy accept;
    iifname "mu*" oifname "mu*" drop
  }
"""
NAT_FAMILY = "ip"
NAT_TAG = "meshd nat=" + hashlib.sha1(_NAT_BODY.encode()).hexdigest()[:12]


def nat_script() -> str:
    body = _NAT_BODY % {"net": UPLINK_NET, "tag": NAT_TAG}
    return f"table ip {TABLE} {{}}\ndelete table ip {TABLE}\ntable ip {TABLE} {{\n{body}}}\n"


def nat_delete_script() -> str:
    return f"delete table ip {TABLE}\n"

"""Partitions: nftables bridge filtering inside the underlay netns.

One table per lab, named after the prefix, in the underlay namespace::

    table bridge <prefix> {
        set cut { type ifname; }
        set cut_pairs { type ifname . ifname; }
        chain forward {
            type filter hook forward priority 0; policy accept;
            iifname @cut drop
            oifname @cut drop
            ether type != arp iifname . oifname @cut_pairs drop
        }
    }

Cutting host h1 adds its bridge port "h1" to `cut`: every frame from or to
that port (ARP included) is dropped at the switch, as if its cable were
pulled, while the host's own interface stays up. Cutting h1 from h2 adds the
pair (h1, h2), and unless one-way also (h2, h1), to `cut_pairs`: frames from
port h1 to port h2 are dropped, except ARP, so that a one-way cut really is
one-way (h2 can still resolve and reach h1). Healing removes the elements.
The table lives and dies with the underlay namespace.
"""

from __future__ import annotations

import json

from tools.lab._net import underlay_ns
from tools.lab._sh import run

SET = "cut"
PAIRS = "cut_pairs"


def _nft(prefix: str, *args: str, check: bool = True, input_text: str | None = None) -> str:
    ns = underlay_ns(prefix)
    argv = ["ip", "netns", "exec", ns, "nft", *args]
    return run(argv, check=check, input_text=input_text, what=f"nft table bridge {prefix} in netns {ns}").stdout


def table_exists(prefix: str) -> bool:
    out = _nft(prefix, "-j", "list", "tables", "bridge")
    tables = [o["table"]["name"] for o in json.loads(out or "{}").get("nftables", []) if "table" in o]
    return prefix in tables


def ensure_table(prefix: str) -> None:
    """Create the lab's partition table, if missing (one atomic nft transaction)."""
    if table_exists(prefix):
        return
    ruleset = (
        f"table bridge {prefix} {{\n"
        f"  set {SET} {{ type ifname; }}\n"
        f"  set {PAIRS} {{ type ifname . ifname; }}\n"
        "  chain forward {\n"
        "    type filter hook forward priority 0; policy accept;\n"
        f"    iifname @{SET} drop\n"
        f"    oifname @{SET} drop\n"
        f"    ether type != arp iifname . oifname @{PAIRS} drop\n"
        "  }\n"
        "}\n"
    )
    _nft(prefix, "-f", "-", input_text=ruleset)


def _elements(prefix: str, name: str) -> list:
    out = _nft(prefix, "-j", "list", "set", "bridge", prefix, name)
    for obj in json.loads(out or "{}").get("nftables", []):
        if "set" in obj:
            return obj["set"].get("elem", [])
    return []


def cut_ports(prefix: str) -> set[str]:
    """Bridge ports (= host names) currently cut off from everyone."""
    return set(_elements(prefix, SET))


def cut_pairs(prefix: str) -> set[tuple[str, str]]:
    """Directed (from, to) port pairs whose frames are dropped."""
    return {tuple(e["concat"]) for e in _elements(prefix, PAIRS)}


def _pair(a: str, b: str) -> str:
    return f'"{a}" . "{b}"'


def cut(prefix: str, port: str, peer: str | None = None, oneway: bool = False) -> None:
    """Cut `port` from everyone, or (with `peer`) from `peer` only; idempotent."""
    ensure_table(prefix)
    if peer is None:
        _nft(prefix, "add", "element", "bridge", prefix, SET, f'{{ "{port}" }}')
        return
    pairs = [_pair(port, peer)] if oneway else [_pair(port, peer), _pair(peer, port)]
    _nft(prefix, "add", "element", "bridge", prefix, PAIRS, "{ " + ", ".join(pairs) + " }")


def heal(prefix: str, port: str, peer: str | None = None) -> None:
    """Undo cuts: of `port` entirely (whole-host and every pair), or of the pair with `peer`."""
    if not table_exists(prefix):
        return
    if peer is None and port in cut_ports(prefix):
        _nft(prefix, "delete", "element", "bridge", prefix, SET, f'{{ "{port}" }}')
    wanted = {(port, peer), (peer, port)} if peer else None
    drop = [p for p in cut_pairs(prefix) if (p in wanted if wanted else port in p)]
    if drop:
        _nft(prefix, "delete", "element", "bridge", prefix, PAIRS, "{ " + ", ".join(_pair(*p) for p in drop) + " }")

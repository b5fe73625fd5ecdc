"""Partitions: nftables bridge filtering inside the underlay netns.

One table per lab, named after the prefix, in the underlay namespace::

    table bridge <prefix> {
        set cut { type ifname; }
        chain forward {
            type filter hook forward priority 0; policy accept;
            iifname @cut drop
            oifname @cut drop
        }
    }

Cutting host h1 adds its bridge port "h1" to the set: every frame from or to
that port (ARP included) is dropped at the switch, as if its cable were
pulled, while the host's own interface stays up. Healing removes it. The
table lives and dies with the underlay namespace.
"""

from __future__ import annotations

import json

from tools.lab._net import underlay_ns
from tools.lab._sh import run

SET = "cut"


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
        "  chain forward {\n"
        "    type filter hook forward priority 0; policy accept;\n"
        f"    iifname @{SET} drop\n"
        f"    oifname @{SET} drop\n"
        "  }\n"
        "}\n"
    )
    _nft(prefix, "-f", "-", input_text=ruleset)


def cut_ports(prefix: str) -> set[str]:
    """Bridge ports (= host names) currently cut off."""
    out = _nft(prefix, "-j", "list", "set", "bridge", prefix, SET)
    for obj in json.loads(out or "{}").get("nftables", []):
        if "set" in obj:
            return set(obj["set"].get("elem", []))
    return set()


def cut(prefix: str, port: str) -> None:
    ensure_table(prefix)
    _nft(prefix, "add", "element", "bridge", prefix, SET, f'{{ "{port}" }}')


def heal(prefix: str, port: str) -> None:
    if table_exists(prefix) and port in cut_ports(prefix):
        _nft(prefix, "delete", "element", "bridge", prefix, SET, f'{{ "{port}" }}')

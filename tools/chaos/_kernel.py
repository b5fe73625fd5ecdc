"""Read what a lab host's kernel holds, with iproute2 and nft (not with netops, which is under test)."""

from __future__ import annotations

import json
import os

from netops import is_owned_link
from tools.chaos._expect import NFT_SETS, KernelView
from tools.lab import Lab, run

NETNS_DIR = "/run/netns"


def read_kernel(lab: Lab, host: str, router_prefix: str) -> KernelView:
    """The meshd-owned links, FDB and neighbour entries, isolation sets and router namespaces of ``host``."""
    ns = lab.host(host).netns
    links = {link["ifname"] for link in _json(["ip", "-n", ns, "-j", "link", "show"]) if is_owned_link(link["ifname"])}
    fdb = set()
    for e in _json(["bridge", "-n", ns, "-j", "fdb", "show"]):
        dev = e.get("ifname", "")
        if not dev.startswith("mx-"):
            continue
        if "self" in e.get("flags", []) and "dst" in e:
            fdb.add((dev, e["mac"], e["dst"]))  # the VXLAN's own table: MAC -> VTEP
        elif e.get("master") and e.get("state") == "static":
            fdb.add((dev, e["mac"], ""))  # the bridge's entry pointing at the tunnel port
    neigh = {(e["dev"], e["dst"], e.get("lladdr", "")) for e in _json(["ip", "-n", ns, "-j", "-4", "neigh", "show"])
             if e.get("dev", "").startswith("mx-") and "PERMANENT" in e.get("state", [])}
    return KernelView(frozenset(links), frozenset(fdb), frozenset(neigh), _nft_sets(ns), _routers(router_prefix))


def _json(argv: list[str]) -> list[dict]:
    return json.loads(run(argv, what="chaos kernel read").stdout or "[]")


def _nft_sets(ns: str) -> dict[str, frozenset[str]]:
    proc = run(["ip", "netns", "exec", ns, "nft", "-j", "list", "table", "bridge", "meshd"], check=False)
    if proc.returncode != 0:
        return {name: frozenset() for name in NFT_SETS}  # no table yet: no elements
    sets = {}
    for obj in json.loads(proc.stdout).get("nftables", []):
        if "set" in obj and obj["set"]["name"] in NFT_SETS:
            sets[obj["set"]["name"]] = frozenset(_element(e) for e in obj["set"].get("elem", []))
    return sets


def _element(e: object) -> str:
    """nft's JSON element as the canonical "a . b" text (prefixes as addr/len)."""
    if isinstance(e, dict) and "elem" in e:
        return _element(e["elem"]["val"])
    if isinstance(e, dict) and "concat" in e:
        return " . ".join(_element(part) for part in e["concat"])
    if isinstance(e, dict) and "prefix" in e:
        return f"{e['prefix']['addr']}/{e['prefix']['len']}"
    if isinstance(e, dict) and "range" in e:
        return "-".join(str(x) for x in e["range"])
    return str(e)


def _routers(prefix: str) -> frozenset[str]:
    try:
        return frozenset(n for n in os.listdir(NETNS_DIR) if n.startswith(prefix))
    except FileNotFoundError:
        return frozenset()

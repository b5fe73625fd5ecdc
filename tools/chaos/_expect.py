"""What one host's kernel must hold, from the replicated state and the live hosts (pure).

This restates docs/netops.md from the outside, from the API's view of the
state (NETWORK_LIST, QUERY_ENDPOINTS, POLICY_LIST) rather than from meshd's
own planner, so a planner bug shows up as a difference:

* a network is *active* on a host when one of the host's running containers
  is in it, or when it is a routed network (it has a gateway) of a tenant
  that has a routed network with a running container there;
* per active network: bridge ``mb-<vni>``, VXLAN ``mx-<vni>``, router leg
  ``mg-<vni>`` (routed networks); per running local endpoint its host veth;
  per tenant with an active routed network its router namespace;
* per active network and *live* remote host that has endpoints in it: the
  flood entry ``00:00:00:00:00:00 dst <vtep>``; per endpoint there (running
  or not): ``MAC dst <vtep>`` on the VXLAN, ``MAC master static`` on the
  bridge port, and the permanent neighbour ``IP lladdr MAC``;
* the isolation sets of table ``bridge meshd`` (``icc_off``, ``deny_all``,
  ``deny_to``) as docs/netops.md "Isolation" describes them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from meshd.reconcile import host_if_name, router_name

ZERO_MAC = "00:00:00:00:00:00"
NFT_SETS = ("icc_off", "deny_all", "deny_to")


@dataclass(frozen=True, slots=True)
class KernelView:
    """The meshd-owned objects of one host's network namespace (read from the kernel, or expected)."""

    links: frozenset[str]
    fdb: frozenset[tuple[str, str, str]]  # (device, MAC, VTEP or "" for the bridge's static entry)
    neigh: frozenset[tuple[str, str, str]]  # (device, IP, MAC)
    nft: Mapping[str, frozenset[str]]  # set name -> elements ("mv1a2b . 10.1.0.2")
    routers: frozenset[str]


@dataclass(frozen=True, slots=True)
class StateView:
    """One replica's state as the API lists it."""

    networks: tuple[dict, ...]
    endpoints: tuple[dict, ...]
    policies: tuple[dict, ...]


def active_vnis(state: StateView, running: Iterable[tuple[str, str]]) -> set[int]:
    """VNIs this host builds, given its running ``(container id, network)`` endpoints."""
    nets = {n["name"]: n for n in state.networks}
    local = {nets[net]["vni"] for _cid, net in running if net in nets}
    tenants = {n["tenant"] for n in nets.values() if n["vni"] in local and n.get("gateway")}
    return local | {n["vni"] for n in nets.values() if n.get("gateway") and n["tenant"] in tenants}


def expected_kernel(host: str, state: StateView, live: Mapping[str, str], running_ids: Iterable[str],
                    router_prefix: str) -> KernelView:
    """The objects ``host`` must hold.

    Args:
      host: the host's member name.
      state: its replica.
      live: ``{host: VTEP}`` of the hosts that are alive (this one may be included).
      running_ids: the container ids running on this host.
      router_prefix: this host's tenant-router netns prefix.
    """
    nets = {n["name"]: n for n in state.networks}
    ids = set(running_ids)
    running = [(e["endpoint_id"], e["network"]) for e in state.endpoints
               if e["host"] == host and e["endpoint_id"] in ids and e["network"] in nets]
    active = active_vnis(state, running)
    by_vni = {n["vni"]: n for n in nets.values()}
    links = {f"{p}-{v}" for v in active for p in ("mb", "mx")}
    links |= {f"mg-{v}" for v in active if by_vni[v].get("gateway")}
    links |= {host_if_name(cid, nets[net]["vni"]) for cid, net in running}
    routers = {router_name(by_vni[v]["tenant"], router_prefix) for v in active if by_vni[v].get("gateway")}
    fdb: set[tuple[str, str, str]] = set()
    neigh: set[tuple[str, str, str]] = set()
    remote: dict[int, list[dict]] = {}
    for e in state.endpoints:
        vni = nets[e["network"]]["vni"] if e["network"] in nets else None
        if vni in active and e["host"] != host and e["host"] in live:
            vx, vtep = f"mx-{vni}", live[e["host"]]
            fdb |= {(vx, ZERO_MAC, vtep), (vx, e["mac"], vtep), (vx, e["mac"], "")}
            neigh.add((vx, e["ip"], e["mac"]))
            remote.setdefault(vni, []).append(e)
    return KernelView(frozenset(links), frozenset(fdb), frozenset(neigh),
                      _nft_sets(state, nets, active, running, remote), frozenset(routers))


def _nft_sets(state: StateView, nets: dict[str, dict], active: set[int], running: list[tuple[str, str]],
              remote: dict[int, list[dict]]) -> dict[str, frozenset[str]]:
    ips = {(e["endpoint_id"], e["network"]): e["ip"] for e in state.endpoints}
    sets: dict[str, set[str]] = {name: set() for name in NFT_SETS}
    for p in state.policies:
        net, peer = nets.get(p["network"]), nets.get(p.get("peer") or "")
        if net is None:
            continue
        vni = net["vni"]
        local = [(cid, n) for cid, n in running if n == p["network"]]
        if p["kind"] == "isolate-within" and vni in active:
            sets["icc_off"] |= {f"{host_if_name(cid, vni)} . {ips[(cid, n)]}" for cid, n in local}
            sets["icc_off"] |= {f"mx-{vni} . {e['ip']}" for e in remote.get(vni, [])}
        elif p["kind"] == "deny-all":
            sets["deny_all"] |= {host_if_name(cid, vni) for cid, _n in local}
        elif p["kind"] in ("deny-one-way", "deny-both") and peer is not None:
            pairs = [(net, peer)] + ([(peer, net)] if p["kind"] == "deny-both" else [])
            sets["deny_to"] |= {f"mg-{dst['vni']} . {src['subnet']}" for src, dst in pairs if dst["vni"] in active}
    return {name: frozenset(elements) for name, elements in sets.items()}


@dataclass(frozen=True, slots=True)
class KernelDiff:
    wrong: tuple[str, ...]  # missing objects, stale or missing entries
    leaked: tuple[str, ...]  # objects meshd owns that nothing in the state explains
    compared: int

    @property
    def clean(self) -> bool:
        return not self.wrong and not self.leaked


def diff_kernel(host: str, want: KernelView, have: KernelView) -> KernelDiff:
    """Missing and stale entries (``wrong``) and unexplained objects (``leaked``) on ``host``."""
    wrong: list[str] = []
    leaked: list[str] = []
    for what, w, h in (("fdb", want.fdb, have.fdb), ("neigh", want.neigh, have.neigh)):
        wrong += [f"{host}: {what} {' '.join(filter(None, e))} missing" for e in sorted(w - h)]
        wrong += [f"{host}: {what} {' '.join(filter(None, e))} stale" for e in sorted(h - w)]
    pairs = [("device", want.links, have.links), ("router netns", want.routers, have.routers)]
    pairs += [(f"nft {name}", want.nft.get(name, frozenset()), have.nft.get(name, frozenset())) for name in NFT_SETS]
    for what, ws, hs in pairs:
        wrong += [f"{host}: {what} {e} missing" for e in sorted(ws - hs)]
        leaked += [f"{host}: {what} {e} leaked" for e in sorted(hs - ws)]
    compared = sum(len(x | y) for _w, x, y in pairs) + len(want.fdb | have.fdb) + len(want.neigh | have.neigh)
    return KernelDiff(tuple(wrong), tuple(leaked), compared)

"""Choosing a network model: the shipped regression, then the hard constraints.

Theory of operation
-------------------
:func:`choose_mode` answers in two steps, as seed 000 section 3.2 does and
then some:

1. the binary logistic regression of ``_coefficients.py`` (trained by
   ``tools/advisor_train.py`` on vectors the expert of :mod:`._expert`
   labelled) turns the four weights into ``P(flat) = σ(b + Σ c_i · w_i / 10)``
   and picks flat when ``P(flat) > 0.5``;
2. the hard constraints (:class:`Constraints`) then rule models out, and
   always win: a subnet that overlaps another tenant's network, or a tenant
   whose networks already overlap other tenants', needs the overlay; hosts
   on more than one L2 segment rule flat out; a member whose kernel lacks a
   link kind a model needs rules that model out. When both are ruled out,
   :class:`NoModelFits` says why.

The reasons name the needs in the order they moved the regression (the
largest ``|c_i · w_i / 10|`` first) and every constraint that decided. All of
it is pure: the caller gathers the constraints (``meshd network advise`` asks
the agent) and passes them in.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from . import _coefficients as shipped
from ._expert import MODES, NEEDS

WEIGHT_MIN, WEIGHT_MAX = 0, 10

#: what each need is, for --help and the reasons
NEED_MEANINGS = {
    "security": "isolation between tenants and from the LAN",
    "scale": "how many networks, containers and hosts",
    "throughput": "transmission efficiency: bytes per second and attach time",
    "extensibility": "growing across subnets and sites without touching the LAN",
}

#: why a need pulls toward a model, from the expert's properties (docs/advisor.md)
_PULLS = {
    ("security", "vxlan"): "a segment per network, meshd policies, overlapping subnets between tenants",
    ("security", "flat"): "no unauthenticated tunnel port on the underlay",
    ("scale", "vxlan"): "16,777,215 VNIs; addresses and MACs off the LAN",
    ("scale", "flat"): "no per-remote-endpoint entries on every host",
    ("extensibility", "vxlan"): "crosses L3 segments; no switch or LAN address changes",
    ("extensibility", "flat"): "containers reachable from the LAN without NAT",
}


@dataclass(frozen=True)
class Model:
    """The logistic regression: ``P(flat) = σ(bias + Σ coef_i · weight_i / feature_scale)``."""

    coef: tuple[float, float, float, float]
    bias: float
    feature_scale: float
    inputs: Mapping[str, float]

    def p_flat(self, weights: Weights) -> float:
        z = self.bias + sum(c * w / self.feature_scale for c, w in zip(self.coef, weights.values(), strict=True))
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))

    def contributions(self, weights: Weights) -> dict[str, float]:
        """Each need's share of the logit (positive: toward flat)."""
        return {n: c * w / self.feature_scale for n, c, w in zip(NEEDS, self.coef, weights.values(), strict=True)}


#: the model shipped with the package (regenerate: ``python -m tools.advisor_train --write``)
MODEL = Model(shipped.COEF, shipped.BIAS, shipped.FEATURE_SCALE, shipped.INPUTS)


@dataclass(frozen=True)
class Weights:
    """The four needs of seed 000 Table 1, each a whole number 0 (does not matter) to 10 (must have).

    Raises:
      ValueError: a weight outside 0..10, or not a whole number.
    """

    security: int
    scale: int
    throughput: int
    extensibility: int

    def __post_init__(self) -> None:
        for need, value in zip(NEEDS, self.values(), strict=True):
            if not isinstance(value, int) or isinstance(value, bool) or not WEIGHT_MIN <= value <= WEIGHT_MAX:
                raise ValueError(f"{need} must be a whole number {WEIGHT_MIN}..{WEIGHT_MAX}, got {value!r}")

    def values(self) -> tuple[int, int, int, int]:
        return (self.security, self.scale, self.throughput, self.extensibility)


@dataclass(frozen=True, kw_only=True)
class Constraints:
    """What the cluster says, gathered by the caller; the defaults mean "not checked".

    ``overlaps``: other tenants' networks the new subnet overlaps (e.g.
    ``"red (tenant b, 10.1.0.0/16)"``); ``tenant_overlaps``: the tenant's
    networks that overlap other tenants'; ``shared_l2``: whether all hosts
    share one L2 segment (None: not known); ``unbuildable``: ``(mode, host,
    missing link kinds)`` per member that cannot build a model; ``checked``:
    whether a running agent was asked at all; ``not_checked``: what the
    caller could not check although it asked (in words).
    """

    checked: bool = False
    not_checked: tuple[str, ...] = ()
    overlaps: tuple[str, ...] = ()
    tenant_overlaps: tuple[str, ...] = ()
    shared_l2: bool | None = None
    unbuildable: tuple[tuple[str, str, tuple[str, ...]], ...] = ()

    def ruled_out(self) -> dict[str, list[str]]:
        """``{mode: [why, ...]}`` for every model a constraint rules out."""
        out: dict[str, list[str]] = {}
        if self.overlaps:
            out.setdefault("flat", []).append(
                f"the subnet overlaps another tenant's network ({', '.join(self.overlaps)}): "
                "overlapping subnets need the overlay")
        if self.tenant_overlaps:
            out.setdefault("flat", []).append(
                f"the tenant's networks already overlap other tenants' ({', '.join(self.tenant_overlaps)}): "
                "its address plan relies on the overlay")
        if self.shared_l2 is False:
            out.setdefault("flat", []).append("the hosts do not share one L2 segment: macvlan cannot cross routers")
        for mode, host, kinds in self.unbuildable:
            out.setdefault(mode, []).append(f"host {host}'s kernel lacks {', '.join(kinds)} links")
        return out

    def unchecked(self) -> list[str]:
        """The constraints nobody checked, in words."""
        if not self.checked:
            return ["the cluster's constraints (overlapping subnets, shared L2 segment, members' kernels)"]
        return [*self.not_checked, *(["whether the hosts share one L2 segment"] if self.shared_l2 is None else [])]


class NoModelFits(ValueError):
    """Every model is ruled out by a hard constraint; the message says why."""


@dataclass(frozen=True)
class Advice:
    """The chosen mode, the regression's probability of it, and the reasons.

    ``probability`` is the regression's ``P(mode)`` even when a constraint
    overrode it (then it is below 0.5 and ``overridden`` is true).
    """

    mode: str
    probability: float
    p_flat: float
    regression_mode: str
    overridden: bool
    reasons: tuple[str, ...]
    ruled_out: Mapping[str, tuple[str, ...]]
    unchecked: tuple[str, ...]

    def as_map(self) -> dict[str, object]:
        return {"mode": self.mode, "probability": round(self.probability, 4), "p_flat": round(self.p_flat, 4),
                "regression_mode": self.regression_mode, "overridden": self.overridden,
                "reasons": list(self.reasons), "ruled_out": {m: list(w) for m, w in self.ruled_out.items()},
                "unchecked": list(self.unchecked)}


def choose_mode(weights: Weights, constraints: Constraints | None = None, model: Model = MODEL) -> Advice:
    """The model for ``weights`` within ``constraints`` (None: nothing checked).

    Raises:
      NoModelFits: the constraints rule out both models.
    """
    constraints = constraints or Constraints()
    p_flat = model.p_flat(weights)
    regression_mode = "flat" if p_flat > 0.5 else "vxlan"
    ruled_out = {m: tuple(w) for m, w in constraints.ruled_out().items()}
    allowed = [m for m in MODES if m not in ruled_out]
    if not allowed:
        raise NoModelFits("no network model fits: " + "; ".join(
            f"{m} is ruled out: {'; '.join(why)}" for m, why in ruled_out.items()))
    mode = regression_mode if regression_mode in allowed else allowed[0]
    reasons = [f"regression: P(flat) = {p_flat:.2f}, so {regression_mode}", *_need_reasons(weights, model)]
    for m, why in ruled_out.items():
        verb = "overrides the regression" if m == regression_mode else "agrees with the regression"
        reasons += [f"hard constraint ({verb}): {m} is ruled out: {w}" for w in why]
    return Advice(mode, p_flat if mode == "flat" else 1.0 - p_flat, p_flat, regression_mode,
                  mode != regression_mode, tuple(reasons), ruled_out, tuple(constraints.unchecked()))


def advise(security: int, scale: int, throughput: int, extensibility: int,
           constraints: Constraints | None = None) -> Advice:
    """:func:`choose_mode` with the four weights spelled out (each 0..10).

    Raises:
      ValueError: a weight outside 0..10.
      NoModelFits: the constraints rule out both models.
    """
    return choose_mode(Weights(security, scale, throughput, extensibility), constraints)


def _need_reasons(weights: Weights, model: Model) -> list[str]:
    """One line per need that moved the regression, the largest pull first."""
    pulls = sorted(model.contributions(weights).items(), key=lambda kv: -abs(kv[1]))
    lines = []
    for rank, (need, pull) in enumerate(p for p in pulls if p[1]):
        toward = "flat" if pull > 0 else "vxlan"
        weight = getattr(weights, need)
        lead = "weighed most" if rank == 0 else "weighed"
        lines.append(f"{need} {weight}/10 {lead}, toward {toward} ({pull:+.2f} of the logit): "
                     f"{_why(need, toward, model)}")
    if model.bias:
        lines.append(f"bias {model.bias:+.2f}, toward {'flat' if model.bias > 0 else 'vxlan'}: where the regression "
                     "starts with every need at 0")
    return lines


def _why(need: str, toward: str, model: Model) -> str:
    if need != "throughput":
        return _PULLS.get((need, toward), "")
    v, f = model.inputs["vxlan_throughput_ratio"], model.inputs["flat_throughput_ratio"]
    return f"macvlan moved {f:.2f}x the raw underlay's throughput, meshd's VXLAN {v:.2f}x (docs/benchmarks.md)"


# --- gathering constraints (pure: the caller fetched the maps) ---------------------------


def subnet_overlaps(subnet: str | None, tenant: str, networks: Iterable[Mapping[str, object]]
                    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(other tenants' networks that overlap subnet, tenant's networks that overlap other tenants')``.

    ``networks`` are maps with ``name``, ``tenant`` and ``subnet`` (QUERY
    NETWORK_LIST's rows); ``subnet`` None: the first part is empty.

    Raises:
      ValueError: ``subnet`` is not an IPv4 CIDR.
    """
    new = ipaddress.IPv4Network(subnet, strict=False) if subnet else None
    nets = [(str(n["name"]), str(n["tenant"]), ipaddress.ip_network(str(n["subnet"]), strict=False))
            for n in networks]
    others = [(name, t, net) for name, t, net in nets if t != tenant]
    overlaps = tuple(f"{name} (tenant {t}, {net})" for name, t, net in others if new and net.overlaps(new))
    own = tuple(sorted({f"{name} ({net})" for name, t, net in nets if t == tenant
                        for _, _, other in others if net.overlaps(other)}))
    return overlaps, own


def same_segment(addresses: Iterable[str], local: str, prefix_len: int) -> bool:
    """Whether every address lies in ``local``'s IPv4 /``prefix_len`` (an approximation of one L2 segment).

    Raises:
      ValueError: an address that is not IPv4, or a prefix length outside 0..32.
    """
    segment = ipaddress.IPv4Network(f"{local}/{prefix_len}", strict=False)
    return all(ipaddress.IPv4Address(a) in segment for a in addresses)


def cluster_constraints(members: Iterable[Mapping[str, object]], networks: Iterable[Mapping[str, object]],
                        tenant: str, subnet: str | None, needs: Mapping[str, Iterable[str]], *,
                        shared_l2: bool | None = None, l2_prefix: int | None = None,
                        local_address: str | None = None) -> Constraints:
    """The hard constraints from a running cluster's maps, as ``meshd network advise`` and the web
    view's ``/api/advise`` gather them.

    Args:
      members: QUERY_MEMBERS rows (``name``, ``state``, ``address``, ``dataplane_missing``); left
        members are ignored.
      networks: NETWORK_LIST rows (``name``, ``tenant``, ``subnet``).
      tenant: the new network's tenant.
      subnet: the new network's subnet, or None (then overlaps with it are not checked).
      needs: per mode, the link kinds a host needs to build it (``meshd.agent.NEEDS``).
      shared_l2: what the caller states about the L2 segment (None: not stated).
      l2_prefix: check that every member's address lies in ``local_address``'s /``l2_prefix``.
      local_address: this host's underlay address (with ``l2_prefix``).

    Raises:
      ValueError: ``subnet`` is not an IPv4 CIDR, or an address is not IPv4.
    """
    live = [m for m in members if m.get("state") != "left"]
    overlaps, tenant_overlaps = subnet_overlaps(subnet, tenant, networks)
    not_checked = () if subnet else ("whether the new network's subnet overlaps another tenant's (no subnet given)",)
    unbuildable = []
    for m in live:
        missing = m.get("dataplane_missing")
        if not isinstance(missing, (list, tuple)) or not missing:
            continue
        for mode in MODES:
            kinds = tuple(k for k in needs.get(mode, ()) if k in missing)
            if kinds:
                unbuildable.append((mode, str(m["name"]), kinds))
    if l2_prefix is not None and local_address:
        shared_l2 = same_segment([str(m["address"]) for m in live if m.get("address")], local_address, l2_prefix)
    return Constraints(checked=True, not_checked=not_checked, overlaps=overlaps, tenant_overlaps=tenant_overlaps,
                       shared_l2=shared_l2, unbuildable=tuple(unbuildable))


def create_command(mode: str, tenant: str | None, subnet: str | None) -> str:
    """The ``meshd network create`` that makes a network of ``mode``."""
    return " ".join(["meshd network create NAME", subnet or "SUBNET", *(["--tenant", tenant] if tenant else []),
                     "--mode", mode])

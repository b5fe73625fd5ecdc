"""The expert: a documented scoring of meshd's two network models against a requirement vector.

Theory of operation
-------------------
Seed 000 (section 3.2) labels 2,000 random requirement vectors "by an expert"
and trains a logistic regression on them; it does not say what its expert
knew. This expert is written down, so its labels can be checked:

1. Each model gets a *quality* in 0..1 per need, from what it is in this lab:

   * **security**, **scale**, **extensibility**: the share of the need's
     structural properties (:data:`PROPERTIES`, one row each, with where it
     comes from) that the model has;
   * **throughput** ("transmission efficiency"): measured, from the benchmark
     report (:func:`measured_inputs`): ``THROUGHPUT_SHARE`` × the data-plane
     throughput ratio to the raw underlay (the mean of 1 and 4 iperf3
     streams, capped at 1: no model beats the wire) + ``ATTACH_SHARE`` × the
     fastest attach p50 over the model's.

2. A stated weight ``r`` (0..10) counts as ``(r / 10) ** IMPORTANCE_POWER``:
   a 10 is a requirement and a 5 a preference, so a 10 counts four times a
   5 (with the power 2), not twice. This is the expert's one non-linearity;
   the regression sees the plain weights, so it cannot copy the expert
   exactly (the paper's 0.947 accuracy shows its expert was not linear in
   the weights either).

3. ``margin = Σ importance(r_need) × (quality(flat, need) − quality(vxlan, need))``;
   the label is ``flat`` (1, the paper's "macvlan") when the margin is above
   zero, else ``vxlan`` (0): a tie goes to the model meshd has always built.

The expert is deterministic: the same measured inputs and vector give the
same label. Everything here is pure (no I/O); ``tools/advisor_train.py``
reads docs/benchmarks.json and passes its medians to :func:`measured_inputs`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

#: the four needs of seed 000, Table 1, in the paper's order (the regression's features)
NEEDS = ("security", "scale", "throughput", "extensibility")
#: the two models; label 0 and 1 as in seed 000 (0 = the VXLAN overlay, 1 = macvlan)
MODES = ("vxlan", "flat")

#: a stated weight counts as (weight / 10) ** IMPORTANCE_POWER
IMPORTANCE_POWER = 2.0
#: how the throughput quality splits between the data-plane ratio and the attach cost
THROUGHPUT_SHARE = 0.8
ATTACH_SHARE = 0.2


@dataclass(frozen=True)
class Property:
    """One structural property of a need: which model has it, and where that comes from."""

    need: str
    text: str
    vxlan: bool
    flat: bool
    source: str


#: the structural properties; a model's quality for a need is the share of that need's rows it has
PROPERTIES: tuple[Property, ...] = (
    Property("security", "each network is its own broadcast domain, apart from the LAN's", True, False,
             "docs/netops.md: a bridge + VXLAN per VNI; macvlan children sit on the parent NIC's LAN"),
    Property("security", "meshd isolation policies (seed 000 Table 4) apply", True, False,
             "docs/netops.md: nft on the tenant router and bridges; not built for flat"),
    Property("security", "tenants may use overlapping subnets", True, False,
             "docs/state.md: subnets overlap across tenants; a flat subnet lies on the one LAN"),
    Property("security", "containers of one network can be isolated from each other", True, True,
             "policy isolate-within; macvlan 'private' mode (seed 002)"),
    Property("security", "nobody on the underlay can inject frames into a network", False, True,
             "docs/operators-guide.md: plain VXLAN on 4789/udp is unauthenticated, the VNI is the only key"),
    Property("scale", "more networks than one LAN has room for (16,777,215 VNIs)", True, False,
             "meshd.state VNI_MAX; a flat network takes its addresses from the LAN's subnet"),
    Property("scale", "a network's address space does not come out of the LAN's", True, False,
             "seed 002 Flat: the container subnet is the hosts' LAN"),
    Property("scale", "container MACs stay off the physical switches' tables", True, False,
             "VXLAN carries them inside UDP between VTEPs; macvlan puts every container MAC on the LAN"),
    Property("scale", "no per-remote-endpoint entries on every host", False, True,
             "docs/netops.md: FDB + neighbour entry per remote endpoint; docs/benchmarks.md: the 1,000th "
             "attach costs about 1.4x the first"),
    Property("extensibility", "hosts may sit on different L3 segments (routers between them)", True, False,
             "VXLAN is UDP over any routed underlay; macvlan needs one L2 segment"),
    Property("extensibility", "a host joins without switch-side changes", True, False,
             "macvlan needs ports (and cloud VPCs) that accept many MACs per port"),
    Property("extensibility", "a new network needs no LAN address planning", True, False,
             "seed 002 Flat: the network's subnet and gateway are the LAN's"),
    Property("extensibility", "containers are reachable from LAN machines without NAT", False, True,
             "macvlan addresses are LAN addresses; VXLAN networks reach out through masquerade (--external)"),
)


@dataclass(frozen=True)
class MeasuredInput:
    """One measured number the expert uses: its value, the report key it came from, or its fallback."""

    name: str
    value: float
    source: str


#: report keys per input, first found wins; the fallbacks are the medians of docs/benchmarks.json as of
#: the run of 2026-11-22 (meshd commit 2102c64 for dataplane), used when a key is missing
INPUT_KEYS: dict[str, tuple[tuple[tuple[str, ...], ...], float]] = {
    "vxlan_throughput_ratio": ((("dataplane.meshd.p1.ratio", "dataplane.meshd.p4.ratio"),), 0.656),
    "flat_throughput_ratio": ((("dataplane.meshd_flat.p1.ratio", "dataplane.meshd_flat.p4.ratio"),
                               ("dataplane.docker_macvlan.p1.ratio", "dataplane.docker_macvlan.p4.ratio")), 1.083),
    "vxlan_attach_ms": ((("attach.docker.p50_ms",),), 7.565),
    "flat_attach_ms": ((("attach.flat.p50_ms",), ("attach.docker.p50_ms",)), 7.565),
}


@dataclass(frozen=True)
class Measured:
    """The measured inputs of the expert (see :func:`measured_inputs`)."""

    vxlan_throughput_ratio: MeasuredInput
    flat_throughput_ratio: MeasuredInput
    vxlan_attach_ms: MeasuredInput
    flat_attach_ms: MeasuredInput

    def values(self) -> dict[str, float]:
        """``{input name: value}``, rounded as shipped with the model."""
        return {i.name: round(i.value, 4) for i in self.inputs()}

    def inputs(self) -> tuple[MeasuredInput, ...]:
        return (self.vxlan_throughput_ratio, self.flat_throughput_ratio, self.vxlan_attach_ms, self.flat_attach_ms)


def measured_inputs(figures: Mapping[str, float] | None = None) -> Measured:
    """The expert's measured inputs from the benchmark report's figures.

    Args:
      figures: ``{figure key: median}`` of docs/benchmarks.json (e.g.
        ``"dataplane.meshd.p1.ratio": 0.62``); None or a missing key: the
        fallback of :data:`INPUT_KEYS`.

    Returns:
      Each input with its value and its source: a throughput ratio is the mean
      of its p1 and p4 figures (meshd's own flat figures once the report has
      them, Docker's macvlan driver until then); the flat attach cost is
      meshd's VXLAN one until the report has ``attach.flat.p50_ms`` (both
      models attach through the same agent path), which makes attach neutral.
    """
    figures = figures or {}
    found: dict[str, MeasuredInput] = {}
    for name, (choices, fallback) in INPUT_KEYS.items():
        found[name] = MeasuredInput(name, fallback, "fallback (docs/benchmarks.json of 2026-11-22)")
        for keys in choices:
            if all(k in figures for k in keys):
                found[name] = MeasuredInput(name, sum(figures[k] for k in keys) / len(keys), " + ".join(keys))
                break
    return Measured(**found)


@dataclass(frozen=True)
class Qualities:
    """Each model's quality 0..1 per need (:data:`NEEDS` order)."""

    vxlan: tuple[float, float, float, float]
    flat: tuple[float, float, float, float]
    measured: Measured = field(compare=False)

    def of(self, mode: str) -> tuple[float, float, float, float]:
        return self.vxlan if mode == "vxlan" else self.flat


def _structural(need: str, mode: str) -> float:
    rows = [p for p in PROPERTIES if p.need == need]
    return sum(1 for p in rows if (p.vxlan if mode == "vxlan" else p.flat)) / len(rows)


def qualities(measured: Measured | None = None) -> Qualities:
    """Each model's quality per need, from :data:`PROPERTIES` and the measured inputs."""
    m = measured or measured_inputs()
    best_attach_ms = min(m.vxlan_attach_ms.value, m.flat_attach_ms.value)

    def throughput(ratio: MeasuredInput, attach: MeasuredInput) -> float:
        return THROUGHPUT_SHARE * min(1.0, ratio.value) + ATTACH_SHARE * best_attach_ms / attach.value

    per_mode: dict[str, tuple[float, float, float, float]] = {}
    for mode, ratio, attach in (("vxlan", m.vxlan_throughput_ratio, m.vxlan_attach_ms),
                                ("flat", m.flat_throughput_ratio, m.flat_attach_ms)):
        per_mode[mode] = (_structural("security", mode), _structural("scale", mode), throughput(ratio, attach),
                          _structural("extensibility", mode))
    return Qualities(per_mode["vxlan"], per_mode["flat"], m)


def importance(weight: float) -> float:
    """How much a stated weight 0..10 counts: ``(weight / 10) ** IMPORTANCE_POWER``."""
    return float((weight / 10.0) ** IMPORTANCE_POWER)


def expert_margin(weights: tuple[float, float, float, float], q: Qualities) -> float:
    """``Σ importance(weight) × (quality(flat) − quality(vxlan))``: above 0 favours flat."""
    return sum(importance(w) * (f - v) for w, f, v in zip(weights, q.flat, q.vxlan, strict=True))


def expert_label(weights: tuple[float, float, float, float], q: Qualities) -> int:
    """1 (flat, the paper's macvlan) when the margin is above zero, else 0 (vxlan; ties too)."""
    return 1 if expert_margin(weights, q) > 0 else 0

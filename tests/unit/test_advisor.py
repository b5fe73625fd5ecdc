"""The network-model advisor (issue 15 item 5): the expert, the shipped regression, the hard constraints,
and the training tool that ties them to docs/advisor.md."""

from __future__ import annotations

import pytest

from meshd import advisor
from meshd.advisor import Constraints, NoModelFits, Weights, choose_mode
from tools import advisor_train as at

#: floors docs/advisor.md states for the held-out figures of the shipped model
ACCURACY_FLOOR, AUC_FLOOR = 0.95, 0.98
RETRAIN = "run `.venv/bin/python -m tools.advisor_train --write` and commit what it writes"


@pytest.fixture(scope="module")
def shipped_run() -> at.Run:
    return at.train(at.DEFAULT_SEED, at.report_figures())


def test_expert_labels_documented_cases():
    q = advisor.qualities(advisor.measured_inputs())  # the fallbacks: the report of 2026-11-22
    assert q.vxlan[0] == 0.8 and q.flat[0] == 0.4  # security: 4 of 5 properties vs 2 of 5
    assert (q.vxlan[1], q.flat[1], q.vxlan[3], q.flat[3]) == (0.75, 0.25, 0.75, 0.25)
    assert q.flat[2] == 1.0 and q.vxlan[2] == pytest.approx(0.8 * 0.656 + 0.2)
    cases = {(0, 0, 10, 0): 1, (1, 0, 9, 0): 1, (10, 0, 0, 0): 0, (0, 10, 10, 0): 0, (0, 0, 0, 0): 0,
             (6, 0, 7, 2): 0,  # seed 000 Table 1, first row: the VXLAN overlay
             (0, 0, 10, 7): 1, (0, 0, 10, 8): 0, (5, 5, 10, 5): 0}  # 10 vs 7 or 8: either side of the edge
    assert {v: advisor.expert_label(v, q) for v in cases} == cases
    assert advisor.expert_margin((6, 0, 7, 2), q) == advisor.expert_margin((6, 0, 7, 2), q)  # deterministic


def test_measured_inputs_prefer_meshd_flat_and_fall_back():
    fallback = advisor.measured_inputs({})
    assert all(i.source.startswith("fallback") for i in fallback.inputs())
    figures = {"dataplane.docker_macvlan.p1.ratio": 1.1, "dataplane.docker_macvlan.p4.ratio": 1.0,
               "dataplane.meshd_flat.p1.ratio": 0.9, "dataplane.meshd_flat.p4.ratio": 0.95,
               "attach.docker.p50_ms": 8.0}
    m = advisor.measured_inputs(figures)
    assert m.flat_throughput_ratio.value == pytest.approx(0.925)
    assert m.flat_throughput_ratio.source.startswith("dataplane.meshd_flat")
    assert m.vxlan_throughput_ratio.source.startswith("fallback")
    assert m.flat_attach_ms.value == m.vxlan_attach_ms.value == 8.0  # attach neutral until flat's is measured


def test_training_reproduces_the_shipped_model(shipped_run):
    assert advisor.MODEL.inputs == advisor.measured_inputs(at.report_figures()).values(), (
        f"docs/benchmarks.json changed the expert's inputs: {RETRAIN}")
    assert (tuple(shipped_run.coef), shipped_run.bias) == (advisor.MODEL.coef, advisor.MODEL.bias), RETRAIN


def test_held_out_figures_meet_the_documented_floors_and_docs_say_them(shipped_run):
    assert shipped_run.held_out["accuracy"] >= ACCURACY_FLOOR and shipped_run.held_out["auc"] >= AUC_FLOOR
    assert shipped_run.large["accuracy"] >= ACCURACY_FLOOR and shipped_run.large["auc"] >= AUC_FLOOR
    text = at.ADVISOR_MD.read_text()
    assert at.generated_markdown(shipped_run) in text, f"docs/advisor.md's figures are stale: {RETRAIN}"
    assert at.ROC_SVG.read_text() == at.roc_svg(shipped_run), RETRAIN
    assert f"accuracy ≥ {ACCURACY_FLOOR}" in text and f"AUC ≥ {AUC_FLOOR}" in text


def test_metrics_and_roc_on_small_cases():
    m = at.metrics([1, 1, 0, 0], [0.9, 0.6, 0.4, 0.6])
    assert (m["accuracy"], m["precision"], m["recall"]) == (0.75, pytest.approx(2 / 3), 1.0)
    assert m["auc"] == pytest.approx((1 + 0.5 + 1 + 1) / 4)  # the tie 0.6/0.6 counts half
    assert at.roc_points([1, 0], [0.8, 0.2]) == [(float("inf"), 0.0, 0.0), (0.8, 0.0, 1.0), (0.2, 1.0, 1.0)]


def test_fit_recovers_a_separating_rule():
    vectors = [(s, 0, t, 0) for s in range(11) for t in range(11)]
    labels = [1 if t > s else 0 for s, _, t, _ in vectors]
    coef, bias = at.fit(vectors, labels)
    assert coef[2] > 0 > coef[0] and abs(coef[1]) < 1e-6 and abs(coef[3]) < 1e-6


def test_weights_are_whole_numbers_0_to_10():
    for bad in ((11, 0, 0, 0), (0, -1, 0, 0), (0, 0, True, 0), (0, 0, 0, 2.5)):
        with pytest.raises(ValueError, match="must be a whole number 0..10"):
            Weights(*bad)  # type: ignore[arg-type]


def test_regression_picks_and_reasons_name_the_largest_need_first():
    advice = choose_mode(Weights(1, 0, 10, 0))
    assert advice.mode == advice.regression_mode == "flat" and advice.probability == advice.p_flat > 0.5
    assert advice.reasons[1].startswith("throughput 10/10 weighed most, toward flat")
    assert advice.unchecked == ("the cluster's constraints (overlapping subnets, shared L2 segment, members' kernels)",)
    vx = advisor.advise(10, 0, 0, 0)
    assert vx.mode == "vxlan" and vx.probability == pytest.approx(1 - vx.p_flat)


@pytest.mark.parametrize("constraints, fragment", [
    (Constraints(checked=True, overlaps=("red (tenant b, 10.1.0.0/16)",)), "overlaps another tenant's network"),
    (Constraints(checked=True, tenant_overlaps=("blue (10.1.0.0/24)",)), "already overlap other tenants'"),
    (Constraints(checked=True, shared_l2=False), "do not share one L2 segment"),
    (Constraints(checked=True, unbuildable=(("flat", "h2", ("macvlan",)),)), "host h2's kernel lacks macvlan"),
])
def test_hard_constraints_override_the_regression(constraints, fragment):
    advice = choose_mode(Weights(0, 0, 10, 0), constraints)
    assert advice.regression_mode == "flat" and advice.mode == "vxlan" and advice.overridden
    assert advice.probability == pytest.approx(1 - advice.p_flat) and advice.probability < 0.5
    (line,) = [r for r in advice.reasons if r.startswith("hard constraint")]
    assert "overrides the regression" in line and fragment in line


def test_a_kernel_without_vxlan_forces_flat_and_two_rule_outs_leave_nothing():
    advice = choose_mode(Weights(10, 10, 0, 10), Constraints(checked=True,
                                                            unbuildable=(("vxlan", "h3", ("vxlan",)),)))
    assert advice.regression_mode == "vxlan" and advice.mode == "flat" and advice.overridden
    with pytest.raises(NoModelFits) as info:
        choose_mode(Weights(1, 1, 1, 1), Constraints(checked=True, shared_l2=False,
                                                    unbuildable=(("vxlan", "h3", ("vxlan",)),)))
    assert str(info.value) == ("no network model fits: flat is ruled out: the hosts do not share one L2 segment: "
                               "macvlan cannot cross routers; vxlan is ruled out: host h3's kernel lacks vxlan links")


def test_subnet_overlaps_and_same_segment():
    nets = [{"name": "red", "tenant": "b", "subnet": "10.1.0.0/16"},
            {"name": "blue", "tenant": "a", "subnet": "10.1.0.0/24"},
            {"name": "green", "tenant": "a", "subnet": "10.9.0.0/24"}]
    assert advisor.subnet_overlaps("10.1.2.0/24", "a", nets) == (("red (tenant b, 10.1.0.0/16)",),
                                                                 ("blue (10.1.0.0/24)",))
    assert advisor.subnet_overlaps("10.2.0.0/24", "c", nets) == ((), ())
    assert advisor.subnet_overlaps(None, "b", nets) == ((), ("red (10.1.0.0/16)",))
    with pytest.raises(ValueError):
        advisor.subnet_overlaps("10.1.0.0/33", "a", nets)
    assert advisor.same_segment(["10.0.0.2", "10.0.0.3"], "10.0.0.1", 24)
    assert not advisor.same_segment(["10.0.0.2", "10.0.1.3"], "10.0.0.1", 24)


def test_cluster_constraints_from_the_members_and_networks_maps():
    """The pure gathering both `meshd network advise` and the web view's /api/advise use."""
    members = [{"name": "h1", "state": "alive", "address": "10.0.0.1", "dataplane_missing": ["vlan"]},
               {"name": "h2", "state": "alive", "address": "10.0.1.1", "dataplane_missing": ["macvlan"]},
               {"name": "h9", "state": "left", "address": "192.0.2.1", "dataplane_missing": ["vxlan"]}]
    networks = [{"name": "blue", "tenant": "a", "subnet": "10.1.0.0/24"}]
    needs = {"vxlan": ("vxlan", "bridge", "veth"), "flat": ("macvlan",)}
    c = advisor.cluster_constraints(members, networks, "b", "10.1.0.0/16", needs, l2_prefix=24,
                                    local_address="10.0.0.1")
    assert c.checked and c.overlaps == ("blue (tenant a, 10.1.0.0/24)",) and c.shared_l2 is False
    assert c.unbuildable == (("flat", "h2", ("macvlan",)),)  # the left member's kernel does not count
    assert advisor.choose_mode(advisor.Weights(0, 0, 10, 0), c).mode == "vxlan"
    c = advisor.cluster_constraints(members[:1], [], "a", None, needs)
    assert c.shared_l2 is None and "no subnet given" in c.not_checked[0]
    command = advisor.create_command("flat", "a", "10.9.0.0/24")
    assert command == "meshd network create NAME 10.9.0.0/24 --tenant a --mode flat"

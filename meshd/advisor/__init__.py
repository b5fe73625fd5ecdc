"""meshd.advisor: which network model fits a user's needs (seed 000 sections 3.2 and 5.2). Pure: no I/O.

Users state four needs, each a weight 0..10 (:data:`NEEDS`: security, scale,
throughput, extensibility). :func:`choose_mode` (or :func:`advise`) runs the
shipped logistic regression and then the hard constraints the caller
gathered (:class:`Constraints`), which always win. The regression was trained
by ``tools/advisor_train.py`` on vectors labelled by the expert of
:mod:`._expert`, a documented scoring of the two models' measured and
structural properties (docs/advisor.md).
"""

from ._advice import (
    MODEL,
    NEED_MEANINGS,
    WEIGHT_MAX,
    WEIGHT_MIN,
    Advice,
    Constraints,
    Model,
    NoModelFits,
    Weights,
    advise,
    choose_mode,
    cluster_constraints,
    create_command,
    same_segment,
    subnet_overlaps,
)
from ._expert import (
    IMPORTANCE_POWER,
    INPUT_KEYS,
    MODES,
    NEEDS,
    PROPERTIES,
    Measured,
    Qualities,
    expert_label,
    expert_margin,
    measured_inputs,
    qualities,
)

__all__ = [
    "IMPORTANCE_POWER", "INPUT_KEYS", "MODEL", "MODES", "NEEDS", "NEED_MEANINGS", "PROPERTIES", "WEIGHT_MAX",
    "WEIGHT_MIN", "Advice", "Constraints", "Measured", "Model", "NoModelFits", "Qualities", "Weights", "advise",
    "choose_mode", "cluster_constraints", "create_command", "expert_label", "expert_margin", "measured_inputs",
    "qualities", "same_segment",
    "subnet_overlaps",
]

"""Ground-truth regions and simulated scores (the paper's section 2.2.1 and Algorithm 1, and
the benchmark's scenarios: linear, mixture, and, or, threshold, tract)."""

from deeplsm.simulate._rois import (
    Simulation,
    overlap_fractions,
    roi_label_image,
    roi_side_voxels,
    select_roi_centres,
    simulate,
    simulate_scores,
)
from deeplsm.simulate._scenarios import (
    PAIR_SCENARIOS,
    SCENARIOS,
    THRESHOLD_AT,
    THRESHOLD_STEEPNESS,
    check_scenario,
    critical_mass,
    cut_share,
    mixture_weights,
    pair_rule,
    select_roi_pairs,
    tract_fibres,
)

__all__ = [
    "PAIR_SCENARIOS",
    "SCENARIOS",
    "THRESHOLD_AT",
    "THRESHOLD_STEEPNESS",
    "Simulation",
    "check_scenario",
    "critical_mass",
    "cut_share",
    "mixture_weights",
    "overlap_fractions",
    "pair_rule",
    "roi_label_image",
    "roi_side_voxels",
    "select_roi_centres",
    "select_roi_pairs",
    "simulate",
    "simulate_scores",
    "tract_fibres",
]

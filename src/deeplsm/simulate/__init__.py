"""Ground-truth ROIs and simulated scores (the paper's section 2.2.1 and Algorithm 1)."""

from deeplsm.simulate._rois import (
    Simulation,
    overlap_fractions,
    roi_label_image,
    roi_side_voxels,
    select_roi_centres,
    simulate,
    simulate_scores,
)

__all__ = [
    "Simulation",
    "overlap_fractions",
    "roi_label_image",
    "roi_side_voxels",
    "select_roi_centres",
    "simulate",
    "simulate_scores",
]

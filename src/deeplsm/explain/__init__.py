"""Attribution maps per output: Integrated Gradients, GradientSHAP, captum Occlusion and exact
lesion-aware occlusion; group maps over a test set; explaining a trained run."""

from deeplsm.explain._group import load_group_sums, normalise_map, save_group_maps
from deeplsm.explain._methods import (
    GradientShapMap,
    IntegratedGradientsMap,
    LesionAwareOcclusion,
    OcclusionMap,
    mm_to_voxels,
    occlusion_windows,
)
from deeplsm.explain._run import METHODS, explain_cohort, explain_run

__all__ = [
    "METHODS",
    "GradientShapMap",
    "IntegratedGradientsMap",
    "LesionAwareOcclusion",
    "OcclusionMap",
    "explain_cohort",
    "explain_run",
    "load_group_sums",
    "mm_to_voxels",
    "normalise_map",
    "occlusion_windows",
    "save_group_maps",
]

"""Cohort I/O: read, validate, resample and cache binary lesion maps; read score tables."""

from deeplsm.cohort._cohort import CACHE_SUFFIX, LesionCohort
from deeplsm.cohort._grid import PAPER_VOXEL_SIZE, Grid, mni_brain_grid, resolve_grid
from deeplsm.cohort._io import find_lesion_files, load_lesions, resample_cohort, warn_empty_maps
from deeplsm.cohort._scores import load_scores, write_scores

__all__ = [
    "CACHE_SUFFIX",
    "PAPER_VOXEL_SIZE",
    "Grid",
    "LesionCohort",
    "find_lesion_files",
    "load_lesions",
    "load_scores",
    "mni_brain_grid",
    "resample_cohort",
    "resolve_grid",
    "warn_empty_maps",
    "write_scores",
]

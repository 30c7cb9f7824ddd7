"""Cohort I/O: read, validate, resample and cache binary lesion maps; read score tables."""

from deeplsm.cohort._bids import BidsName, is_mni_space, parse_bids_name, subject_ids_for
from deeplsm.cohort._cohort import CACHE_SUFFIX, LesionCohort
from deeplsm.cohort._exclusions import cohort_exclusions, empty_map_subjects
from deeplsm.cohort._grid import PAPER_VOXEL_SIZE, Grid, mni_brain_grid, resolve_grid
from deeplsm.cohort._io import find_lesion_files, load_lesions, resample_cohort, warn_empty_maps
from deeplsm.cohort._scores import load_scores, write_scores
from deeplsm.cohort._space import mni_coverage

__all__ = [
    "CACHE_SUFFIX",
    "PAPER_VOXEL_SIZE",
    "BidsName",
    "Grid",
    "LesionCohort",
    "cohort_exclusions",
    "empty_map_subjects",
    "find_lesion_files",
    "is_mni_space",
    "load_lesions",
    "load_scores",
    "mni_brain_grid",
    "mni_coverage",
    "parse_bids_name",
    "resample_cohort",
    "resolve_grid",
    "subject_ids_for",
    "warn_empty_maps",
    "write_scores",
]

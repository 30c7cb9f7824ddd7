"""Classical lesion-symptom mapping baselines: VLSM (mass-univariate), SVR-LSM and ridge LSM."""

from deeplsm.classical._io import MAP_FILES, save_fitted_maps, write_cluster_tables
from deeplsm.classical._mask import compress_patches, resolve_min_subjects, voxel_mask
from deeplsm.classical.ridge import RidgeLSM
from deeplsm.classical.svr import SVRLSM
from deeplsm.classical.vlsm import MassUnivariateLSM

__all__ = [
    "MAP_FILES",
    "SVRLSM",
    "MassUnivariateLSM",
    "RidgeLSM",
    "compress_patches",
    "resolve_min_subjects",
    "save_fitted_maps",
    "voxel_mask",
    "write_cluster_tables",
]

"""Classical lesion-symptom mapping baselines: VLSM (mass-univariate) and SVR-LSM."""

from deeplsm.classical._mask import compress_patches, resolve_min_subjects, voxel_mask
from deeplsm.classical.svr import SVRLSM
from deeplsm.classical.vlsm import MassUnivariateLSM

__all__ = ["SVRLSM", "MassUnivariateLSM", "compress_patches", "resolve_min_subjects", "voxel_mask"]

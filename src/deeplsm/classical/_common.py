"""Input handling shared by the classical estimators."""

from __future__ import annotations

import warnings

import numpy as np

from deeplsm.cohort import LesionCohort
from deeplsm.exceptions import DeepLSMError

VOLUME_CORRECTIONS = ("none", "score", "dtlvc", "both")


def lesion_matrix(lesions) -> tuple[np.ndarray, LesionCohort | None]:
    """``(data (N, V) uint8, cohort or None)`` from a cohort or a binary array."""
    if isinstance(lesions, LesionCohort):
        return lesions.data.reshape(lesions.n_subjects, -1), lesions
    arr = np.asarray(lesions)
    if arr.ndim != 2:
        raise DeepLSMError(
            f"lesions must be a LesionCohort or an array of shape (n_subjects, n_voxels), "
            f"got an array of shape {arr.shape}"
        )
    if arr.size and not np.all((arr == 0) | (arr == 1)):
        raise DeepLSMError("lesions: the array must be binary (0/1)")
    return arr.astype(np.uint8), None


def lesion_volumes(data: np.ndarray, cohort: LesionCohort | None) -> np.ndarray:
    """Lesion volume per subject: mL for a cohort, voxels for an array."""
    if cohort is not None:
        return cohort.lesion_volumes_ml()
    return data.sum(axis=1, dtype=np.int64).astype(np.float64)


def check_scores(scores, n_subjects: int) -> np.ndarray:
    """One finite score per subject, as float64 of shape (N,)."""
    if hasattr(scores, "to_numpy"):
        scores = scores.to_numpy()
    y = np.asarray(scores, dtype=np.float64)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DeepLSMError(
            f"scores must hold one score per subject (shape (n_subjects,)), got shape {y.shape}; "
            "fit one output at a time"
        )
    if y.shape[0] != n_subjects:
        raise DeepLSMError(f"scores has {y.shape[0]} rows but {n_subjects} lesion images were given")
    if not np.isfinite(y).all():
        raise DeepLSMError(f"scores: {int((~np.isfinite(y)).sum())} NaN or Inf value(s)")
    if np.ptp(y) == 0:
        raise DeepLSMError("scores are constant; there is nothing to map")
    return y


def check_covariates(covariates, n_subjects: int) -> np.ndarray | None:
    if covariates is None:
        return None
    if hasattr(covariates, "to_numpy"):
        covariates = covariates.to_numpy()
    C = np.asarray(covariates, dtype=np.float64)
    if C.ndim == 1:
        C = C[:, None]
    if C.ndim != 2 or C.shape[0] != n_subjects:
        raise DeepLSMError(
            f"covariates has {C.shape[0] if C.ndim else 0} rows but {n_subjects} lesion images were given"
        )
    if not np.isfinite(C).all():
        raise DeepLSMError("covariates contain NaN or Inf values")
    return C


def check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise DeepLSMError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")


def dtlvc_scale(volumes: np.ndarray) -> np.ndarray:
    """Per-subject factor 1/sqrt(volume) (0 for empty maps, with a warning)."""
    vol = np.asarray(volumes, dtype=np.float64)
    empty = vol <= 0
    if empty.any():
        warnings.warn(f"{int(empty.sum())} subject(s) have empty lesion maps; DTLVC leaves them at 0",
                      UserWarning, stacklevel=3)
    with np.errstate(divide="ignore"):
        return np.where(empty, 0.0, 1.0 / np.sqrt(np.where(empty, 1.0, vol)))


def volume_regressed(y: np.ndarray, volumes: np.ndarray, covariates: np.ndarray | None = None):
    """``y`` with (intercept,) lesion volume (and covariates) regressed out."""
    cols = [np.ones_like(y), np.asarray(volumes, dtype=np.float64)]
    if covariates is not None:
        cols += list(covariates.T)
    Z = np.column_stack(cols)
    beta, *_ = np.linalg.lstsq(Z, y, rcond=None)
    return y - Z @ beta + y.mean()


def to_volume(values: np.ndarray, mask: np.ndarray, fill: float, dtype=np.float32) -> np.ndarray:
    """Scatter per-tested-voxel ``values`` into the full (flattened or 3D) ``mask`` shape."""
    out = np.full(mask.shape, fill, dtype=dtype)
    out[mask] = values
    return out

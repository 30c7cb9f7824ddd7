"""Input handling shared by the classical estimators."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import numpy as np

from deeplsm.cohort import LesionCohort
from deeplsm.exceptions import DeepLSMError

#: Lesion-volume controls, named as LESYMAP (``correctByLesSize``) and svrlsmgui
#: (``lesionvolcorrection``) name them: canonical name -> (regress volume out of the score,
#: what is done to the lesion maps: 'none', 'dtlvc' or 'regress').
VOLUME_CONTROLS: dict[str, tuple[bool, str]] = {
    "none": (False, "none"),
    "behavior": (True, "none"),  # LESYMAP 'behavior'; svrlsmgui 'Regress on Behavior'
    "voxel": (False, "dtlvc"),  # LESYMAP 'voxel'; svrlsmgui 'DTLVC'
    "both": (True, "dtlvc"),  # LESYMAP 'both' (behavior + voxel)
    "lesion": (False, "regress"),  # svrlsmgui 'Regress on Lesion'
    "regress_on_both": (True, "regress"),  # svrlsmgui 'Regress on Both' (behavior + lesion)
}
#: Other accepted spellings (our earlier names and svrlsmgui's labels) -> canonical name.
VOLUME_ALIASES: dict[str, str] = {
    "score": "behavior",
    "behaviour": "behavior",
    "regress_on_behavior": "behavior",
    "regress_on_behaviour": "behavior",
    "dtlvc": "voxel",
    "regress_on_lesion": "lesion",
}
#: Every accepted value of ``volume_correction`` (case, spaces and hyphens are ignored).
VOLUME_CORRECTIONS = tuple(VOLUME_CONTROLS) + tuple(VOLUME_ALIASES)


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
    """Per-subject factor 1/sqrt(volume) (0 for empty maps, with a warning).

    Direct total lesion volume control (Zhang et al. 2014): LESYMAP's
    ``correctByLesSize = "voxel"`` (``lesmat * 1/sqrt(getLesionSize(...))``) and svrlsmgui's
    ``'DTLVC'`` (``lesion_dat ./ sqrt(lesion_vol)``).
    """
    vol = np.asarray(volumes, dtype=np.float64)
    empty = vol <= 0
    if empty.any():
        warnings.warn(f"{int(empty.sum())} subject(s) have empty lesion maps; DTLVC leaves them at 0",
                      UserWarning, stacklevel=3)
    with np.errstate(divide="ignore"):
        return np.where(empty, 0.0, 1.0 / np.sqrt(np.where(empty, 1.0, vol)))


@dataclass(frozen=True)
class VolumeControl:
    """A resolved ``volume_correction``: what to do to the score and to the lesion maps.

    Attributes
    ----------
    name : str
        Canonical name (a key of :data:`VOLUME_CONTROLS`).
    behavior : bool
        Regress lesion volume out of the score (:func:`volume_regressed`).
    lesion : {'none', 'dtlvc', 'regress'}
        ``'dtlvc'``: scale each subject's lesion vector by ``1 / sqrt(volume)``
        (:func:`dtlvc_scale`); ``'regress'``: regress lesion volume out of every voxel's lesion
        values (:class:`LesionVolumeRegression`).
    """

    name: str
    behavior: bool
    lesion: str

    @property
    def any(self) -> bool:
        return self.behavior or self.lesion != "none"

    @property
    def continuous_lesions(self) -> bool:
        """True when the lesion values stop being 0/1 (two-group tests no longer apply)."""
        return self.lesion != "none"


def resolve_volume_correction(value) -> VolumeControl:
    """The :class:`VolumeControl` for a ``volume_correction`` value, or a :class:`DeepLSMError`.

    Case, spaces and hyphens are ignored, so svrlsmgui's labels work as typed
    (``"Regress on Both"``), and so do LESYMAP's (``"behavior"``, ``"voxel"``, ``"both"``).

    Examples
    --------
    >>> resolve_volume_correction("Regress on Lesion")
    VolumeControl(name='lesion', behavior=False, lesion='regress')
    >>> resolve_volume_correction("score").name
    'behavior'
    """
    key = re.sub(r"[\s-]+", "_", value.strip().lower()) if isinstance(value, str) else None
    key = VOLUME_ALIASES.get(key, key)
    if key not in VOLUME_CONTROLS:
        raise DeepLSMError(
            f"volume_correction must be one of {', '.join(map(repr, VOLUME_CONTROLS))} "
            f"(or {', '.join(map(repr, VOLUME_ALIASES))}); got {value!r}"
        )
    behavior, lesion = VOLUME_CONTROLS[key]
    return VolumeControl(key, behavior, lesion)


class LesionVolumeRegression:
    """Regress lesion volume out of every voxel's lesion values (svrlsmgui's "Regress on Lesion").

    svrlsmgui (DeMarco & Turkeltaub, ``functions/continuize_lesions.m``, called from
    ``RunAnalysis.m`` for ``'Regress on Lesion'`` and ``'Regress on Both'``) fits, for every
    voxel ``v``, ``x_v ~ 1 + volume`` by least squares and keeps the residuals plus the fitted
    intercept. That is ``x_v - slope_v * volume`` with ``slope_v = sum_i c_i x_iv`` and
    ``c = (volume - mean) / sum((volume - mean)^2)``: one linear map of the subjects,
    ``X_res = P @ X`` with ``P = I - outer(volume, c)``, so kernel methods need only
    ``P @ (X @ X.T) @ P.T`` and never a dense copy of the lesion data.

    New subjects (prediction) are corrected with the training slopes:
    ``x_new - volume_new * slope``.

    Parameters
    ----------
    volumes : array-like of shape (n_subjects,)
        Lesion volume of each training subject.
    """

    def __init__(self, volumes) -> None:
        vol = np.asarray(volumes, dtype=np.float64)
        d = vol - vol.mean()
        ss = float(d @ d)
        if not ss > 0:
            raise DeepLSMError("every subject has the same lesion volume; it cannot be regressed "
                               "out of the lesion maps")
        self.volumes = vol
        #: weights ``c``: the slope of voxel v on volume is ``c @ X[:, v]``
        self.weights = d / ss

    @property
    def projector(self) -> np.ndarray:
        """``P`` (N, N): ``P @ X`` is the corrected lesion data of the training subjects."""
        return np.eye(self.volumes.size) - np.outer(self.volumes, self.weights)

    def slopes(self, X) -> np.ndarray:
        """Per-voxel slope on lesion volume, shape (V,), from the training lesion data ``X``."""
        return np.asarray(X.T @ self.weights).ravel()

    def transform(self, X, volumes=None, slopes=None) -> np.ndarray:
        """Corrected lesion data (dense float64): the training data (defaults), or new subjects
        with their ``volumes`` and the training ``slopes``."""
        X = X.toarray() if hasattr(X, "toarray") else np.asarray(X)
        vol = self.volumes if volumes is None else np.asarray(volumes, dtype=np.float64)
        s = self.slopes(X) if slopes is None else np.asarray(slopes, dtype=np.float64)
        return X.astype(np.float64) - np.outer(vol, s)


def volume_regressed(y: np.ndarray, volumes: np.ndarray, covariates: np.ndarray | None = None):
    """``y`` with (intercept,) lesion volume (and covariates) regressed out; the mean is kept.

    This is LESYMAP's ``correctByLesSize = "behavior"`` (``R/lesymap.R``:
    ``residuals(lm(behavior ~ getLesionSize(...)))``) and svrlsmgui's ``'Regress on Behavior'``
    (``RunAnalysis.m``: ``fitlm`` residuals plus the fitted intercept). The three differ only
    by a constant (0, the intercept, or the mean here), which no t-test or regression t sees;
    for SVR-LSM it changes only the ``100 / max|score|`` scaling.
    """
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


def set_beta_maps(est, beta: np.ndarray, ext: np.ndarray, p, p_fwe, p_cfwer, mask_flat: np.ndarray,
                  cohort: LesionCohort | None, n_subjects: int, rtol: float = 0.0) -> None:
    """The fitted maps of a weight-map estimator (SVR-LSM, ridge), set on ``est``.

    ``beta`` and its tail-transformed ``ext`` are per tested voxel; ``p``, ``p_fwe`` and
    ``p_cfwer`` are per tested voxel or None. Sets ``threshold_`` (from ``est.correction``,
    ``est.alpha`` and the permutation nulls ``est.null_max_`` / ``est.null_kth_``, compared with
    tie tolerance ``rtol``), the volumes ``mask_``, ``beta_``, ``p_``, ``p_fwe_``, ``p_cfwer_``,
    ``thresholded_``, ``statistic_`` (= ``beta_``), their ``*_img_`` images on ``cohort``'s grid,
    and ``n_significant_``, ``n_subjects_``, ``n_tested_``.
    """
    from deeplsm.classical import _stats as S

    if est.correction == "fwe":
        est.threshold_ = S.null_threshold(est.null_max_, est.alpha, rtol=rtol)
        sig = ext > est.threshold_
    elif est.correction == "cfwer":
        null = est.null_kth_ if est.null_kth_ is not None else est.null_max_
        est.threshold_ = S.null_threshold(null, est.alpha, rtol=rtol)
        sig = ext > est.threshold_
    elif p is not None:
        sig = p <= est.alpha
        est.threshold_ = float(ext[sig].min()) if sig.any() else float("inf")
    else:
        sig = np.zeros(beta.shape, bool)
        est.threshold_ = float("inf")

    shape = cohort.shape if cohort is not None else mask_flat.shape

    def vol(values, fill):
        return None if values is None else to_volume(values, mask_flat, fill).reshape(shape)

    est.mask_ = mask_flat.reshape(shape)
    est.beta_ = vol(beta, 0.0)
    est.p_ = vol(p, 1.0)
    est.p_fwe_ = vol(p_fwe, 1.0)
    est.p_cfwer_ = vol(p_cfwer, 1.0)
    est.thresholded_ = vol(np.where(sig, beta, 0.0), 0.0)
    est.n_significant_ = int(sig.sum())
    est.n_subjects_ = n_subjects
    est.n_tested_ = int(mask_flat.sum())
    est.statistic_ = est.beta_
    for name in ("mask", "beta", "p", "p_fwe", "p_cfwer", "thresholded"):
        value = getattr(est, f"{name}_")
        img = None
        if cohort is not None and value is not None:
            img = cohort.to_img(value, np.uint8 if name == "mask" else np.float32)
        setattr(est, f"{name}_img_", img)
    est.statistic_img_ = est.beta_img_

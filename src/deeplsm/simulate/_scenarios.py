"""Scenarios: how a deficit follows from damage to its ground-truth regions.

``linear``
    The paper's score: score k is the lesioned fraction of ROI k (Algorithm 1).
``mixture``
    Score k is a weighted sum of the fractions of 2 or 3 ROIs (seeded weights).
``and``
    Score k is the *minimum* of the fractions of a pair of ROIs: a deficit needs both damaged.
``or``
    Score k is the *maximum* of the fractions of a pair of ROIs: either one suffices.
``threshold``
    Score k is a steep sigmoid of the fraction of ROI k (a critical mass of damage).
``tract``
    Score k is the share of the fibres of a thin tube between two ROI centres that a lesion cuts.

Every scenario's noise-free score lies in [0, 1] and is exactly 0 without damage; the paper's
noise and lesion-volume confound are then added by :func:`simulate_scores`. The ground truth of a
score is the union of the labels that drive it, recorded per score in ``Simulation.truth``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.special import expit

from deeplsm._docs import fill_doc
from deeplsm._utils import check_random_state
from deeplsm.exceptions import DeepLSMError

SCENARIOS = ("linear", "mixture", "and", "or", "threshold", "tract")
#: Scenarios with two ROIs per score (``n_rois`` counts the pairs, i.e. the scores).
PAIR_SCENARIOS = ("and", "or", "tract")

#: Critical mass of the ``threshold`` scenario: the fraction of the ROI at the sigmoid's midpoint.
THRESHOLD_AT = 0.25
#: Steepness of that sigmoid: the score goes from 0.12 to 0.88 between fractions 0.15 and 0.35.
THRESHOLD_STEEPNESS = 20.0


def check_scenario(scenario: str) -> str:
    """Return ``scenario`` if it is known, else raise a :class:`DeepLSMError` naming the choices."""
    if scenario not in SCENARIOS:
        raise DeepLSMError(f"unknown scenario {scenario!r}; use one of {', '.join(SCENARIOS)}")
    return scenario


# --- score rules ---------------------------------------------------------------------------
def critical_mass(fractions, *, at: float = THRESHOLD_AT,
                  steepness: float = THRESHOLD_STEEPNESS) -> np.ndarray:
    """The ``threshold`` rule: ``expit(steepness · (f − at))``, rescaled so 0 → 0 and 1 → 1.

    Parameters
    ----------
    fractions : array-like
        Lesioned fractions in [0, 1].
    at : float, default=0.25
        Critical mass: the fraction at the sigmoid's midpoint, in (0, 1).
    steepness : float, default=20
        Slope of the logistic function (per unit of fraction).

    Returns
    -------
    ndarray shaped like ``fractions``, in [0, 1].
    """
    if not 0 < at < 1:
        raise DeepLSMError(f"threshold critical mass must lie in (0, 1), got {at}")
    if not steepness > 0:
        raise DeepLSMError(f"threshold steepness must be positive, got {steepness}")
    f = np.asarray(fractions, dtype=np.float64)
    lo, hi = expit(-steepness * at), expit(steepness * (1.0 - at))
    return (expit(steepness * (f - at)) - lo) / (hi - lo)


def pair_rule(fractions, rule: str) -> np.ndarray:
    """``and`` (minimum) or ``or`` (maximum) of the fractions of ROI pairs (1, 2), (3, 4), ….

    The minimum, not the product, stands for ``and``: it keeps the score on the scale of the
    fractions (both ROIs half damaged gives 0.5, where the product gives 0.25, and two 10 %
    lesions give 0.1 rather than 0.01), and it is the dual of ``or``'s maximum, so the two
    scenarios differ only in the rule.

    Parameters
    ----------
    fractions : array-like of shape (n_subjects, 2 * n_pairs)
    rule : {"and", "or"}

    Returns
    -------
    ndarray of shape (n_subjects, n_pairs)
    """
    f = np.asarray(fractions, dtype=np.float64)
    if f.ndim != 2 or f.shape[1] % 2:
        raise DeepLSMError(f"pair rules need an even number of ROI columns, got shape {f.shape}")
    if rule == "and":
        return np.minimum(f[:, 0::2], f[:, 1::2])
    if rule == "or":
        return np.maximum(f[:, 0::2], f[:, 1::2])
    raise DeepLSMError(f"unknown pair rule {rule!r}; use 'and' or 'or'")


@fill_doc
def mixture_weights(n_rois: int, *,
                    random_state: int | np.random.Generator | None = None) -> np.ndarray:
    """Seeded mixing matrix of the ``mixture`` scenario: n_rois scores × n_rois ROIs.

    Score k (0-based) mixes ROIs k and k+1 (modulo ``n_rois``); every second score also takes
    ROI k+2, so the scores mix 2 or 3 ROIs. The weights are uniform in [0.25, 1] and each row is
    normalised to sum to 1, so a score stays in [0, 1].

    Parameters
    ----------
    n_rois : int
        At least 2.
    %(random_state)s

    Returns
    -------
    ndarray of shape (n_rois, n_rois)
    """
    if n_rois < 2:
        raise DeepLSMError(f"the mixture scenario needs at least 2 ROIs, got n_rois={n_rois}")
    rng = check_random_state(random_state)
    w = np.zeros((n_rois, n_rois))
    for k in range(n_rois):
        members = sorted({k, (k + 1) % n_rois} | ({(k + 2) % n_rois} if k % 2 and n_rois >= 3 else set()))
        w[k, members] = rng.uniform(0.25, 1.0, len(members))
    return w / w.sum(axis=1, keepdims=True)


# --- ROI pairs for ``and`` ---------------------------------------------------------------------
def _cube_slices(centre, size: int) -> tuple[slice, ...]:
    return tuple(slice(int(c) - size // 2, int(c) - size // 2 + size) for c in centre)


def _erode(mask: np.ndarray, size: int) -> np.ndarray:
    """Centres whose whole cube (same alignment as the ROI cubes) lies inside ``mask``."""
    return ndimage.binary_erosion(mask, structure=np.ones((size,) * 3, dtype=bool), border_value=0)


def _block(allowed: np.ndarray, centre, size: int) -> None:
    """Remove every centre whose cube would overlap the cube at ``centre``."""
    allowed[tuple(slice(max(0, int(v) - size + 1), int(v) + size) for v in centre)] = False


@fill_doc
def select_roi_pairs(
    data: np.ndarray,
    *,
    n_pairs: int,
    roi_size: int,
    min_patients: int,
    colesioned: bool = False,
    min_distance: float = 0.0,
    random_state: int | np.random.Generator | None = None,
    max_tries: int = 200,
) -> list[tuple[int, int, int]]:
    """Pairs of non-overlapping cubic ROIs for the ``and``, ``or`` and ``tract`` scenarios.

    The first ROI of a pair is picked like any ROI (see :func:`select_roi_centres`: every voxel
    lesioned in at least ``min_patients`` subjects). The second is picked among the cubes whose
    centre is at least ``min_distance`` voxels from the first and whose every voxel is lesioned
    in at least ``min_patients`` subjects, or, with ``colesioned``, in at least ``min_patients``
    of the subjects who damage the first ROI, so that at least ``min_patients`` subjects damage
    both (the ``and`` scenario). No cube overlaps another.

    Parameters
    ----------
    data : ndarray of shape (n_subjects, X, Y, Z)
        Binary lesion maps.
    n_pairs, roi_size, min_patients : int
    colesioned : bool, default=False
    min_distance : float, default=0
        Least distance between the two centres of a pair, in voxels (``tract``: a tube, not a
        blob).
    %(random_state)s
    max_tries : int, default=200
        First ROIs tried per pair before giving up.

    Returns
    -------
    list of tuple of int
        ``2 * n_pairs`` voxel centres: pair k is ``(centres[2k], centres[2k + 1])``.
    """
    if n_pairs < 1 or roi_size < 1 or min_patients < 1:
        raise DeepLSMError("n_pairs, roi_size and min_patients must be at least 1")
    rng = check_random_state(random_state)
    free = np.ones(data.shape[1:], dtype=bool)  # centres not blocked by a chosen cube
    common = _erode(data.sum(axis=0) >= min_patients, roi_size)
    grid = np.indices(data.shape[1:]).astype(np.float64)
    centres: list[tuple[int, int, int]] = []
    for k in range(n_pairs):
        cand = np.argwhere(common & free)
        pair = None
        for i in rng.permutation(len(cand))[:max_tries]:
            a = tuple(int(v) for v in cand[i])
            if colesioned:
                hit = data[(slice(None), *_cube_slices(a, roi_size))].any(axis=(1, 2, 3))
                second = _erode(data[hit].sum(axis=0) >= min_patients, roi_size) & free
            else:
                second = common & free
            _block(second, a, roi_size)
            if min_distance > 0:
                dist2 = sum((grid[j] - a[j]) ** 2 for j in range(3))
                second &= dist2 >= min_distance**2
            cand_b = np.argwhere(second)
            if len(cand_b):
                pair = (a, tuple(int(v) for v in cand_b[rng.integers(len(cand_b))]))
                break
        if pair is None:
            need = " damaged together" if colesioned else ""
            far = f" at least {min_distance:g} voxels apart" if min_distance > 0 else ""
            raise DeepLSMError(
                f"only {k} of {n_pairs} ROI pairs fit: no two {roi_size}^3 cubes{far} where every "
                f"voxel is lesioned in >= {min_patients} subjects{need}; lower --min-patients, "
                "--roi-size or --n-rois"
            )
        for c in pair:
            centres.append(c)
            _block(free, c, roi_size)
    return centres


# --- tracts ------------------------------------------------------------------------------------
def _world(affine: np.ndarray, ijk: np.ndarray) -> np.ndarray:
    return ijk @ affine[:3, :3].T + affine[:3, 3]


def tract_fibres(
    shape: tuple[int, int, int],
    affine: np.ndarray,
    start,
    end,
    radius_mm: float,
    where: np.ndarray | None = None,
) -> np.ndarray:
    """A thin tube between two voxels, split into parallel fibres.

    The tube holds every voxel whose centre lies within ``radius_mm`` of the segment from
    ``start`` to ``end`` (distances in mm through ``affine``; the ends are rounded caps), and,
    when ``where`` is given, only where ``where`` is true (e.g. where lesions occur). Each tube
    voxel belongs to the fibre running parallel to the segment through its perpendicular
    offset, rounded to the smallest voxel size in an orthonormal frame of the segment.

    Parameters
    ----------
    shape : tuple of int
    affine : ndarray of shape (4, 4)
    start, end : sequence of 3 numbers
        Voxel coordinates of the tube's ends.
    radius_mm : float
    where : ndarray of bool, shape ``shape``, or None

    Returns
    -------
    ndarray of int32, shape ``shape``
        0 outside the tube, fibre ids 1..F inside.
    """
    if not radius_mm > 0:
        raise DeepLSMError(f"tract radius must be positive, got {radius_mm} mm")
    affine = np.asarray(affine, dtype=np.float64)
    a = _world(affine, np.asarray(start, dtype=np.float64))
    b = _world(affine, np.asarray(end, dtype=np.float64))
    d = b - a
    length = float(np.linalg.norm(d))
    if length == 0:
        raise DeepLSMError("a tract needs two different end points")
    ijk = np.indices(shape).reshape(3, -1).T.astype(np.float64)
    p = _world(affine, ijk) - a
    t = np.clip(p @ d / length**2, 0.0, 1.0)
    dist = np.linalg.norm(p - t[:, None] * d, axis=1)
    inside = dist <= radius_mm + 1e-9
    if where is not None:
        inside &= np.asarray(where, dtype=bool).ravel()
    out = np.zeros(int(np.prod(shape)), dtype=np.int32)
    if inside.any():
        dhat = d / length
        e = np.zeros(3)
        e[int(np.argmin(np.abs(dhat)))] = 1.0
        u = np.cross(dhat, e)
        u /= np.linalg.norm(u)
        v = np.cross(dhat, u)
        h = float(np.min(np.linalg.norm(affine[:3, :3], axis=0)))
        q = p[inside]
        keys = np.stack([np.rint(q @ u / h), np.rint(q @ v / h)], axis=1).astype(np.int64)
        _, ids = np.unique(keys, axis=0, return_inverse=True)
        out[inside] = ids.ravel() + 1
    return out.reshape(shape)


def cut_share(data: np.ndarray, fibres: np.ndarray) -> np.ndarray:
    """The ``tract`` rule: share of a tube's fibres that have at least one lesioned voxel.

    Parameters
    ----------
    data : ndarray of shape (n_subjects, X, Y, Z)
        Binary lesion maps.
    fibres : ndarray of int, shape (X, Y, Z)
        0 outside the tube, fibre ids 1..F inside (see :func:`tract_fibres`).

    Returns
    -------
    ndarray of shape (n_subjects,)
    """
    flat_ids = np.asarray(fibres).ravel()
    ids = np.unique(flat_ids[flat_ids > 0])
    if len(ids) == 0:
        raise DeepLSMError("the tract is empty (no voxel within its radius where lesions occur)")
    flat = np.asarray(data).reshape(len(data), -1)
    cut = np.stack([flat[:, flat_ids == f].any(axis=1) for f in ids], axis=1)
    return cut.mean(axis=1)

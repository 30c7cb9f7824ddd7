"""Cubic ROIs where lesions are common, and scores = lesioned fraction of each ROI.

A cube of side ``s`` voxels with centre ``c`` covers voxels ``c - s//2 … c - s//2 + s - 1`` on
each axis (for the paper's s = 8: c-4 … c+3).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from deeplsm._docs import fill_doc
from deeplsm._schema import AnyFloat, NonNegativeFloat, PositiveFloat, PositiveInt, check_param
from deeplsm._utils import check_random_state
from deeplsm.cohort import LesionCohort
from deeplsm.exceptions import DeepLSMError
from deeplsm.simulate._scenarios import (
    PAIR_SCENARIOS,
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


def roi_side_voxels(shape: tuple[int, ...], voxel_size, *, roi_size: int | None = 8,
                    roi_size_mm: float | None = None, prefix: str = "") -> int:
    """The ROI cube side in voxels, checked against the grid.

    ``roi_size`` voxels, or ``roi_size_mm`` rounded to whole voxels when given; the cube must be
    smaller than every side of the ``shape`` grid. ``prefix`` goes before the names in errors.
    """
    if roi_size_mm is not None:
        key, value = "roi_size_mm", check_param(f"{prefix}roi_size_mm", roi_size_mm, PositiveFloat)
        side = max(1, round(value / float(np.mean(voxel_size))))
    elif roi_size is None:
        raise DeepLSMError(f"give {prefix}roi_size (voxels) or {prefix}roi_size_mm")
    else:
        key, value = "roi_size", check_param(f"{prefix}roi_size", roi_size, PositiveInt)
        side = value
    limit = min(int(v) for v in shape[:3]) - 1
    if side > limit:
        grid = "x".join(str(int(v)) for v in shape[:3])
        got = f"{side} voxels; " if key == "roi_size_mm" else ""
        raise DeepLSMError(f"{prefix}{key} = {value!r}: {got}the cube side must be from 1 to "
                           f"{limit} voxels, smaller than the {grid} analysis grid")
    return side


def _cube_slices(centre: tuple[int, ...], size: int) -> tuple[slice, ...]:
    return tuple(slice(int(c) - size // 2, int(c) - size // 2 + size) for c in centre)


@fill_doc
def select_roi_centres(
    frequency: np.ndarray,
    *,
    n_rois: int = 3,
    roi_size: int = 8,
    min_patients: int = 10,
    random_state: int | np.random.Generator | None = None,
) -> list[tuple[int, int, int]]:
    """Pick ``n_rois`` non-overlapping cubic ROI centres where lesions are common.

    1. Threshold the lesion frequency map at ``min_patients``.
    2. Erode it with a cube of side ``roi_size``, so every voxel of a cube centred on a
       remaining voxel is lesioned in at least ``min_patients`` subjects.
    3. Pick a centre uniformly at random (seeded) among the remaining voxels.
    4. Remove every centre whose cube would overlap the chosen one; repeat.

    Parameters
    ----------
    frequency : ndarray of shape (X, Y, Z)
        Number of subjects lesioned per voxel.
    n_rois : int, default=3
    roi_size : int, default=8
        Cube side in voxels of the analysis grid.
    min_patients : int, default=10
    %(random_state)s

    Returns
    -------
    list of tuple of int
        Voxel centres, in selection order.
    """
    n_rois = check_param("n_rois", n_rois, PositiveInt)
    roi_size = roi_side_voxels(frequency.shape, (1.0, 1.0, 1.0), roi_size=roi_size)
    min_patients = check_param("min_patients", min_patients, PositiveInt)
    rng = check_random_state(random_state)
    common = frequency >= min_patients
    allowed = ndimage.binary_erosion(common, structure=np.ones((roi_size,) * 3, dtype=bool),
                                     border_value=0)
    centres: list[tuple[int, int, int]] = []
    for k in range(n_rois):
        cand = np.argwhere(allowed)
        if len(cand) == 0:
            raise DeepLSMError(
                f"only {k} of {n_rois} ROIs fit: no remaining centre where all {roi_size}^3 "
                f"voxels are lesioned in >= {min_patients} subjects (the most-lesioned voxel "
                f"has {int(frequency.max())}); lower --min-patients, --roi-size or --n-rois"
            )
        c = tuple(int(v) for v in cand[rng.integers(len(cand))])
        centres.append(c)
        # Cubes overlap iff their centres differ by < roi_size on every axis.
        allowed[tuple(slice(max(0, v - roi_size + 1), v + roi_size) for v in c)] = False
    return centres


def roi_label_image(shape: tuple[int, int, int], centres: list[tuple[int, ...]],
                    roi_size: int) -> np.ndarray:
    """Label volume (int16) with ROI k (1-based, in ``centres`` order) = k, background 0."""
    labels = np.zeros(shape, dtype=np.int16)
    for k, c in enumerate(centres, start=1):
        labels[_cube_slices(c, roi_size)] = k
    return labels


def overlap_fractions(data: np.ndarray, labels: np.ndarray, n_rois: int | None = None) -> np.ndarray:
    """Algorithm 1: ``|lesion_i ∩ ROI_n| / |ROI_n|`` for every subject i and ROI n.

    Parameters
    ----------
    data : ndarray of shape (n_subjects, X, Y, Z)
        Binary lesion maps.
    labels : ndarray of shape (X, Y, Z)
        ROI label volume (ROI n has value n).

    Returns
    -------
    ndarray of shape (n_subjects, n_rois)
    """
    n_rois = int(labels.max()) if n_rois is None else n_rois
    out = np.zeros((data.shape[0], n_rois), dtype=np.float64)
    flat = data.reshape(data.shape[0], -1)
    for n in range(1, n_rois + 1):
        idx = np.flatnonzero(labels.ravel() == n)
        if len(idx) == 0:
            raise DeepLSMError(f"ROI {n} is empty")
        out[:, n - 1] = flat[:, idx].sum(axis=1, dtype=np.int64) / len(idx)
    return out


@fill_doc
def simulate_scores(
    fractions: np.ndarray,
    *,
    weights: np.ndarray | None = None,
    noise: float = 0.0,
    volumes: np.ndarray | None = None,
    volume_weight: float = 0.0,
    clip: bool = True,
    random_state: int | np.random.Generator | None = None,
) -> np.ndarray:
    """Scores from ROI overlap fractions, with the paper's future-work extensions.

    Parameters
    ----------
    fractions : ndarray of shape (n_subjects, n_rois)
        Output of :func:`overlap_fractions`.
    weights : ndarray of shape (n_scores, n_rois) or None, default=None
        Each score is a weighted sum of ROI fractions (rows are normalised to sum to 1, so a
        score stays in [0, 1]). Default: identity (the paper: score n = ROI n).
    noise : float, default=0.0
        Gaussian noise SD as a fraction of each score's SD.
    volumes : ndarray of shape (n_subjects,) or None
        Lesion volumes, needed when ``volume_weight`` is non-zero.
    volume_weight : float, default=0.0
        Lesion-volume confound: adds ``volume_weight · SD(score) · z(log volume)``.
    clip : bool, default=True
        Clip to [0, 1], the range of the ``regression01`` output.
    %(random_state)s

    Returns
    -------
    ndarray of shape (n_subjects, n_scores)
    """
    rng = check_random_state(random_state)
    fractions = np.asarray(fractions, dtype=np.float64)
    if weights is None:
        scores = fractions.copy()
    else:
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim != 2 or w.shape[1] != fractions.shape[1]:
            raise DeepLSMError(
                f"weights must have shape (n_scores, {fractions.shape[1]}), got {w.shape}"
            )
        if (w < 0).any() or (w.sum(axis=1) <= 0).any():
            raise DeepLSMError("weights must be non-negative with a positive sum per score")
        scores = fractions @ (w / w.sum(axis=1, keepdims=True)).T
    sd = scores.std(axis=0)
    if volume_weight:
        if volumes is None:
            raise DeepLSMError("volume_weight needs lesion volumes")
        lv = np.log1p(np.asarray(volumes, dtype=np.float64))
        z = (lv - lv.mean()) / (lv.std() + 1e-12)
        scores = scores + volume_weight * sd * z[:, None]
    noise = check_param("noise", noise, NonNegativeFloat)
    if noise:
        scores = scores + rng.normal(0.0, 1.0, scores.shape) * (noise * sd)
    if clip:
        scores = np.clip(scores, 0.0, 1.0)
    return scores


@dataclass
class Simulation:
    """A simulated LSM problem: ground-truth labels on the cohort grid and one score per column.

    ``truth`` maps each score name to the labels of ``labels`` that drive it (its ground truth is
    their union); ``tracts`` holds the fibre images of the ``tract`` scenario (see
    :func:`deeplsm.simulate.tract_fibres`). ``centres_vox``/``centres_mm`` hold one centre per
    label (a cube's centre, or a tube's midpoint).
    """

    centres_vox: list[tuple[int, int, int]]
    centres_mm: list[list[float]]
    labels: np.ndarray  # int16 (X, Y, Z)
    fractions: np.ndarray  # (n_subjects, n_labels)
    scores: np.ndarray  # (n_subjects, n_scores)
    score_names: list[str]
    params: dict = field(default_factory=dict)
    truth: dict[str, list[int]] = field(default_factory=dict)
    tracts: list[np.ndarray] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"centres_vox": [list(c) for c in self.centres_vox],
                "centres_mm": self.centres_mm, "score_names": self.score_names,
                "truth_labels": self.truth, "params": self.params}


def _tracts(cohort: LesionCohort, ends: list, radius: float
            ) -> tuple[np.ndarray, list[np.ndarray], list[dict]]:
    """Tube k between ends 2k and 2k+1: label image (tube k = k), fibre images, descriptions."""
    occurs = cohort.frequency_map() > 0
    labels = np.zeros(cohort.shape, dtype=np.int16)
    tracts, info = [], []
    for k in range(len(ends) // 2):
        a, b = ends[2 * k], ends[2 * k + 1]
        # Only where lesions occur; a voxel already in an earlier tube stays there.
        fib = tract_fibres(cohort.shape, cohort.affine, a, b, radius, where=occurs & (labels == 0))
        labels[fib > 0] = k + 1
        tracts.append(fib)
        a_mm, b_mm = (cohort.affine[:3, :3] @ np.asarray(c, float) + cohort.affine[:3, 3] for c in (a, b))
        info.append({"start_vox": list(a), "end_vox": list(b),
                     "start_mm": [round(float(v), 3) for v in a_mm],
                     "end_mm": [round(float(v), 3) for v in b_mm], "n_voxels": int((fib > 0).sum()),
                     "n_fibres": int(fib.max())})
    return labels, tracts, info


@fill_doc
def simulate(
    cohort: LesionCohort,
    *,
    scenario: str = "linear",
    n_rois: int = 3,
    roi_size: int | None = 8,
    roi_size_mm: float | None = None,
    min_patients: int = 10,
    weights: np.ndarray | None = None,
    noise: float = 0.0,
    volume_weight: float = 0.0,
    clip: bool = True,
    threshold_at: float = THRESHOLD_AT,
    threshold_steepness: float = THRESHOLD_STEEPNESS,
    tract_radius_mm: float | None = None,
    random_state: int | None = None,
) -> Simulation:
    """Select ground-truth regions on ``cohort`` and simulate one score per region (or pair).

    ``linear`` is the paper (ROI selection, then Algorithm 1); the other scenarios are described
    in :mod:`deeplsm.simulate._scenarios`. Every scenario gives ``n_rois`` scores: ``linear``,
    ``mixture`` and ``threshold`` select ``n_rois`` cubes; ``and``, ``or`` and ``tract`` select
    ``n_rois`` pairs of cubes (for ``tract`` the cubes are only the tubes' ends, and the label
    image holds the tubes).

    Parameters
    ----------
    %(lesions)s
    scenario : {"linear", "mixture", "and", "or", "threshold", "tract"}, default="linear"
    n_rois, min_patients : int
        See :func:`select_roi_centres`.
    roi_size : int or None, default=8
        Cube side in voxels (ignored when ``roi_size_mm`` is given).
    roi_size_mm : float or None, default=None
        Cube side in mm, rounded to whole voxels of the cohort grid.
    weights : ndarray of shape (n_scores, n_rois) or None, default=None
        ``linear`` and ``mixture`` only: each score mixes ROIs (see :func:`simulate_scores`).
        ``mixture`` draws seeded weights when none are given (:func:`mixture_weights`).
    noise, volume_weight, clip
        See :func:`simulate_scores`; applied to every scenario's noise-free score.
    threshold_at, threshold_steepness : float
        ``threshold`` only: see :func:`critical_mass`.
    tract_radius_mm : float or None, default=None
        ``tract`` only: tube radius; default half the cube side in mm.
    random_state : int or None, default=None
        Seed for the regions, the mixture weights and the noise.

    Returns
    -------
    Simulation
    """
    check_scenario(scenario)
    size = roi_side_voxels(cohort.shape, cohort.voxel_size, roi_size=roi_size,
                           roi_size_mm=roi_size_mm)
    n_rois = check_param("n_rois", n_rois, PositiveInt)
    noise = check_param("noise", noise, NonNegativeFloat)
    volume_weight = check_param("volume_weight", volume_weight, AnyFloat)
    if weights is not None and scenario not in ("linear", "mixture"):
        raise DeepLSMError(f"weights apply to the linear and mixture scenarios, not {scenario!r}")
    rng = np.random.default_rng(random_state)
    params: dict = {"scenario": scenario}
    tracts: list[np.ndarray] = []
    if scenario in PAIR_SCENARIOS:
        # 'and' needs subjects who damage both ROIs; a tract is at least 3 cube sides long.
        centres = select_roi_pairs(cohort.data, n_pairs=n_rois, roi_size=size,
                                   min_patients=min_patients, colesioned=scenario == "and",
                                   min_distance=3 * size if scenario == "tract" else 0.0,
                                   random_state=rng)
    else:
        centres = select_roi_centres(cohort.frequency_map(), n_rois=n_rois, roi_size=size,
                                     min_patients=min_patients, random_state=rng)
    # The geometric centre of a cube of even side lies half a voxel below the index centre.
    geo = [np.asarray(c, float) - 0.5 * (1 - size % 2) for c in centres]
    centres_mm = [[round(float(v), 3) for v in cohort.affine[:3, :3] @ g + cohort.affine[:3, 3]]
                  for g in geo]
    if scenario == "tract":
        radius = float(tract_radius_mm) if tract_radius_mm is not None else (
            size * float(np.mean(cohort.voxel_size)) / 2)
        labels, tracts, info = _tracts(cohort, centres, radius)
        fractions = overlap_fractions(cohort.data, labels, n_rois)
        clean = np.stack([cut_share(cohort.data, fib) for fib in tracts], axis=1)
        truth = [[k + 1] for k in range(n_rois)]
        params.update({"tract_radius_mm": radius, "tracts": info})
        # One centre per label: the tube's midpoint.
        centres = [tuple(round((p + q) / 2) for p, q in zip(t["start_vox"], t["end_vox"])) for t in info]
        centres_mm = [[round((p + q) / 2, 3) for p, q in zip(t["start_mm"], t["end_mm"])] for t in info]
    else:
        labels = roi_label_image(cohort.shape, centres, size)
        fractions = overlap_fractions(cohort.data, labels, len(centres))
        if scenario in ("linear", "mixture"):
            if scenario == "mixture" and weights is None:
                weights = mixture_weights(n_rois, random_state=rng)
            clean = fractions  # simulate_scores applies the weights
            w = np.eye(n_rois) if weights is None else np.asarray(weights, dtype=np.float64)
            truth = [[j + 1 for j in np.flatnonzero(row)] for row in np.atleast_2d(w)]
        elif scenario == "threshold":
            clean = critical_mass(fractions, at=threshold_at, steepness=threshold_steepness)
            truth = [[k + 1] for k in range(n_rois)]
            params.update({"threshold_at": threshold_at, "threshold_steepness": threshold_steepness})
        else:  # and / or
            clean = pair_rule(fractions, scenario)
            truth = [[2 * k + 1, 2 * k + 2] for k in range(n_rois)]
    scores = simulate_scores(clean, weights=weights if scenario in ("linear", "mixture") else None,
                             noise=noise, volumes=cohort.lesion_volumes_ml(),
                             volume_weight=volume_weight, clip=clip, random_state=rng)
    names = [f"score_{k + 1}" for k in range(scores.shape[1])]
    params = {"n_rois": n_rois, "roi_size": size, "roi_size_mm": roi_size_mm,
              "min_patients": min_patients, "weights": None if weights is None else
              np.asarray(weights).tolist(), "noise": noise, "volume_weight": volume_weight,
              "clip": clip, "seed": random_state, **params}
    return Simulation(centres, centres_mm, labels, fractions, scores, names, params,
                      truth={n: [int(v) for v in t] for n, t in zip(names, truth)}, tracts=tracts)

"""Localisation metrics: how well a (probabilistic) map finds a binary ROI.

Every metric is computed inside a brain mask (by default nilearn's MNI152 brain mask resampled
to the map's grid); the result says which mask was used.
"""

from __future__ import annotations

import functools
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np

from deeplsm._validation import AFFINE_TOLERANCE_MM, check_path_exists
from deeplsm.exceptions import DeepLSMError

__all__ = [
    "average_precision",
    "best_f1_dice",
    "brain_mask_for",
    "continuous_dice",
    "evaluate_map",
    "evaluate_maps",
    "label_list",
    "pr_auc_trapezoid",
    "pr_curve",
    "truth_centres",
]

N_THRESHOLDS = 1000

#: Changes whenever a metric's definition changes, so cached evaluations are recomputed.
METRICS_VERSION = "3 (distances to the nearest truth component)"

#: How the headline numbers are defined; written into every evaluation result.
DEFINITIONS = {
    "pr_auc": "step-wise average precision, sum_k (R_k - R_{k-1}) P_k over the distinct map values "
              "from high to low, tied voxels entering together (sklearn.metrics."
              "average_precision_score); an all-zero or constant map scores the prevalence",
    "average_precision": "the same number as pr_auc (kept for the stable schema)",
    "pr_auc_trapezoid": "trapezoid area under the PR curve at n_thresholds evenly spaced "
                        "thresholds (as the paper's figure), extended flat to recall 0 with the "
                        "precision of the highest threshold; reference only, it rewards blocky maps",
    "dice_best": "best Dice of (map >= t) over every distinct map value t",
    "truth_components": "26-connected components of the truth (voxels sharing a face, edge or "
                        "corner belong together); each has its centre, the centroid of its voxels "
                        "inside the mask",
    "peak_distance_mm": "mm from the map's maximum (the centroid of the voxels tied at it) to the "
                        "truth's centre; for a truth of several components, to the NEAREST "
                        "component's centre: each peak voxel goes to the zone of the component "
                        "centre nearest to it, and the distances from the zones' peak centroids to "
                        "their centres are averaged, weighted by peak voxels (one peak voxel: the "
                        "distance to the nearest centre)",
    "com_distance_mm": "mm from the centre of mass of the map's positive part to the truth's "
                       "centre; for a truth of several components, the map's mass is split into "
                       "the zones of the component centres (each voxel to the nearest centre), and "
                       "the distances from each zone's centre of mass to its centre are averaged, "
                       "weighted by mass: 0 for a map centred on every component it covers, "
                       "where the union's centroid would lie between the components",
}
_NIFTI_RE = re.compile(r"\.nii(\.gz)?$", re.IGNORECASE)


# --- array metrics (1D: voxels already restricted to the mask) ------------------------------
def _flat(values, roi) -> tuple[np.ndarray, np.ndarray]:
    v = np.asarray(values, dtype=np.float64).ravel()
    y = np.asarray(roi).ravel() > 0
    if v.shape != y.shape:
        raise DeepLSMError(f"map has {v.size} voxels but the ROI has {y.size}")
    if not np.isfinite(v).all():
        raise DeepLSMError("map contains NaN or Inf values")
    return v, y


def _counts(v: np.ndarray, y: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predicted positives (v >= t) and true positives at each threshold."""
    order = np.argsort(-v, kind="stable")
    asc = v[order][::-1]
    ctp = np.concatenate([[0], np.cumsum(y[order])])
    n_pred = v.size - np.searchsorted(asc, thresholds, side="left")
    return n_pred, ctp[n_pred]


def pr_curve(values, roi, *, n_thresholds: int = N_THRESHOLDS,
             thresholds: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision and recall of ``values >= t`` against ``roi`` for thresholds from max to min.

    Precision = TP / (TP + FP), recall = TP / (TP + FN). A threshold that selects no voxel has
    precision 1 (as scikit-learn).

    Parameters
    ----------
    values : array-like
        Map values (any shape; flattened).
    roi : array-like of the same size
        Binary ROI (nonzero = inside).
    n_thresholds : int, default=1000
        Evenly spaced thresholds from ``max(values)`` down to ``min(values)``.
    thresholds : array-like or None
        Use these thresholds instead (in the order given).

    Returns
    -------
    precision, recall, thresholds : ndarrays of shape (n_thresholds,)

    Examples
    --------
    >>> p, r, t = pr_curve([0.9, 0.5, 0.1, 0.0], [1, 0, 1, 0], n_thresholds=3)
    >>> p.round(3).tolist(), r.tolist()
    ([1.0, 0.5, 0.5], [0.5, 0.5, 1.0])
    """
    v, y = _flat(values, roi)
    if v.size == 0:
        raise DeepLSMError("the map has no voxels (inside the mask)")
    n_pos = int(y.sum())
    if n_pos == 0:
        raise DeepLSMError("the ROI is empty (inside the mask)")
    if thresholds is None:
        if not isinstance(n_thresholds, int | np.integer) or n_thresholds < 2:
            raise DeepLSMError(f"n_thresholds must be an integer >= 2, got {n_thresholds!r}")
        thresholds = np.linspace(v.max(), v.min(), int(n_thresholds))
    thresholds = np.asarray(thresholds, dtype=np.float64)
    n_pred, tp = _counts(v, y, thresholds)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(n_pred > 0, tp / np.maximum(n_pred, 1), 1.0)
    recall = tp / n_pos
    return precision, recall, thresholds


def pr_auc_trapezoid(precision, recall) -> float:
    """Area under a PR curve by the trapezoid rule (the paper's figure), for reference only.

    Points are sorted by recall. When the curve does not start at recall 0 it is extended
    flat to recall 0 with the precision of its first point (the highest threshold), not with
    precision 1: an all-zero or constant map then scores its prevalence, as it should. Joining
    tied points by straight lines still favours blocky maps (it interpolates precision between
    thresholds that no map can realise), so the headline ``pr_auc`` is
    :func:`average_precision`.

    Examples
    --------
    >>> pr_auc_trapezoid([1.0, 1.0], [0.5, 1.0])
    1.0
    >>> pr_auc_trapezoid([0.25], [1.0])  # a flat map: one point, at the prevalence
    0.25
    """
    p = np.asarray(precision, dtype=np.float64)
    r = np.asarray(recall, dtype=np.float64)
    if p.size == 0 or p.shape != r.shape:
        raise DeepLSMError("precision and recall must be non-empty arrays of the same length")
    order = np.lexsort((-p, r))  # by recall, and at equal recall from high to low precision
    p, r = p[order], r[order]
    if r[0] > 0:
        p, r = np.r_[p[0], p], np.r_[0.0, r]
    return float(np.sum(np.diff(r) * (p[1:] + p[:-1]) / 2.0))


def average_precision(values, roi) -> float:
    """The headline PR-AUC: step-wise average precision, as scikit-learn's
    ``average_precision_score``.

    AP = Σ_k (R_k − R_{k−1}) · P_k over the distinct map values taken as thresholds from high
    to low (voxels tied at a value enter together), with R_0 = 0. No interpolation: a map that
    does not rank ROI voxels first cannot score above the precision it reaches, and an
    all-zero or constant map scores exactly the prevalence.

    Examples
    --------
    >>> average_precision([0.0, 0.0, 0.0, 0.0], [1, 0, 0, 0])
    0.25
    >>> average_precision([0.9, 0.5, 0.5, 0.1], [1, 1, 0, 0])  # (1/2)·1 + (1/2)·(2/3)
    0.8333333333333333
    """
    from sklearn.metrics import average_precision_score

    v, y = _flat(values, roi)
    if not y.any():
        raise DeepLSMError("the ROI is empty (inside the mask)")
    return float(average_precision_score(y, v))


def continuous_dice(roi, values) -> float:
    """Continuous Dice coefficient (Shamir et al.) of a map ``B`` against a binary ROI ``A``.

    cDC = 2·Σ(A·B) / (c·ΣA + ΣB) with c = Σ(A·B) / Σ(A·sign(B)), and c = 1 when A and B do not
    overlap. Equals ordinary Dice for a binary map, is invariant to scaling B, and is 0 for an
    all-zero map.

    Examples
    --------
    >>> a = np.array([1, 1, 0, 0])
    >>> continuous_dice(a, 0.3 * a)
    1.0
    >>> continuous_dice(a, np.array([1, 0, 1, 0]))
    0.5
    """
    b, a = _flat(values, roi)
    a = a.astype(np.float64)
    ab = float((a * b).sum())
    a_sign = float((a * np.sign(b)).sum())
    c = ab / a_sign if a_sign != 0 and ab != 0 else 1.0
    den = c * a.sum() + b.sum()
    if not np.any(b) or den == 0:
        return 0.0
    return float(2.0 * ab / den)


def best_f1_dice(values, roi, *, n_thresholds: int | None = None) -> tuple[float, float]:
    """Best Dice (= F1) of the binary map ``values >= t`` over thresholds; returns (dice, t).

    By default every distinct map value is tried (scikit-learn's thresholds), so the result is
    the best Dice any threshold of the map can reach. Voxels tied at a value are always
    selected together; a constant map can only select every voxel. With ``n_thresholds`` the
    thresholds are evenly spaced from max to min instead (as :func:`pr_curve`).

    Examples
    --------
    >>> best_f1_dice([0.9, 0.8, 0.8, 0.1], [1, 1, 0, 0])  # t = 0.8 selects 3 voxels: 2·2 / (3 + 2)
    (0.8, 0.8)
    """
    v, y = _flat(values, roi)
    if v.size == 0 or not y.any():
        raise DeepLSMError("the ROI is empty (inside the mask)")
    if n_thresholds is None:
        thresholds = np.unique(v)[::-1]
    else:
        thresholds = np.linspace(v.max(), v.min(), int(n_thresholds))
    n_pred, tp = _counts(v, y, thresholds)
    dice = 2.0 * tp / (n_pred + y.sum())
    k = int(np.argmax(dice))
    return float(dice[k]), float(thresholds[k])


# --- images -------------------------------------------------------------------------------
def _load_img(img, what: str) -> nib.Nifti1Image:
    if isinstance(img, str | os.PathLike):
        p = check_path_exists(img, what)
        try:
            img = nib.load(str(p))
        except Exception as err:  # nibabel raises several types for bad files
            raise DeepLSMError(f"{p}: cannot read {what} as NIfTI ({err})") from None
    if not isinstance(img, nib.spatialimages.SpatialImage):
        raise DeepLSMError(f"{what} must be a NIfTI image or path, got {type(img).__name__}")
    return img


def _data3d(img, what: str) -> np.ndarray:
    data = np.asarray(img.dataobj, dtype=np.float64)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise DeepLSMError(f"{what} must be a 3D image, got shape {data.shape}")
    return data


def _same_grid(a, b) -> bool:
    return a.shape[:3] == b.shape[:3] and np.allclose(a.affine, b.affine, atol=AFFINE_TOLERANCE_MM)


@functools.lru_cache(maxsize=8)
def _mni_mask_cached(shape: tuple[int, int, int], affine_bytes: bytes) -> np.ndarray:
    from nilearn.datasets import load_mni152_brain_mask
    from nilearn.image import resample_img

    affine = np.frombuffer(affine_bytes, dtype=np.float64).reshape(4, 4)
    from nilearn.image.resampling import BoundingBoxError

    mask = load_mni152_brain_mask(resolution=1)
    try:
        res = resample_img(mask, target_affine=affine, target_shape=shape, interpolation="nearest",
                           force_resample=True, copy_header=True)
    except BoundingBoxError:  # the grid does not overlap the template at all
        return np.zeros(shape, bool)
    return np.asarray(res.dataobj) > 0


def brain_mask_for(shape: Sequence[int], affine: np.ndarray) -> np.ndarray:
    """nilearn's MNI152 brain mask resampled (nearest neighbour) to a grid; boolean (X, Y, Z)."""
    shape = tuple(int(s) for s in shape[:3])
    return _mni_mask_cached(shape, np.ascontiguousarray(affine, dtype=np.float64).tobytes()).copy()


def _resolve_mask(mask_img, shape, affine, roi: np.ndarray) -> tuple[np.ndarray, dict]:
    """Boolean mask on the ROI grid plus a description for the output."""
    if mask_img is False or (isinstance(mask_img, str) and mask_img.lower() == "none"):
        return np.ones(shape, bool), {"kind": "all_voxels", "reason": "no mask requested"}
    if mask_img is None or (isinstance(mask_img, str) and mask_img.lower() == "mni"):
        m = brain_mask_for(shape, affine)
        n_roi = int(roi.sum())
        inside = int((roi & m).sum())
        if not m.any():
            return np.ones(shape, bool), {
                "kind": "all_voxels",
                "reason": "the MNI152 brain mask covers no voxel of this grid (not MNI space?)"}
        if n_roi and inside < 0.5 * n_roi:
            return np.ones(shape, bool), {
                "kind": "all_voxels",
                "reason": f"only {inside} of {n_roi} ROI voxels lie in the MNI152 brain mask "
                          "(not MNI space?)"}
        return m, {"kind": "mni152_brain_mask",
                   "source": "nilearn.datasets.load_mni152_brain_mask(resolution=1), "
                             "nearest-neighbour resampled to the truth grid"}
    img = _load_img(mask_img, "mask")
    data = _data3d(img, "mask")
    if data.shape != tuple(shape) or not np.allclose(img.affine, affine, atol=1e-3):
        from nilearn.image import resample_img

        img = resample_img(img, target_affine=affine, target_shape=shape, interpolation="nearest",
                           force_resample=True, copy_header=True)
        data = _data3d(img, "mask")
    m = data > 0
    if not m.any():
        raise DeepLSMError("the mask covers no voxel")
    src = str(mask_img) if isinstance(mask_img, str | os.PathLike) else "image"
    return m, {"kind": "file", "source": src}


def _world(ijk: np.ndarray, affine: np.ndarray) -> np.ndarray:
    return ijk @ affine[:3, :3].T + affine[:3, 3]


def truth_centres(roi, affine: np.ndarray, *, within=None) -> np.ndarray:
    """Centres in mm of the connected components of a binary truth, largest first.

    Components are 26-connected: voxels that share a face, an edge or a corner belong together,
    so a rasterised oblique tube stays one component. A component's centre is the centroid of
    its voxels inside ``within`` (default: all of them); a component with no voxel there is left
    out. Components are ordered by their voxels inside ``within``, largest first (ties in scan
    order).

    Parameters
    ----------
    roi : array-like of shape (X, Y, Z)
        Binary truth (nonzero = inside).
    affine : ndarray of shape (4, 4)
        Voxel to mm.
    within : array-like of bool of shape (X, Y, Z) or None, default=None
        The mask the metrics are restricted to.

    Returns
    -------
    ndarray of shape (n_components, 3)

    Examples
    --------
    >>> roi = np.zeros((7, 1, 1)); roi[[0, 1, 5], 0, 0] = 1
    >>> truth_centres(roi, np.diag([2.0, 1.0, 1.0, 1.0]))[:, 0].tolist()  # voxels 0.5 and 5
    [1.0, 10.0]
    >>> roi[[4, 6], 0, 0] = 1  # now voxels 4-6 form the larger component
    >>> truth_centres(roi, np.diag([2.0, 1.0, 1.0, 1.0]))[:, 0].tolist()
    [10.0, 1.0]
    """
    from scipy import ndimage

    roi = np.asarray(roi) > 0
    lab, n = ndimage.label(roi, structure=np.ones((3, 3, 3), bool))
    if n == 0:
        return np.zeros((0, 3))
    weight = (roi if within is None else roi & np.asarray(within, bool)).astype(np.float64)
    index = np.arange(1, n + 1)
    counts = np.asarray(ndimage.sum(weight, lab, index))
    order = np.argsort(-counts, kind="stable")
    keep = index[order][counts[order] > 0]
    if keep.size == 0:
        return np.zeros((0, 3))
    ijk = np.asarray(ndimage.center_of_mass(weight, lab, keep), dtype=np.float64).reshape(-1, 3)
    return _world(ijk, np.asarray(affine, dtype=np.float64))


def _zone_distance(ijk: np.ndarray, weights: np.ndarray, centres: np.ndarray,
                   affine: np.ndarray) -> float:
    """Weighted mean over truth components of the distance from the centroid of the voxels in a
    component's zone (the voxels nearer to its centre than to any other) to that centre."""
    xyz = _world(ijk.astype(np.float64), affine)
    d2 = np.stack([((xyz - c) ** 2).sum(1) for c in centres], axis=1)
    zone = d2.argmin(1)
    total = 0.0
    for k in np.unique(zone):
        sel = zone == k
        w = weights[sel]
        point = (xyz[sel] * w[:, None]).sum(0) / w.sum()
        total += float(w.sum()) * float(np.linalg.norm(point - centres[k]))
    return total / float(weights.sum())


def evaluate_map(map_img, roi_img, mask_img=None, *, n_thresholds: int = N_THRESHOLDS) -> dict:
    """All localisation metrics of one map against one binary ROI, inside a brain mask.

    Parameters
    ----------
    map_img : path or NIfTI image
        Any 3D map (higher = more likely in the ROI). Resampled (linear) to the ROI's grid when
        the grids differ. NaN voxels are left out.
    roi_img : path or NIfTI image
        Binary ROI (nonzero = inside).
    mask_img : None, 'mni', 'none', False, path or image, default=None
        ``None``/``'mni'``: nilearn's MNI152 brain mask, nearest-resampled to the grid; it falls
        back to all voxels when it covers nothing or holds under half of the ROI (maps not in
        MNI space). ``'none'``/``False``: all voxels. Otherwise a mask image.
    n_thresholds : int, default=1000

    Returns
    -------
    dict
        ``pr_auc`` (step-wise average precision, see :func:`average_precision`),
        ``average_precision`` (the same number), ``pr_auc_trapezoid`` (see
        :func:`pr_auc_trapezoid`), ``prevalence``, ``cdc``, ``dice_best``,
        ``dice_best_threshold``, ``peak_distance_mm``, ``com_distance_mm``, ``roi_centre_mm``
        (the centroid of the ROI), ``truth_components`` and ``roi_centres_mm`` (its connected
        components and their centres, see :func:`truth_centres`), ``precision``, ``recall``,
        ``thresholds`` (the curve, max to min), and ``mask`` (which mask, voxel counts).

    Notes
    -----
    Distances are in mm, through the affine. For a ROI of one connected component,
    ``peak_distance_mm`` runs from the ROI's centroid to the map's maximum (the centroid of the
    voxels tied at it; ``None`` for a constant map) and ``com_distance_mm`` to the centre of mass
    of the map's positive part (``None`` without one). For a ROI of several components (two
    regions that drive one score, a broken tract), the union's centroid can lie between the
    regions, where a map that finds them both has nothing. Each component then has a zone, the
    voxels nearer to its centre than to any other component's centre: the peak voxels, and the
    map's positive mass, are split into the zones, and each distance is the mean, weighted by
    peak voxels or by mass, of the distances from a zone's peak centroid or centre of mass to its
    component's centre. A single peak voxel is thus measured to the nearest component's centre,
    and a map centred on each region it covers scores 0.
    """
    roi_i = _load_img(roi_img, "ROI")
    roi = _data3d(roi_i, "ROI") > 0
    m_i = _load_img(map_img, "map")
    resampled = False
    if not _same_grid(m_i, roi_i):
        from nilearn.image import resample_to_img

        with warnings.catch_warnings():  # nilearn warns when the map happens to be binary
            warnings.simplefilter("ignore", UserWarning)
            m_i = resample_to_img(m_i, roi_i, interpolation="continuous", force_resample=True,
                                  copy_header=True)
        resampled = True
    values = _data3d(m_i, "map")
    mask, mask_info = _resolve_mask(mask_img, roi.shape, roi_i.affine, roi)
    finite = np.isfinite(values)
    use = mask & finite
    v, y = values[use], roi[use]
    mask_info = {**mask_info, "n_voxels": int(use.sum()), "roi_voxels": int(y.sum()),
                 "roi_voxels_outside_mask": int((roi & ~mask).sum()),
                 "nan_voxels_left_out": int((mask & ~finite).sum())}
    if not y.any():
        raise DeepLSMError("the ROI has no voxel inside the mask")
    precision, recall, thr = pr_curve(v, y, n_thresholds=n_thresholds)
    dice, dice_t = best_f1_dice(v, y)
    ap = average_precision(v, y)
    affine = roi_i.affine
    ijk = np.argwhere(use)
    centre = _world(np.argwhere(roi & use).mean(0), affine)
    centres = truth_centres(roi, affine, within=use)
    peak_d = com_d = None
    pos = np.maximum(v, 0.0)
    if len(centres) > 1:  # several regions: each to its nearest component's centre
        if v.max() > v.min():
            top = v == v.max()
            peak_d = _zone_distance(ijk[top], np.ones(int(top.sum())), centres, affine)
        if pos.sum() > 0:
            mass = pos > 0
            com_d = _zone_distance(ijk[mass], pos[mass], centres, affine)
    else:  # one region: distances to its centroid (as in every earlier metrics version)
        if v.max() > v.min():
            peak = _world(ijk[v == v.max()].mean(0), affine)
            peak_d = float(np.linalg.norm(peak - centre))
        if pos.sum() > 0:
            com = _world((ijk * pos[:, None]).sum(0) / pos.sum(), affine)
            com_d = float(np.linalg.norm(com - centre))
    return {
        "pr_auc": ap,
        "average_precision": ap,
        "pr_auc_trapezoid": pr_auc_trapezoid(precision, recall),
        "prevalence": float(y.mean()),
        "cdc": continuous_dice(y, pos),
        "dice_best": dice,
        "dice_best_threshold": dice_t,
        "peak_distance_mm": peak_d,
        "com_distance_mm": com_d,
        "roi_centre_mm": centre.tolist(),
        "truth_components": len(centres),
        "roi_centres_mm": centres.tolist(),
        "map_resampled_to_truth_grid": resampled,
        "mask": mask_info,
        "precision": precision,
        "recall": recall,
        "thresholds": thr,
    }


# --- many maps against a label image ------------------------------------------------------
def _map_files(maps) -> list[Path]:
    if isinstance(maps, str | os.PathLike):
        p = Path(maps)
        if p.is_dir():
            files = sorted(q for q in p.iterdir() if q.is_file() and _NIFTI_RE.search(q.name))
            if not files:
                raise DeepLSMError(f"no NIfTI maps (*.nii, *.nii.gz) in folder {p}")
            return files
        maps = [p]
    files = [Path(m) for m in maps]
    for f in files:
        if not f.exists():
            raise DeepLSMError(f"map does not exist: {f}")
        if not _NIFTI_RE.search(f.name):
            raise DeepLSMError(f"{f}: not a NIfTI file (expected .nii or .nii.gz)")
    if not files:
        raise DeepLSMError("no maps given")
    return files


def _truth_rois(truth) -> tuple[nib.Nifti1Image, dict[int, np.ndarray]]:
    """A 3D label image (labels 1..k) or a 4D stack (volume j is label j+1) -> label -> ROI."""
    img = _load_img(truth, "truth")
    data = np.asarray(img.dataobj, dtype=np.float64)
    if data.ndim == 4 and data.shape[3] > 1:
        rois = {j + 1: data[..., j] > 0 for j in range(data.shape[3])}
        ref = nib.Nifti1Image(np.zeros(data.shape[:3], np.uint8), img.affine)
    else:
        data = _data3d(img, "truth")
        if np.any(data < 0) or np.any(data != np.round(data)):
            raise DeepLSMError("truth must be a label image with integer labels 1..k (0 = background)")
        labels = sorted(int(v) for v in np.unique(data) if v > 0)
        rois = {k: data == k for k in labels}
        ref = nib.Nifti1Image(np.zeros(data.shape, np.uint8), img.affine)
    rois = {k: r for k, r in rois.items() if r.any()}
    if not rois:
        raise DeepLSMError("truth image has no ROI voxels")
    return ref, rois


_OUTPUT_RE = re.compile(r"(?:^|_)([A-Za-z]+_?\d+|\d+)$")


def label_list(name: str, value) -> list[int]:
    """One output's truth labels as a list: an integer label, or a list of distinct ones (their
    union is the truth); anything else raises a :class:`DeepLSMError` naming ``name``."""
    items = [value] if isinstance(value, int | np.integer) else value
    ok = isinstance(items, Sequence) and not isinstance(items, str) and len(items) > 0 and all(
        isinstance(k, int | np.integer) and not isinstance(k, bool) and k >= 1 for k in items)
    if not ok or len(set(items)) != len(items):
        raise DeepLSMError(f"labels for {name!r} must be a label (an integer >= 1) or a list of "
                           f"distinct labels, got {value!r}")
    return [int(k) for k in items]


def _match(stem: str, labels: Mapping[str, list[int]] | None,
           available: Sequence[int]) -> tuple[str, str, list[int]]:
    """File stem -> (method, output, labels)."""
    if labels:
        for name in sorted(labels, key=len, reverse=True):
            if stem == name or stem.endswith("_" + name):
                method = stem[: -len(name)].rstrip("_") or stem
                return method, name, list(labels[name])
        raise DeepLSMError(f"map {stem!r} matches none of the --labels names {', '.join(labels)}")
    m = _OUTPUT_RE.search(stem)
    if m:
        output = m.group(1)
        label = int(re.search(r"\d+$", output).group(0))
        method = stem[: m.start(1)].rstrip("_") or stem
        return method, output, [label]
    if len(available) == 1:
        return stem, f"label_{available[0]}", [int(available[0])]
    raise DeepLSMError(
        f"cannot tell which ROI map {stem!r} is for: name it ..._score_K (K = label) or pass "
        "labels (--labels NAME=K,...)"
    )


def _plus(labels: Sequence[int]) -> str:
    return "+".join(map(str, labels))


def evaluate_maps(maps, truth, *, labels: Mapping[str, int | Sequence[int]] | None = None,
                  mask=None, n_thresholds: int = N_THRESHOLDS) -> dict:
    """Score many maps against the ROIs of a truth image.

    Matching maps to ROIs: with ``labels`` (output name -> label, or list of labels), a map
    named ``{method}_{name}.nii[.gz]`` is scored against label ``labels[name]``, or against the
    union of the labels listed (a score driven by several regions). Without it the file name's
    trailing number is the label (``ig_score_2`` -> label 2, method ``ig``, output ``score_2``);
    when the truth has a single ROI, maps without a trailing number are scored against it.

    Parameters
    ----------
    maps : folder, path or list of paths
        A folder is read non-recursively (``*.nii``, ``*.nii.gz``).
    truth : path or image
        3D label image (0 = background, 1..k = ROIs), or a 4D stack with one ROI per volume.
    labels : mapping of str -> int or list of int, or None
        Every label must be in the truth.
    mask : see :func:`evaluate_map`
    n_thresholds : int, default=1000

    Returns
    -------
    dict with ``results`` (method -> output -> metrics, each with its ``label``: an integer, or
    the list of labels whose union was the ROI), ``mask``, ``matching``, ``labels`` (label ->
    voxels), ``truth_labels`` (output -> the list of labels used), ``definitions`` (how each
    metric is defined) and ``metrics_version``.
    """
    files = _map_files(maps)
    ref, rois = _truth_rois(truth)
    wanted = None if not labels else {str(k): label_list(str(k), v) for k, v in labels.items()}
    for name, ks in (wanted or {}).items():
        missing = [k for k in ks if k not in rois]
        if missing:
            raise DeepLSMError(f"labels {name}={_plus(ks)}: the truth has no label "
                               f"{', '.join(map(str, missing))} (it has {', '.join(map(str, sorted(rois)))})")
    results: dict[str, dict[str, dict]] = {}
    used: dict[str, list[int]] = {}
    masks = {}
    for f in files:
        stem = _NIFTI_RE.sub("", f.name)
        method, output, ks = _match(stem, wanted, sorted(rois))
        if any(k not in rois for k in ks):
            raise DeepLSMError(f"map {f.name} is for label {_plus(ks)}, but the truth has labels "
                               f"{', '.join(map(str, sorted(rois)))}")
        roi = rois[ks[0]] if len(ks) == 1 else np.logical_or.reduce([rois[k] for k in ks])
        roi_img = nib.Nifti1Image(roi.astype(np.uint8), ref.affine)
        res = evaluate_map(f, roi_img, mask, n_thresholds=n_thresholds)
        res["file"] = str(f)
        res["label"] = ks[0] if len(ks) == 1 else ks
        masks[res["mask"]["kind"]] = res["mask"]
        results.setdefault(method, {})[output] = res
        used[output] = ks
    return {
        "results": results,
        "mask": "; ".join(f"{k}" for k in masks) + " (all metrics are restricted to the mask)",
        "matching": "labels mapping" if labels else "trailing number of the map name = ROI label",
        "labels": {str(k): int(v.sum()) for k, v in rois.items()},
        "truth_labels": used,
        "definitions": DEFINITIONS,
        "metrics_version": METRICS_VERSION,
    }

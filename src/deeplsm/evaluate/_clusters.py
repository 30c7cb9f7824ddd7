"""Cluster and peak tables for statistic and attribution maps.

The clusters, their peaks and sub-peaks come from nilearn's
:func:`nilearn.reporting.get_clusters_table` (face-connected clusters, sub-peaks at least
``min_distance`` mm apart, plateau peaks at the plateau's centre); this module adds what it
lacks: the exact size in voxels and mm³, the centre of mass, voxel indices, one cluster
numbering across both signs, atlas labels, and a writer (``<map name>_clusters.tsv`` plus a JSON
sidecar recording how the table was made).
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage

from deeplsm._utils import atomic_path
from deeplsm._validation import check_path_exists
from deeplsm.exceptions import DeepLSMError

__all__ = ["Atlas", "cluster_table", "clusters_path", "load_atlas", "write_cluster_table"]

#: Default cluster-forming threshold for maps without one: this fraction of the map's
#: maximum absolute value (half-maximum clusters). Used for the [0, 1] attribution maps.
DEFAULT_RELATIVE_THRESHOLD = 0.5
#: Default smallest cluster kept, in mm³ (0.1 mL: 2 voxels at 4 mm, 100 at 1 mm).
DEFAULT_MIN_VOLUME_MM3 = 100.0
#: Voxel connectivity of the clusters (nilearn's: faces, AFNI's NN1).
CONNECTIVITY = 6

COLUMNS = ["cluster", "peak", "sign", "size_voxels", "size_mm3", "peak_value", "x_mm", "y_mm",
           "z_mm", "i", "j", "k", "com_x_mm", "com_y_mm", "com_z_mm"]
ATLAS_COLUMNS = ["label", "cluster_labels"]

_NIFTI_RE = re.compile(r"\.nii(\.gz)?$", re.IGNORECASE)


# --- atlas ------------------------------------------------------------------------------------
class Atlas:
    """A label image with a name per label, resampled (nearest neighbour) to each map's grid.

    Parameters
    ----------
    img : Nifti1Image
        3D image of non-negative integer labels (0 = no label).
    names : mapping of int -> str
        Name of each label; labels missing here are called ``"label <index>"``.
    source : str, default=''
        Where the atlas came from (recorded in the sidecar).
    """

    def __init__(self, img: nib.Nifti1Image, names: Mapping[int, str], source: str = "") -> None:
        self.img = img
        self.names = {int(k): str(v) for k, v in names.items()}
        self.source = source
        self._cache: dict[tuple, np.ndarray] = {}

    def name(self, index: int) -> str | None:
        """Name of ``index``; ``None`` for 0 (outside every labelled region)."""
        index = int(index)
        if index == 0:
            return None
        return self.names.get(index, f"label {index}")

    def on_grid(self, ref: nib.Nifti1Image) -> np.ndarray:
        """Integer labels on ``ref``'s grid (nearest neighbour; 0 outside the atlas)."""
        key = (tuple(ref.shape[:3]), np.round(ref.affine, 6).tobytes())
        if key not in self._cache:
            from nilearn.image import resample_img

            same = (self.img.shape[:3] == ref.shape[:3]
                    and np.allclose(self.img.affine, ref.affine, atol=1e-4))
            img = self.img if same else resample_img(
                self.img, target_affine=ref.affine, target_shape=ref.shape[:3],
                interpolation="nearest", fill_value=0, force_resample=True, copy_header=True)
            self._cache[key] = np.rint(np.asarray(img.dataobj, dtype=np.float64)).astype(np.int64)
        return self._cache[key]


def load_atlas(img, labels) -> Atlas:
    """Read a label image and its label table into an :class:`Atlas`.

    Parameters
    ----------
    img : path or Nifti1Image
        3D image of integer labels in the maps' space (MNI); any grid, it is resampled
        nearest-neighbour to each map.
    labels : path, DataFrame or mapping of int -> str
        Label table: a TSV or CSV file (delimiter detected) with the columns ``index`` and
        ``name`` (other columns are ignored), or the same as a DataFrame or a dict.

    Returns
    -------
    Atlas
    """
    source = ""
    if isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
        atlas_img = img
    else:
        path = check_path_exists(img, "atlas image")
        source = str(path)
        try:
            atlas_img = nib.load(str(path))
        except Exception as err:  # nibabel raises many kinds
            raise DeepLSMError(f"{path}: not a readable NIfTI image ({err})") from None
    if len(atlas_img.shape) > 3 and any(s != 1 for s in atlas_img.shape[3:]):
        raise DeepLSMError(f"atlas image{' ' + source if source else ''} is "
                           f"{len(atlas_img.shape)}D; give a 3D label image")
    data = np.asarray(atlas_img.dataobj, dtype=np.float64).reshape(atlas_img.shape[:3])
    if not np.isfinite(data).all() or np.any(data < 0) or np.any(data != np.rint(data)):
        raise DeepLSMError(f"atlas image{' ' + source if source else ''} must hold non-negative "
                           "integer labels (0 = none)")
    atlas_img = nib.Nifti1Image(data.astype(np.int32), atlas_img.affine)
    return Atlas(atlas_img, _read_labels(labels), source)


def _read_labels(labels) -> dict[int, str]:
    if isinstance(labels, Mapping):
        return {int(k): str(v) for k, v in labels.items()}
    if isinstance(labels, pd.DataFrame):
        df, where = labels, "atlas labels"
    else:
        path = check_path_exists(labels, "atlas label table")
        where = str(path)
        try:
            df = pd.read_csv(path, sep=None, engine="python", dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
            raise DeepLSMError(f"{path}: not a readable TSV/CSV table ({err})") from None
    cols = {str(c).strip().lower(): c for c in df.columns}
    if "index" not in cols or "name" not in cols:
        raise DeepLSMError(f"{where}: needs the columns 'index' and 'name'; "
                           f"found {', '.join(map(str, df.columns))}")
    out: dict[int, str] = {}
    for raw, name in zip(df[cols["index"]], df[cols["name"]], strict=True):
        try:
            idx = float(str(raw).strip())
        except ValueError:
            idx = float("nan")
        if not math.isfinite(idx) or idx != int(idx) or idx < 0:
            raise DeepLSMError(f"{where}: index {raw!r} is not a non-negative integer")
        if int(idx) in out:
            raise DeepLSMError(f"{where}: index {int(idx)} appears twice")
        out[int(idx)] = str(name).strip()
    return out


# --- the table --------------------------------------------------------------------------------
def _as_img(img) -> tuple[nib.Nifti1Image, str]:
    if isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
        return img, ""
    path = check_path_exists(img, "map")
    try:
        loaded = nib.load(str(path))
    except Exception as err:
        raise DeepLSMError(f"{path}: not a readable NIfTI image ({err})") from None
    return loaded, str(path)


def cluster_table(img, *, threshold: float | None = None,
                  relative_threshold: float = DEFAULT_RELATIVE_THRESHOLD,
                  two_sided: bool = True, min_volume_mm3: float = DEFAULT_MIN_VOLUME_MM3,
                  sub_peaks: int = 3, min_distance: float = 8.0, mask=None,
                  atlas: Atlas | str | os.PathLike | None = None,
                  atlas_labels=None) -> pd.DataFrame:
    """Clusters of a statistic or attribution map: size, peak, sub-peaks, centre of mass, labels.

    Voxels with ``value > threshold`` (and, when ``two_sided``, ``value < -threshold``) form
    face-connected clusters (6-connectivity, nilearn's convention); clusters smaller than
    ``min_volume_mm3`` are dropped. Peaks and sub-peaks are nilearn's
    :func:`~nilearn.reporting.get_clusters_table`'s: the highest local maximum, then up to three
    more at least ``min_distance`` mm apart; a flat top is reported at its centre.

    Parameters
    ----------
    img : path or Nifti1Image
        A 3D map in MNI space (coordinates come from its affine, any orientation).
    threshold : float or None, default=None
        Cluster-forming threshold in the map's units (e.g. a critical t). ``None``: the
        descriptive default ``relative_threshold * max|map|``.
    relative_threshold : float, default=0.5
        Fraction of the maximum absolute value used when ``threshold`` is None
        (half-maximum clusters; meant for normalised [0, 1] attribution maps).
    two_sided : bool, default=True
        Also report negative clusters (``value < -threshold``); their ``sign`` is ``'-'`` and
        their peak is the minimum.
    min_volume_mm3 : float, default=100
        Smallest cluster kept, in mm³ (rounded up to whole voxels). 0 keeps every cluster.
    sub_peaks : int, default=3
        Sub-peaks reported per cluster (0 to 3, nilearn's maximum).
    min_distance : float, default=8.0
        Minimum distance between a cluster's peaks, in mm.
    mask : array-like of bool or None, default=None
        Only these voxels can form clusters (e.g. the significant voxels of a test).
    atlas : Atlas, path or None, default=None
        Label image (see :func:`load_atlas`); with a path, ``atlas_labels`` is required.
    atlas_labels : path, DataFrame or mapping, optional
        Label table for a path ``atlas``.

    Returns
    -------
    pandas.DataFrame
        One row per peak, the clusters in nilearn's order (positive clusters by decreasing
        peak, then negative ones by decreasing ``|peak|``), numbered 1..K:

        ``cluster``, ``peak`` (0 for the cluster's peak, 1-3 for sub-peaks), ``sign``
        (``'+'`` / ``'-'``), ``size_voxels``, ``size_mm3``, ``peak_value``, ``x_mm``, ``y_mm``,
        ``z_mm`` (peak MNI coordinates), ``i``, ``j``, ``k`` (its voxel), ``com_x_mm``,
        ``com_y_mm``, ``com_z_mm`` (centre of mass weighted by ``|value|``), and with an atlas
        ``label`` (at the peak; missing outside every region) and ``cluster_labels`` (up to three
        regions with their share of the cluster's voxels). Cluster columns are filled on peak 0
        rows only. ``table.attrs`` records the threshold and settings.

    Examples
    --------
    >>> import nibabel as nib, numpy as np
    >>> data = np.zeros((9, 9, 9), np.float32)
    >>> data[2:5, 2:5, 2:5] = 0.6; data[3, 3, 3] = 1.0
    >>> table = cluster_table(nib.Nifti1Image(data, np.eye(4)), min_volume_mm3=0)
    >>> table[["cluster", "size_voxels", "peak_value", "x_mm", "y_mm", "z_mm"]].to_numpy().tolist()
    [[1, 27, 1.0, 3.0, 3.0, 3.0]]
    """
    img, source = _as_img(img)
    if len(img.shape) != 3 and not (len(img.shape) == 4 and img.shape[3] == 1):
        raise DeepLSMError(f"map{' ' + source if source else ''} must be 3D, got shape {img.shape}")
    data = np.asarray(img.dataobj, dtype=np.float64).reshape(img.shape[:3])
    if not np.isfinite(data).all():
        raise DeepLSMError(f"map{' ' + source if source else ''} contains NaN or Inf values")
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != data.shape:
            raise DeepLSMError(f"mask has shape {mask.shape} but the map has {data.shape}")
        data = np.where(mask, data, 0.0)
    if not 0 <= int(sub_peaks) <= 3:
        raise DeepLSMError(f"sub_peaks must be 0 to 3, got {sub_peaks}")
    if not min_distance > 0:
        raise DeepLSMError(f"min_distance must be positive, got {min_distance}")
    if min_volume_mm3 < 0:
        raise DeepLSMError(f"min_volume_mm3 must be >= 0, got {min_volume_mm3}")
    if isinstance(atlas, str | os.PathLike):
        if atlas_labels is None:
            raise DeepLSMError("an atlas image needs its label table (atlas_labels)")
        atlas = load_atlas(atlas, atlas_labels)

    peak_abs = float(np.abs(data).max()) if two_sided else float(max(data.max(), 0.0))
    if threshold is None:
        if not 0 < relative_threshold < 1:
            raise DeepLSMError(f"relative_threshold must be in (0, 1), got {relative_threshold}")
        thr, rule = relative_threshold * peak_abs, f"{relative_threshold:g} x max|value|"
    else:
        thr, rule = float(threshold), "given"
        if not (math.isfinite(thr) and thr >= 0):
            raise DeepLSMError(f"threshold must be a finite number >= 0, got {threshold}")
    affine = img.affine
    voxel_mm3 = float(abs(np.linalg.det(affine[:3, :3])))
    min_voxels = math.ceil(min_volume_mm3 / voxel_mm3 - 1e-9) if min_volume_mm3 > 0 else 0
    attrs = {"threshold": thr, "threshold_rule": rule, "two_sided": bool(two_sided),
             "min_volume_mm3": float(min_volume_mm3), "min_voxels": min_voxels,
             "connectivity": CONNECTIVITY, "sub_peaks": int(sub_peaks),
             "min_distance_mm": float(min_distance), "voxel_volume_mm3": voxel_mm3,
             "atlas": None if atlas is None else (atlas.source or "given")}

    columns = COLUMNS + (ATLAS_COLUMNS if atlas is not None else [])
    atlas_data = None if atlas is None else atlas.on_grid(nib.Nifti1Image(data, affine))
    rows: list[dict] = []
    for n, (sign, box, members, vox_peaks) in enumerate(
            _clusters(data, affine, thr, two_sided, min_voxels, min_distance), start=1):
        ijk = np.argwhere(members) + [sl.start for sl in box]
        w = np.abs(data[box][members])
        com = affine[:3, :3] @ ((ijk * w[:, None]).sum(0) / w.sum()) + affine[:3, 3]
        size = int(members.sum())
        info = {"size_voxels": size, "size_mm3": size * voxel_mm3,
                "com_x_mm": com[0], "com_y_mm": com[1], "com_z_mm": com[2]}
        if atlas_data is not None:
            info["cluster_labels"] = _label_shares(atlas_data[box][members], atlas)
        for p, vox in enumerate(vox_peaks[: 1 + int(sub_peaks)]):
            xyz = affine[:3, :3] @ vox + affine[:3, 3]
            row = {"cluster": n, "peak": p, "sign": "+" if sign > 0 else "-",
                   "peak_value": float(data[tuple(vox)]), "x_mm": xyz[0], "y_mm": xyz[1],
                   "z_mm": xyz[2], "i": int(vox[0]), "j": int(vox[1]), "k": int(vox[2])}
            if p == 0:
                row.update(info)
            if atlas_data is not None:
                row["label"] = atlas.name(atlas_data[tuple(vox)])
            rows.append(row)
    table = pd.DataFrame(rows, columns=columns)
    table = table.astype({"cluster": "int64", "peak": "int64", "size_voxels": "Int64",
                          "i": "int64", "j": "int64", "k": "int64"})
    for c in ("size_mm3", "peak_value", "x_mm", "y_mm", "z_mm", "com_x_mm", "com_y_mm", "com_z_mm"):
        table[c] = table[c].astype("float64")
    table.attrs.update(attrs)
    return table


def _clusters(data: np.ndarray, affine: np.ndarray, thr: float, two_sided: bool,
              min_voxels: int, min_distance: float):
    """Yield ``(sign, box, member mask in the box, peak voxels)`` per kept cluster, in nilearn's
    order: positive clusters by decreasing peak, then negative ones by decreasing ``|peak|``.

    Clusters are labelled here as nilearn labels them (face connectivity, ``value > thr``); the
    size filter counts exactly those voxels (nilearn's own ``cluster_threshold`` also counts
    voxels equal to the threshold, which its table then leaves out). Each cluster then goes to
    :func:`nilearn.reporting.get_clusters_table` alone, cropped to its bounding box plus one
    voxel of the zeros around it, so nilearn's filters see the neighbourhoods they would see in
    the whole image and the work stays proportional to the cluster (its per-cluster passes over
    the whole image are slow on 1 mm grids). Crops start at even indices, so numpy's
    round-half-to-even puts plateau centres where nilearn puts them in the whole image.
    """
    from nilearn.reporting import get_clusters_table

    struct = ndimage.generate_binary_structure(3, 1)
    for sign in (1, -1) if two_sided else (1,):
        signed = sign * data
        labels, n = ndimage.label(signed > thr, struct)
        if n == 0:
            continue
        index = np.arange(1, n + 1)
        sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
        peaks = np.asarray(ndimage.maximum(signed, labels, index))
        objects = ndimage.find_objects(labels)
        order = [k for k in np.lexsort((index, -peaks)) if sizes[k] >= max(min_voxels, 1)]
        for k in order:
            lo = np.array([max(sl.start - 1, 0) for sl in objects[k]])
            lo -= lo % 2
            hi = np.array([min(sl.stop + 1, dim) for sl, dim in zip(objects[k], data.shape,
                                                                   strict=True)])
            box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
            members = labels[box] == k + 1
            if sizes[k] == 1:
                yield sign, box, members, [np.argwhere(members)[0] + lo]
                continue
            crop_affine = affine.copy()
            crop_affine[:3, 3] = affine[:3, :3] @ lo + affine[:3, 3]
            crop = np.where(members, signed[box], 0.0)
            with warnings.catch_warnings():
                # nilearn warns when a plateau's centre falls outside the cluster (then it takes
                # the nearest cluster voxel); that is expected here
                warnings.simplefilter("ignore", UserWarning)
                raw = get_clusters_table(nib.Nifti1Image(crop, crop_affine), thr,
                                         cluster_threshold=0, two_sided=False,
                                         min_distance=min_distance)
            inv = np.linalg.inv(crop_affine)
            xyz = raw[["X", "Y", "Z"]].to_numpy(dtype=np.float64)
            vox = np.rint(xyz @ inv[:3, :3].T + inv[:3, 3]).astype(int) + lo
            yield sign, box, members, list(vox)


def _label_shares(labels: np.ndarray, atlas: Atlas, top: int = 3) -> str | None:
    idx, counts = np.unique(labels[labels > 0], return_counts=True)
    if idx.size == 0:
        return None
    order = np.argsort(-counts, kind="stable")[:top]
    return "; ".join(f"{atlas.name(idx[o])} ({100.0 * counts[o] / labels.size:.0f}%)" for o in order)


# --- writing ----------------------------------------------------------------------------------
def clusters_path(map_path: str | os.PathLike) -> Path:
    """``<folder>/<map name>_clusters.tsv`` for the map ``<folder>/<map name>.nii[.gz]``."""
    p = Path(map_path)
    return p.with_name(_NIFTI_RE.sub("", p.name) + "_clusters.tsv")


def write_cluster_table(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``table`` as a TSV (``n/a`` for missing values) and its settings (``table.attrs``)
    as a JSON sidecar next to it, each atomically.

    Returns
    -------
    Path of the TSV.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False, na_rep="n/a", float_format="%.6g")
    sidecar = {**table.attrs, "columns": list(table.columns)}
    with atomic_path(path.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(sidecar, indent=2, default=str) + "\n")
    return path

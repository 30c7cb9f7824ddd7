"""Group maps: per-subject attributions summed over subjects, positive part, normalised, saved."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import nibabel as nib
import numpy as np

from deeplsm._utils import atomic_path, package_versions
from deeplsm.exceptions import DeepLSMError

__all__ = ["load_group_sums", "normalise_map", "save_group_maps"]

#: Methods whose group map keeps only the positive part by default (as the paper does).
POSITIVE_BY_DEFAULT = {"ig": True, "gradshap": True, "occlusion": False, "occlusion_captum": False}


def normalise_map(summed: np.ndarray, *, positive: bool = True) -> np.ndarray:
    """Turn a summed attribution map into a [0, 1] map.

    Parameters
    ----------
    summed : ndarray
        Sum of per-subject attributions (or a sum of such sums over several runs).
    positive : bool, default=True
        Keep only the positive part, then divide by the maximum. Otherwise rescale linearly
        from [min, max] to [0, 1] (the paper's "linear normalization").

    Returns
    -------
    ndarray of float32, values in [0, 1]; all zeros when the map is constant or has no
    positive value.

    Examples
    --------
    >>> normalise_map(np.array([-2.0, 0.0, 1.0, 4.0])).tolist()
    [0.0, 0.0, 0.25, 1.0]
    >>> normalise_map(np.array([-2.0, 0.0, 2.0]), positive=False).tolist()
    [0.0, 0.5, 1.0]
    """
    a = np.asarray(summed, dtype=np.float64)
    if not np.isfinite(a).all():
        raise DeepLSMError("the summed map contains NaN or Inf values")
    if positive:
        a = np.maximum(a, 0.0)
        hi = a.max() if a.size else 0.0
        return (a / hi if hi > 0 else np.zeros_like(a)).astype(np.float32)
    lo, hi = (a.min(), a.max()) if a.size else (0.0, 0.0)
    return ((a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)).astype(np.float32)


def _save_img(path: Path, data: np.ndarray, affine: np.ndarray) -> None:
    img = nib.Nifti1Image(np.asarray(data, dtype=np.float32), affine)
    img.header.set_xyzt_units("mm")
    with atomic_path(path) as tmp:  # tmp keeps the name, so nibabel still gzips
        nib.save(img, str(tmp))


def save_group_maps(
    sums: Mapping[tuple[str, str], np.ndarray],
    affine: np.ndarray,
    out_dir: str | os.PathLike,
    *,
    n_subjects: int,
    positive: Mapping[str, bool] | None = None,
    metadata: dict | None = None,
    clusters: bool = True,
    atlas=None,
) -> dict[str, dict[str, Path]]:
    """Write group maps as NIfTI: normalised maps and raw sums, plus a ``maps.json`` manifest.

    Files:

    * ``out_dir/{method}_{output}.nii.gz``: positive part (where chosen), normalised to [0, 1];
    * ``out_dir/sums/{method}_{output}.nii.gz``: the plain sum over subjects (float32), so sums
      from several runs can be added and re-normalised with :func:`normalise_map`;
    * ``out_dir/maps.json``: methods, outputs, subject count, positive-part choices, parameters;
    * ``out_dir/{method}_{output}_clusters.tsv`` (+ ``.json`` sidecar): the normalised map's
      cluster table (:func:`deeplsm.evaluate.cluster_table` with its defaults: clusters above
      half the maximum, at least 100 mm³), unless ``clusters=False``.

    Parameters
    ----------
    sums : mapping of (method, output) -> ndarray of shape (X, Y, Z)
    affine : ndarray of shape (4, 4)
        The cohort's affine (analysis grid).
    out_dir : path
    n_subjects : int
        Subjects summed.
    positive : mapping of method -> bool or None
        Keep the positive part; defaults to True for ``ig`` and ``gradshap``, False for occlusion.
    metadata : dict or None
        Extra entries for ``maps.json`` (parameters, subjects).
    clusters : bool, default=True
        Write a cluster table next to each normalised map.
    atlas : deeplsm.evaluate.Atlas or None
        Label the cluster tables with this atlas.

    Returns
    -------
    dict of method -> output -> path of the normalised map
    """
    out_dir = Path(out_dir)
    pos = dict(POSITIVE_BY_DEFAULT)
    pos.update(positive or {})
    paths: dict[str, dict[str, Path]] = {}
    entries = []
    for (method, output), arr in sums.items():
        if "/" in method or "/" in output:
            raise DeepLSMError(f"method and output names cannot contain '/': {method!r}, {output!r}")
        keep_pos = bool(pos.get(method, True))
        p = out_dir / f"{method}_{output}.nii.gz"
        _save_img(p, normalise_map(arr, positive=keep_pos), affine)
        _save_img(out_dir / "sums" / f"{method}_{output}.nii.gz", arr, affine)
        if clusters:
            from deeplsm.evaluate import cluster_table, clusters_path, write_cluster_table

            write_cluster_table(cluster_table(p, atlas=atlas), clusters_path(p))
        paths.setdefault(method, {})[output] = p
        entries.append({"method": method, "output": output, "file": p.name,
                        "sum_file": f"sums/{p.name}", "positive_part": keep_pos})
    manifest_path = out_dir / "maps.json"
    old = []
    if manifest_path.exists():
        try:
            old = json.loads(manifest_path.read_text()).get("maps", [])
        except (OSError, ValueError):
            old = []
    new_files = {e["file"] for e in entries}
    manifest = {
        "maps": [e for e in old if e.get("file") not in new_files] + entries,
        "n_subjects": int(n_subjects),
        "normalisation": "sum over subjects; positive part where positive_part is true; "
                         "then linear to [0, 1]",
        "versions": package_versions(),
        **(metadata or {}),
    }
    with atomic_path(manifest_path) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    return paths


def load_group_sums(maps_dir: str | os.PathLike) -> dict[tuple[str, str], np.ndarray]:
    """Read the raw sums written by :func:`save_group_maps` (to add maps of several runs)."""
    maps_dir = Path(maps_dir)
    manifest = maps_dir / "maps.json"
    if not manifest.exists():
        raise DeepLSMError(f"{maps_dir}: no maps.json; not a deeplsm maps folder")
    out = {}
    for e in json.loads(manifest.read_text())["maps"]:
        out[(e["method"], e["output"])] = np.asarray(nib.load(str(maps_dir / e["sum_file"])).dataobj,
                                                     dtype=np.float64)
    return out

"""Group maps: per-subject attributions summed over subjects, turned by the score's direction,
positive part, normalised, saved."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import nibabel as nib
import numpy as np

from deeplsm._direction import DEFAULT_DIRECTION, check_direction, orient
from deeplsm._outputs import write_marker
from deeplsm._utils import atomic_path, json_text, package_versions
from deeplsm.exceptions import DeepLSMError

__all__ = ["load_group_sums", "normalise_map", "read_manifest", "save_group_maps"]

MANIFEST = "maps.json"
_ENTRY_KEYS = ("method", "output", "file", "sum_file")

#: Methods whose group map keeps only the positive part by default (as the paper does).
POSITIVE_BY_DEFAULT = {"ig": True, "gradshap": True, "occlusion": False, "occlusion_captum": False}
#: What a maps folder holds (its deeplsm marker owns these).
MAPS_LAYOUT = ("*.nii.gz", "sums", "maps.json", "*_clusters.tsv", "*_clusters.json")


def normalise_map(summed: np.ndarray, *, positive: bool = True,
                  direction: str = DEFAULT_DIRECTION) -> np.ndarray:
    """Turn a summed attribution (or statistic) map into a [0, 1] map.

    Parameters
    ----------
    summed : ndarray
        Sum of per-subject attributions (or a sum of such sums over several runs), or a signed
        statistic map (VLSM t, SVR-LSM beta, ridge coefficients).
    positive : bool, default=True
        Keep only the positive part, then divide by the maximum. Otherwise rescale linearly
        from [min, max] to [0, 1] (the paper's "linear normalization").
    direction : {'higher_is_worse', 'lower_is_worse', 'two_sided'}, default='higher_is_worse'
        The score's direction, applied first (see :func:`deeplsm._direction.orient`): the map
        as it is, negated (so its negative part, where damage lowers the score, is kept), or
        its absolute value. Either way the result is high where damage makes the deficit worse.

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
    >>> normalise_map(np.array([-4.0, 0.0, 1.0]), direction="lower_is_worse").tolist()
    [1.0, 0.0, 0.0]
    >>> normalise_map(np.array([-4.0, 0.0, 2.0]), direction="two_sided").tolist()
    [1.0, 0.0, 0.5]
    """
    a = np.asarray(summed, dtype=np.float64)
    if not np.isfinite(a).all():
        raise DeepLSMError("the summed map contains NaN or Inf values")
    a = orient(a, direction)
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


def read_manifest(maps_dir: str | os.PathLike) -> dict | None:
    """The ``maps.json`` manifest of a maps folder, or None when the folder has none.

    A manifest that cannot be read (not JSON, or not the layout :func:`save_group_maps` writes)
    is an error, not silently replaced: it is the only record of which maps the folder holds
    and how they were made.

    Raises
    ------
    DeepLSMError
        Naming the file and what to do.
    """
    path = Path(maps_dir) / MANIFEST
    if not path.exists():
        return None
    what = f"{path}: the maps manifest is unreadable"
    advice = (f"; it records the maps in {path.parent}, so it is not rewritten silently: move or "
              f"delete {path.parent} (or just {MANIFEST}), or write the maps to another folder")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise DeepLSMError(f"{what} ({type(err).__name__}: {err})" + advice) from None
    entries = manifest.get("maps") if isinstance(manifest, dict) else None
    if not isinstance(entries, list) or not all(
            isinstance(e, dict) and all(isinstance(e.get(k), str) for k in _ENTRY_KEYS) for e in entries):
        raise DeepLSMError(f"{what} (expected an object whose 'maps' list has entries with "
                           f"{', '.join(_ENTRY_KEYS)})" + advice)
    return manifest


def save_group_maps(
    sums: Mapping[tuple[str, str], np.ndarray],
    affine: np.ndarray,
    out_dir: str | os.PathLike,
    *,
    n_subjects: int,
    positive: Mapping[str, bool] | None = None,
    directions: Mapping[str, str] | None = None,
    metadata: dict | None = None,
    clusters: bool = True,
    atlas=None,
) -> dict[str, dict[str, Path]]:
    """Write group maps as NIfTI: normalised maps and raw sums, plus a ``maps.json`` manifest.

    Files:

    * ``out_dir/{method}_{output}.nii.gz``: the sum turned by the output's direction (as it is,
      negated or absolute; see :func:`normalise_map`), its positive part (where chosen),
      normalised to [0, 1]: high where damage makes the deficit worse;
    * ``out_dir/sums/{method}_{output}.nii.gz``: the plain sum over subjects (float32, before the
      direction is applied), so sums from several runs can be added and re-normalised with
      :func:`normalise_map`;
    * ``out_dir/maps.json``: methods, outputs, subject count, positive-part choices, the
      direction of each output, parameters.
      Entries for maps written earlier into the same folder are kept; an unreadable manifest
      is an error (see :func:`read_manifest`), raised before any file is written.
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
    directions : mapping of output -> direction or None
        ``'higher_is_worse'`` (the default for outputs not named), ``'lower_is_worse'`` or
        ``'two_sided'``, per output.
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
    existing = read_manifest(out_dir)  # a corrupt manifest stops us before anything is written
    out_dir.mkdir(parents=True, exist_ok=True)
    write_marker(out_dir, owns=MAPS_LAYOUT, command="explain")
    pos = dict(POSITIVE_BY_DEFAULT)
    pos.update(positive or {})
    dirs = {str(o): check_direction(d, f"direction of {o!r}") for o, d in (directions or {}).items()}
    paths: dict[str, dict[str, Path]] = {}
    entries = []
    for (method, output), arr in sums.items():
        if "/" in method or "/" in output:
            raise DeepLSMError(f"method and output names cannot contain '/': {method!r}, {output!r}")
        keep_pos = bool(pos.get(method, True))
        direction = dirs.get(output, DEFAULT_DIRECTION)
        p = out_dir / f"{method}_{output}.nii.gz"
        _save_img(p, normalise_map(arr, positive=keep_pos, direction=direction), affine)
        _save_img(out_dir / "sums" / f"{method}_{output}.nii.gz", arr, affine)
        if clusters:
            from deeplsm.evaluate import cluster_table, clusters_path, write_cluster_table

            write_cluster_table(cluster_table(p, atlas=atlas), clusters_path(p))
        paths.setdefault(method, {})[output] = p
        entries.append({"method": method, "output": output, "file": p.name,
                        "sum_file": f"sums/{p.name}", "positive_part": keep_pos,
                        "direction": direction})
    manifest_path = out_dir / MANIFEST
    old = existing["maps"] if existing else []
    new_files = {e["file"] for e in entries}
    manifest = {
        "maps": [e for e in old if e.get("file") not in new_files] + entries,
        "n_subjects": int(n_subjects),
        "normalisation": "sum over subjects; negated where direction is lower_is_worse, absolute "
                         "value where it is two_sided; positive part where positive_part is true; "
                         "then linear to [0, 1]",
        "versions": package_versions(),
        **(metadata or {}),
    }
    with atomic_path(manifest_path) as tmp:
        tmp.write_text(json_text(manifest, fallback=str))
    return paths


def load_group_sums(maps_dir: str | os.PathLike) -> dict[tuple[str, str], np.ndarray]:
    """Read the raw sums written by :func:`save_group_maps` (to add maps of several runs)."""
    maps_dir = Path(maps_dir)
    manifest = read_manifest(maps_dir)
    if manifest is None:
        raise DeepLSMError(f"{maps_dir}: no {MANIFEST}; not a deeplsm maps folder")
    out = {}
    for e in manifest["maps"]:
        out[(e["method"], e["output"])] = np.asarray(nib.load(str(maps_dir / e["sum_file"])).dataobj,
                                                     dtype=np.float64)
    return out

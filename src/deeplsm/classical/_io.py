"""Write fitted classical estimators' maps as NIfTI plus a ``summary.json``."""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path

import nibabel as nib
import numpy as np

from deeplsm._direction import DEFAULT_DIRECTION
from deeplsm._utils import atomic_path, package_versions, write_json
from deeplsm.classical._mask import exclusion_lines
from deeplsm.cohort import LesionCohort

log = logging.getLogger("deeplsm")

#: file suffix -> fitted attribute (``<attr>_img_``), per method.
MAP_FILES = {
    "vlsm": {"stat": "statistic", "z": "z", "p": "p", "p_fdr": "p_fdr", "p_fwe": "p_fwe",
             "p_cfwer": "p_cfwer", "p_cluster": "p_cluster", "thresholded": "thresholded"},
    "svr": {"stat": "beta", "p": "p", "p_fwe": "p_fwe", "p_cfwer": "p_cfwer",
            "thresholded": "thresholded"},
    "ridge": {"stat": "beta", "p": "p", "p_fwe": "p_fwe", "p_cfwer": "p_cfwer",
              "thresholded": "thresholded"},
}
#: maps that get a cluster table (``{output}_{suffix}_clusters.tsv``), per method.
CLUSTER_MAPS = {"vlsm": ("stat", "z"), "svr": ("stat",), "ridge": ("stat",)}


def _finite_threshold(summary: dict) -> dict:
    """JSON has no infinity: an infinite threshold (no voxel can reach significance) is written as
    ``null``, with the reason beside it."""
    t = summary.get("threshold")
    if t is not None and not math.isfinite(float(t)):
        summary = {**summary, "threshold": None,
                   "threshold_reason": "infinite: no voxel can pass it (too few permutations to "
                                       "reach alpha, none at all, or no voxel significant), so "
                                       "nothing survives"}
    return summary


def safe_name(name: str) -> str:
    """An output name usable in a file name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("_") or "score"


def save_fitted_maps(out: str | os.PathLike, cohort: LesionCohort, fitted: Mapping[str, object],
                     method: str, config: dict | None = None, *, atlas=None,
                     directions: Mapping[str, str] | None = None, exclusions: dict | None = None) -> Path:
    """Write ``out/{output}_{suffix}.nii.gz`` for every fitted estimator, ``mask.nii.gz``,
    cluster tables and ``summary.json``, atomically (the folder appears complete or not at all).

    Cluster tables (:func:`deeplsm.evaluate.cluster_table`): ``{output}_stat_clusters.tsv``
    (and ``{output}_z_clusters.tsv`` for VLSM), each with a JSON sidecar. Their clusters are the
    significant voxels of ``{output}_thresholded`` (every cluster, however small, both signs);
    an SVR-LSM fitted without permutations has no test, so its beta map gets the descriptive
    default instead (``|beta|`` above half its maximum, clusters of at least 100 mm³).

    Parameters
    ----------
    out : path
        Output folder (replaced).
    cohort : LesionCohort
        The cohort the estimators were fitted on (grid, subjects).
    fitted : mapping of output name -> fitted MassUnivariateLSM, SVRLSM or RidgeLSM
    method : {'vlsm', 'svr', 'ridge'}
    config : dict or None
        Recorded in ``summary.json`` with the package versions.
    atlas : deeplsm.evaluate.Atlas or None
        Label the cluster tables' peaks and clusters with this atlas.
    directions : mapping of output name -> direction or None
        Each score's direction (``'higher_is_worse'`` where not given), recorded per output in
        ``summary.json``. The maps keep the estimator's sign (positive: lesioned subjects score
        higher); the direction says which side is the deficit.
    exclusions : dict or None
        Subjects left out before the fit (``score_rows_without_lesion_map``,
        ``empty_lesion_maps``: see :func:`deeplsm.cohort.cohort_exclusions`). With the
        estimators' ``exclusions_`` (voxels left out by ``min_subjects``, subjects without a
        tested voxel; the same for every output) they go to ``summary.json["exclusions"]``, with
        ``lines``, one sentence per kind; the estimators' lines are also logged, once.
    """
    out = Path(out)
    first_est = next(iter(fitted.values()))
    estimator_ex = getattr(first_est, "exclusions_", None) or {}
    own_lines = exclusion_lines(estimator_ex, method)
    for line in own_lines:
        log.info(line)
    all_ex = {**(exclusions or {}), **estimator_ex}
    all_ex["lines"] = exclusion_lines(exclusions or {}, method) + own_lines
    # The study adds predictions.csv and metrics.json later: deeplsm's too, so a refit replaces them.
    with atomic_path(out, owns=("predictions.csv", "metrics.json"), command=method) as tmp:
        tmp.mkdir(parents=True)
        summary = {"method": method, "config": config or {}, "versions": package_versions(),
                   "grid": cohort.grid.to_dict(), "n_subjects": cohort.n_subjects,
                   "subject_ids": cohort.subject_ids, "exclusions": all_ex, "outputs": {}}
        first = next(iter(fitted.values()))
        nib.save(first.mask_img_, tmp / "mask.nii.gz")
        for name, est in fitted.items():
            stem = safe_name(name)
            files = {}
            for suffix, attr in MAP_FILES[method].items():
                img = getattr(est, f"{attr}_img_", None)
                if img is None:
                    continue
                path = tmp / f"{stem}_{suffix}.nii.gz"
                nib.save(img, path)
                files[suffix] = path.name
            files.update(_write_cluster_tables(tmp, stem, est, method, atlas))
            summary["outputs"][name] = {**_finite_threshold(est.summary()),
                                        "direction": (directions or {}).get(name, DEFAULT_DIRECTION),
                                        "files": files}
        write_json(tmp / "summary.json", summary)
    return out


def _write_cluster_tables(folder: Path, stem: str, est, method: str, atlas) -> dict[str, str]:
    """Cluster tables of the statistic maps of one fitted estimator; returns their file names."""
    imgs = {suffix: getattr(est, f"{MAP_FILES[method][suffix]}_img_", None)
            for suffix in CLUSTER_MAPS[method]}
    tested = getattr(est, "p_", None) is not None
    return _cluster_tables(folder, stem, imgs, est.thresholded_ if tested else None, atlas)


def _cluster_tables(folder: Path, stem: str, imgs: Mapping, significant, atlas) -> dict[str, str]:
    from deeplsm.evaluate import cluster_table, write_cluster_table

    kwargs: dict = {"atlas": atlas}
    if significant is not None:  # the significant voxels (thresholded map != 0), every cluster
        kwargs.update(mask=np.asarray(significant) != 0, threshold=0.0, min_volume_mm3=0.0)
    files = {}
    for suffix, img in imgs.items():
        if img is None:
            continue
        table = cluster_table(img, **kwargs)
        table.attrs["clusters_of"] = ("significant voxels" if significant is not None
                                      else "descriptive threshold (no test was run)")
        path = write_cluster_table(table, folder / f"{stem}_{suffix}_clusters.tsv")
        files[f"{suffix}_clusters"] = path.name
    return files


def write_cluster_tables(folder: str | os.PathLike, atlas=None) -> list[Path]:
    """(Re)write the cluster tables of a folder written by :func:`save_fitted_maps`, e.g. to
    label them with an ``atlas`` afterwards; the rules are those of :func:`save_fitted_maps`.

    Returns
    -------
    list of the TSV paths written.
    """
    import json

    from deeplsm.exceptions import DeepLSMError

    folder = Path(folder)
    summary_path = folder / "summary.json"
    if not summary_path.is_file():
        raise DeepLSMError(f"{folder}: no summary.json; not a deeplsm vlsm/svr output folder")
    summary = json.loads(summary_path.read_text())
    method = summary.get("method")
    if method not in CLUSTER_MAPS:
        raise DeepLSMError(f"{summary_path}: unknown method {method!r}")
    written = []
    for entry in summary.get("outputs", {}).values():
        files = entry.get("files", {})
        imgs = {sfx: nib.load(folder / files[sfx]) for sfx in CLUSTER_MAPS[method] if sfx in files}
        if not imgs:
            continue
        stem = files["stat"][: -len("_stat.nii.gz")]
        significant = None
        if "p" in files and "thresholded" in files:
            significant = np.asarray(nib.load(folder / files["thresholded"]).dataobj)
        written += [folder / f for f in _cluster_tables(folder, stem, imgs, significant, atlas).values()]
    return written

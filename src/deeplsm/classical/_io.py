"""Write fitted classical estimators' maps as NIfTI plus a ``summary.json``."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import nibabel as nib
import numpy as np

from deeplsm._utils import atomic_path, package_versions, write_json
from deeplsm.cohort import LesionCohort

#: file suffix -> fitted attribute (``<attr>_img_``), per method.
MAP_FILES = {
    "vlsm": {"stat": "statistic", "z": "z", "p": "p", "p_fdr": "p_fdr", "p_fwe": "p_fwe",
             "p_cfwer": "p_cfwer", "p_cluster": "p_cluster", "thresholded": "thresholded"},
    "svr": {"stat": "beta", "p": "p", "p_fwe": "p_fwe", "p_cfwer": "p_cfwer",
            "thresholded": "thresholded"},
}
#: maps that get a cluster table (``{output}_{suffix}_clusters.tsv``), per method.
CLUSTER_MAPS = {"vlsm": ("stat", "z"), "svr": ("stat",)}


def safe_name(name: str) -> str:
    """An output name usable in a file name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("_") or "score"


def save_fitted_maps(out: str | os.PathLike, cohort: LesionCohort, fitted: Mapping[str, object],
                     method: str, config: dict | None = None, *, atlas=None) -> Path:
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
    fitted : mapping of output name -> fitted MassUnivariateLSM or SVRLSM
    method : {'vlsm', 'svr'}
    config : dict or None
        Recorded in ``summary.json`` with the package versions.
    atlas : deeplsm.evaluate.Atlas or None
        Label the cluster tables' peaks and clusters with this atlas.
    """
    out = Path(out)
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        summary = {"method": method, "config": config or {}, "versions": package_versions(),
                   "grid": cohort.grid.to_dict(), "n_subjects": cohort.n_subjects,
                   "subject_ids": cohort.subject_ids, "outputs": {}}
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
            summary["outputs"][name] = {**est.summary(), "files": files}
        write_json(tmp / "summary.json", summary)
    return out


def _write_cluster_tables(folder: Path, stem: str, est, method: str, atlas) -> dict[str, str]:
    """Cluster tables of the statistic maps of one fitted estimator; returns their file names."""
    from deeplsm.evaluate import cluster_table, write_cluster_table

    tested = getattr(est, "p_", None) is not None
    kwargs: dict = {"atlas": atlas}
    if tested:  # the significant voxels, every cluster
        kwargs.update(mask=np.asarray(est.thresholded_) != 0, threshold=0.0, min_volume_mm3=0.0)
    files = {}
    for suffix in CLUSTER_MAPS[method]:
        img = getattr(est, f"{MAP_FILES[method][suffix]}_img_", None)
        if img is None:
            continue
        table = cluster_table(img, **kwargs)
        table.attrs["clusters_of"] = "significant voxels" if tested else "descriptive threshold"
        path = write_cluster_table(table, folder / f"{stem}_{suffix}_clusters.tsv")
        files[f"{suffix}_clusters"] = path.name
    return files

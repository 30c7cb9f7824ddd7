"""Write fitted classical estimators' maps as NIfTI plus a ``summary.json``."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from pathlib import Path

import nibabel as nib

from deeplsm._utils import atomic_path, package_versions, write_json
from deeplsm.cohort import LesionCohort

#: file suffix -> fitted attribute (``<attr>_img_``), per method.
MAP_FILES = {
    "vlsm": {"stat": "statistic", "z": "z", "p": "p", "p_fdr": "p_fdr", "p_fwe": "p_fwe",
             "p_cfwer": "p_cfwer", "p_cluster": "p_cluster", "thresholded": "thresholded"},
    "svr": {"stat": "beta", "p": "p", "p_fwe": "p_fwe", "p_cfwer": "p_cfwer",
            "thresholded": "thresholded"},
    "ridge": {"stat": "beta", "p": "p", "p_fwe": "p_fwe", "p_cfwer": "p_cfwer",
              "thresholded": "thresholded"},
}


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
                     method: str, config: dict | None = None) -> Path:
    """Write ``out/{output}_{suffix}.nii.gz`` for every fitted estimator, ``mask.nii.gz`` and
    ``summary.json``, atomically (the folder appears complete or not at all).

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
    """
    out = Path(out)
    # The study adds predictions.csv and metrics.json later: deeplsm's too, so a refit replaces them.
    with atomic_path(out, owns=("predictions.csv", "metrics.json"), command=method) as tmp:
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
            summary["outputs"][name] = {**_finite_threshold(est.summary()), "files": files}
        write_json(tmp / "summary.json", summary)
    return out

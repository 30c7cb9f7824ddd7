"""The report's minimum-lesion-overlap view: which voxels a voxelwise method tests, and how many.

The frequency figure (the paper's Fig. 2) outlines the tested voxels; the text says how many
there are and how many are lesioned in at least one subject; a curve gives the number of voxels
tested at every minimum overlap, as guidance for choosing ``classical.min_subjects``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import nibabel as nib
import numpy as np

from deeplsm._html import Markup
from deeplsm.exceptions import DeepLSMError
from deeplsm.report._metrics import _stage_is_current

if TYPE_CHECKING:
    from deeplsm.cohort import LesionCohort
    from deeplsm.study import Study


def tested_mask(study: Study, cohort: LesionCohort) -> tuple[np.ndarray | None, dict]:
    """The tested voxels and how they were chosen.

    The mask of this run's first classical method (``classical/<method>/mask.nii.gz``) when one
    ran; otherwise the same rule, ``classical.min_subjects``, applied to the subjects the
    classical methods would see. Returns ``(mask or None, info)`` with ``info`` holding
    ``tested``, ``min_subjects``, ``n_subjects`` (those the rule counted on), ``subjects``
    (which subjects, in words), ``from_method`` and the per-voxel lesion ``counts`` on them.
    """
    from deeplsm.classical import voxel_mask

    c = study.config["classical"]
    ids = study.classical_subjects(cohort)
    sub = cohort.subset(ids)
    counts = sub.frequency_map()
    which = ("the CNN's train + validation subjects" if c["subjects"] == "trainval"
             else "all subjects")
    info = {"n_subjects": sub.n_subjects, "subjects": which, "counts": counts, "from_method": None}
    for method in c["methods"]:
        folder = study.out / "classical" / method
        if (_stage_is_current(study, method) and (folder / "mask.nii.gz").is_file()
                and (folder / "summary.json").is_file()):
            summary = json.loads((folder / "summary.json").read_text())
            v = (summary.get("exclusions") or {}).get("voxels")
            if v is None:
                continue
            mask = np.asarray(nib.load(folder / "mask.nii.gz").dataobj) > 0
            info.update(min_subjects=v["min_subjects"], tested=int(mask.sum()), from_method=method)
            return mask, info
    try:
        mask, m = voxel_mask(sub.data, c["min_subjects"])
    except DeepLSMError:  # no voxel passes: the text says so
        from deeplsm.classical import resolve_min_subjects

        info.update(min_subjects=resolve_min_subjects(c["min_subjects"], sub.n_subjects), tested=0)
        return None, info
    info.update(min_subjects=m, tested=int(mask.sum()))
    return mask, info


def overlap_text(cohort: LesionCohort, info: dict) -> Markup:
    """The sentence under the frequency figure: tested voxels, lesioned voxels, the rule."""
    lesioned = int((cohort.frequency_map() > 0).sum())
    m = info["min_subjects"]
    source = (f"as {info['from_method']} tested them" if info["from_method"]
              else "the rule of classical.min_subjects")
    return Markup(
        "Dashed outline: the <b>{}</b> voxels tested by the voxelwise methods ({}): lesioned in at "
        "least {} and spared in at least {} of the {} subjects they are fitted on ({}). "
        "<b>{}</b> voxels are lesioned in at least one of the {} subjects shown; the others cannot "
        "be mapped by any method. The curve gives the number of voxels tested at each minimum "
        "lesion overlap, to choose <code>classical.min_subjects</code> (LESYMAP's default is 10% of "
        "the subjects, svrlsmgui's 10 subjects).").format(
            info["tested"], source, m, m, info["n_subjects"], info["subjects"], lesioned,
            cohort.n_subjects)

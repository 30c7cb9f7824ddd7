"""The study's ``metrics.json["exclusions"]``: every subject or voxel left out, how many and why."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from deeplsm.classical._mask import exclusion_lines
from deeplsm.cohort import cohort_exclusions

if TYPE_CHECKING:
    from deeplsm.study import Study


#: How the log line names the explained subjects (``explain.subjects``).
WHICH = {"test": "test ", "trainval": "training + validation "}


def study_exclusions(study: Study, current) -> dict:
    """Exclusions of this run, from its stages' outputs.

    ``current(stage)`` tells whether a stage's output belongs to this run (its record holds this
    run's key). Keys:

    - ``cohort``: score-table rows without a lesion map (a score CSV only; not analysed), all-zero
      lesion maps (kept) and ``missing_scores`` (always 0: a missing score is an error);
    - ``<method>`` for each classical method run: its ``min_subjects`` voxel mask (``voxels``:
      tested, lesioned in too few or too many subjects) and the subjects without a lesioned voxel
      among the tested voxels;
    - ``classical_subjects``: the CNN's test subjects that the classical methods did not see
      (``classical.subjects = "trainval"``);
    - ``explain_<mode>``: how many of the ``explain.subjects`` (test, training + validation, or
      all) were explained (``explain.max_subjects``);
    - ``localization``: the grid voxels outside the MNI152 brain mask, which the localisation
      metrics leave out (with ground truth only);
    - ``lines``: one sentence per kind, as logged.
    """
    cfg = study.config
    cohort = study.load_cohort()
    rows_path = study.sim_dir / "exclusions.json"
    rows = (json.loads(rows_path.read_text()).get("score_rows_without_lesion_map", [])
            if rows_path.is_file() and current("simulate") else [])
    out: dict = {"cohort": cohort_exclusions(cohort, rows_without_lesion_map=rows)}
    lines = exclusion_lines(out["cohort"], "cohort")
    for method in cfg["classical"]["methods"]:
        path = study.out / "classical" / method / "summary.json"
        if not (path.is_file() and current(method)):
            continue
        ex = json.loads(path.read_text()).get("exclusions") or {}
        mine = {k: ex[k] for k in ("voxels", "subjects_without_tested_voxel") if k in ex}
        if mine:
            out[method] = mine
            lines += exclusion_lines(mine, method)
    uses_split = ((cfg["classical"]["methods"] and cfg["classical"]["subjects"] == "trainval")
                  or cfg["models"]["modes"])
    n_test = 0
    if uses_split:
        split = study.split(cohort)
        n_test = sum(1 for s in cohort.subject_ids if split[s] == "test")
    if cfg["classical"]["methods"] and cfg["classical"]["subjects"] == "trainval":
        out["classical_subjects"] = {
            "fitted_on": cohort.n_subjects - n_test, "held_out": n_test,
            "reason": "classical.subjects = 'trainval': the classical methods are fitted on the "
                      "CNN's train + validation subjects; its test subjects are held out (ridge and "
                      "SVR-LSM predict them)"}
        lines.append(f"classical methods: fitted on {cohort.n_subjects - n_test} of "
                     f"{cohort.n_subjects} subjects; the CNN's {n_test} test subjects are held out")
    for mode in cfg["models"]["modes"]:
        manifest = study.maps_dir(mode) / "maps.json"
        if not (manifest.is_file() and current(f"explain_{mode}")):
            continue
        explained = json.loads(manifest.read_text()).get("n_subjects")
        pool = {"test": n_test, "trainval": cohort.n_subjects - n_test}.get(cfg["explain"]["subjects"],
                                                                         cohort.n_subjects)
        if explained is None:
            continue
        out[f"explain_{mode}"] = {
            "explained": int(explained), "of": pool,
            "reason": f"explain.subjects = {cfg['explain']['subjects']!r}, explain.max_subjects = "
                      f"{cfg['explain']['max_subjects']}: the group maps sum the attributions of "
                      "these subjects"}
        if explained < pool:
            lines.append(f"explain {mode}: group maps from the first {explained} of {pool} "
                         f"{WHICH.get(cfg['explain']['subjects'], '')}subjects "
                         "(explain.max_subjects)")
    if study.truth_path is not None and current("evaluate"):
        from deeplsm.evaluate import brain_mask_for

        inside = int(brain_mask_for(cohort.shape, cohort.affine).sum())
        total = int(cohort.data[0].size)
        out["localization"] = {
            "n_voxels": total, "scored": inside, "left_out": total - inside,
            "reason": "the localisation metrics count only voxels inside nilearn's MNI152 brain "
                      "mask, resampled to the analysis grid"}
        lines.append(f"localisation: scoring the {inside} of {total} grid voxels inside the "
                     "MNI152 brain mask")
    out["lines"] = lines
    return out

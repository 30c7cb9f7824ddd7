"""Collect a study's numbers into the stable ``metrics.json`` schema.

::

    {"prediction": {"multi"|"single"|"ridge"|"svr": {"<score>": {"mse", "r2_pearson", "p_value", "r2"}}},
     "localization": {"<method>": {"<score>": {"pr_auc", "average_precision", "pr_auc_trapezoid",
                                                "prevalence", "cdc", "dice_best",
                                                "peak_distance_mm", "com_distance_mm"}}},
     "truth_labels": {"<score>": [label, ...]} | null,
     "directions": {"<score>": "higher_is_worse"|"lower_is_worse"|"two_sided"},
     "cv": {"<method>": {"<score>": {"r2_mean", "r2_sd", "R2_mean", "R2_sd", "mse_mean", "mse_sd",
                                     "n_folds", ...}}},          # with models.folds only
     "exclusions": {"cohort": {...}, "<classical method>": {...}, ..., "lines": [...]},
     "timings_s": {"<stage>": seconds}, "config": {...}, "versions": {...}}

``directions`` (added by the study) says which sign of every map of a score is the deficit; the
maps scored here are already turned so that it is their positive side.

``<method>`` is ``multi_ig``, ``multi_gradshap``, ``multi_occlusion``, ``single_*``, ``vlsm``,
``svr`` or ``ridge``. Every prediction entry is on the CNN's test split: ``r2_pearson`` is the
squared Pearson r (the paper's measure, blind to scale and offset), ``r2`` is scikit-learn's
``r2_score`` (coefficient of determination, which also penalises miscalibration). Ridge and SVR-LSM
are fitted on the CNN's train + validation subjects. ``pr_auc`` is step-wise average precision
(``average_precision`` holds the same number); ``pr_auc_trapezoid`` is the trapezoid area of the
paper's figure (see ``deeplsm.evaluate``). ``truth_labels`` says which labels of the truth image
were each score's ground truth (their union), ``null`` without one. ``cv`` holds the repeated
k-fold cross-validation (``models.folds``; see ``deeplsm.study._cv``): mean and sample SD over
every (repeat, fold) test fold of the same metrics, the same folds for every method.
``exclusions`` lists what was left out and why (see
:func:`deeplsm.report._exclusions.study_exclusions`). Every number comes from this run's stages,
matched by key (see :func:`build_metrics`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from deeplsm.study import Study

PREDICTION_KEYS = ("mse", "r2_pearson", "p_value", "r2")
#: Methods with a prediction entry, in table order: the CNNs, then the predictive classical methods.
PREDICTIVE_METHODS = ("multi", "single", "ridge", "svr")
METRIC_KEYS = ("pr_auc", "average_precision", "pr_auc_trapezoid", "prevalence", "cdc", "dice_best",
               "peak_distance_mm", "com_distance_mm")


def _stage_is_current(study: Study, stage: str) -> bool:
    """True when ``stage`` belongs to this run: it has a key, and its record holds that key."""
    key = study.keys.get(stage)
    record = study.out / "stages" / f"{stage}.json"
    if key is None or not record.exists():
        return False
    try:
        return json.loads(record.read_text()).get("key") == key
    except ValueError:
        return False


def build_metrics(study: Study) -> dict:
    """The numbers of this run only, matched by stage key.

    Prediction metrics (test split) come from the ``metrics.json`` of each CNN run and each
    predictive classical method (ridge, SVR-LSM) in this run's configuration whose stage record
    holds this run's key; localisation metrics from ``evaluation.json`` only when the key stored
    in it is this run's ``evaluate`` key (so a rerun without ground truth, or without some
    methods, never reports an earlier run's numbers), and only for the methods this
    configuration makes.
    """
    paths = {mode: (f"train_{mode}", study.run_dir(mode) / "metrics.json")
             for mode in study.config["models"]["modes"]}
    paths.update({m: (m, study.out / "classical" / m / "metrics.json")
                  for m in study.config["classical"]["methods"] if m in PREDICTIVE_METHODS})
    prediction: dict[str, dict] = {}
    for method in PREDICTIVE_METHODS:
        if method not in paths:
            continue
        stage, path = paths[method]
        if not path.exists() or not _stage_is_current(study, stage):
            continue
        test = json.loads(path.read_text())["test"]
        prediction[method] = {
            name: {"mse": m.get("mse"), "r2_pearson": m.get("r2_pearson"),
                   "p_value": m.get("pearson_p", m.get("p_value")),
                   "r2": m.get("r2_score", m.get("r2"))}
            for name, m in test.items()
        }
    localization: dict[str, dict] = {}
    truth_labels = None
    ev_path = study.out / "evaluation.json"
    key = study.keys.get("evaluate")
    if key is not None and ev_path.exists():
        ev = json.loads(ev_path.read_text())
        if ev.get("key") == key:
            truth_labels = ev.get("truth_labels")
            wanted = study.map_methods()
            for method, per_output in ev["results"].items():
                if method in wanted:
                    localization[method] = {out: {k: m.get(k) for k in METRIC_KEYS}
                                            for out, m in per_output.items()}
    from deeplsm.report._exclusions import study_exclusions

    out = {"prediction": prediction, "localization": localization, "truth_labels": truth_labels}
    cv_path = study.out / "cv" / "summary.json"
    if study.config["models"].get("folds") and cv_path.exists() and _stage_is_current(study, "cv"):
        out["cv"] = json.loads(cv_path.read_text())["cv"]
    if _stage_is_current(study, "cohort"):  # what was left out needs this run's cohort
        out["exclusions"] = study_exclusions(study, lambda stage: _stage_is_current(study, stage))
    return out

"""Collect a study's numbers into the stable ``metrics.json`` schema.

::

    {"prediction": {"multi"|"single": {"<score>": {"mse", "r2_pearson", "p_value", "r2"}}},
     "localization": {"<method>": {"<score>": {"pr_auc", "average_precision", "pr_auc_trapezoid",
                                                "prevalence", "cdc", "dice_best",
                                                "peak_distance_mm", "com_distance_mm"}}},
     "timings_s": {"<stage>": seconds}, "config": {...}, "versions": {...}}

``<method>`` is ``multi_ig``, ``multi_gradshap``, ``multi_occlusion``, ``single_*``, ``vlsm`` or
``svr``. ``pr_auc`` is step-wise average precision (``average_precision`` holds the same number);
``pr_auc_trapezoid`` is the trapezoid area of the paper's figure (see ``deeplsm.evaluate``).
Every number comes from this run's stages, matched by key (see :func:`build_metrics`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from deeplsm.study import Study

PREDICTION_KEYS = ("mse", "r2_pearson", "p_value", "r2")
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

    Prediction metrics come from the ``metrics.json`` of each model in this run's configuration
    whose training stage record holds this run's key; localisation metrics from
    ``evaluation.json`` only when the key stored in it is this run's ``evaluate`` key (so a
    rerun without ground truth, or without some methods, never reports an earlier run's
    numbers), and only for the methods this configuration makes.
    """
    prediction: dict[str, dict] = {}
    for mode in study.config["models"]["modes"]:
        path = study.run_dir(mode) / "metrics.json"
        if not path.exists() or not _stage_is_current(study, f"train_{mode}"):
            continue
        test = json.loads(path.read_text())["test"]
        prediction[mode] = {
            name: {"mse": m.get("mse"), "r2_pearson": m.get("r2_pearson"),
                   "p_value": m.get("pearson_p", m.get("p_value")),
                   "r2": m.get("r2_score", m.get("r2"))}
            for name, m in test.items()
        }
    localization: dict[str, dict] = {}
    ev_path = study.out / "evaluation.json"
    key = study.keys.get("evaluate")
    if key is not None and ev_path.exists():
        ev = json.loads(ev_path.read_text())
        if ev.get("key") == key:
            wanted = study.map_methods()
            for method, per_output in ev["results"].items():
                if method in wanted:
                    localization[method] = {out: {k: m.get(k) for k in METRIC_KEYS}
                                            for out, m in per_output.items()}
    return {"prediction": prediction, "localization": localization}

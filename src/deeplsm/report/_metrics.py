"""Collect a study's numbers into the stable ``metrics.json`` schema.

::

    {"prediction": {"multi"|"single": {"<score>": {"mse", "r2_pearson", "p_value", "r2"}}},
     "localization": {"<method>": {"<score>": {"pr_auc", "average_precision", "prevalence",
                                                "cdc", "dice_best", "peak_distance_mm",
                                                "com_distance_mm"}}},
     "timings_s": {"<stage>": seconds}, "config": {...}, "versions": {...}}

``<method>`` is ``multi_ig``, ``multi_gradshap``, ``multi_occlusion``, ``single_*``, ``vlsm`` or
``svr``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from deeplsm.study import Study

PREDICTION_KEYS = ("mse", "r2_pearson", "p_value", "r2")
METRIC_KEYS = ("pr_auc", "average_precision", "prevalence", "cdc", "dice_best",
               "peak_distance_mm", "com_distance_mm")


def build_metrics(study: Study) -> dict:
    """Prediction metrics from each run's ``metrics.json`` and localisation from ``evaluation.json``."""
    prediction: dict[str, dict] = {}
    for mode in study.config["models"]["modes"]:
        path = study.run_dir(mode) / "metrics.json"
        if not path.exists():
            continue
        test = json.loads(path.read_text())["test"]
        prediction[mode] = {
            name: {"mse": m.get("mse"), "r2_pearson": m.get("r2_pearson"),
                   "p_value": m.get("pearson_p", m.get("p_value")),
                   "r2": m.get("r2_score", m.get("r2"))}
            for name, m in test.items()
        }
    localization: dict[str, dict] = {}
    ev = study.out / "evaluation.json"
    if ev.exists():
        for method, per_output in json.loads(ev.read_text())["results"].items():
            localization[method] = {out: {k: m.get(k) for k in METRIC_KEYS}
                                    for out, m in per_output.items()}
    return {"prediction": prediction, "localization": localization}

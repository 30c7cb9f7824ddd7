"""Collect a study's numbers into the stable ``metrics.json`` schema.

::

    {"prediction": {"multi"|"single"|"ridge"|"svr": {"<score>": {"mse", "r2_pearson", "p_value", "r2"}}},
     "localization": {"<method>": {"<score>": {"pr_auc", "average_precision", "prevalence",
                                                "cdc", "dice_best", "peak_distance_mm",
                                                "com_distance_mm"}}},
     "timings_s": {"<stage>": seconds}, "config": {...}, "versions": {...}}

``<method>`` is ``multi_ig``, ``multi_gradshap``, ``multi_occlusion``, ``single_*``, ``vlsm``,
``svr`` or ``ridge``. Every prediction entry is on the CNN's test split: ``r2_pearson`` is the
squared Pearson r (the paper's measure, blind to scale and offset), ``r2`` is scikit-learn's
``r2_score`` (coefficient of determination, which also penalises miscalibration). Ridge and SVR-LSM
are fitted on the CNN's train + validation subjects.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from deeplsm.study import Study

PREDICTION_KEYS = ("mse", "r2_pearson", "p_value", "r2")
#: Methods with a prediction entry, in table order: the CNNs, then the predictive classical methods.
PREDICTIVE_METHODS = ("multi", "single", "ridge", "svr")
METRIC_KEYS = ("pr_auc", "average_precision", "prevalence", "cdc", "dice_best",
               "peak_distance_mm", "com_distance_mm")


def build_metrics(study: Study) -> dict:
    """Prediction metrics from each CNN run's and each predictive classical method's ``metrics.json``
    (test split), and localisation from ``evaluation.json``."""
    paths = {mode: study.run_dir(mode) / "metrics.json" for mode in study.config["models"]["modes"]}
    paths.update({m: study.out / "classical" / m / "metrics.json"
                  for m in study.config["classical"]["methods"] if m in PREDICTIVE_METHODS})
    prediction: dict[str, dict] = {}
    for method in PREDICTIVE_METHODS:
        path = paths.get(method)
        if path is None or not path.exists():
            continue
        test = json.loads(path.read_text())["test"]
        prediction[method] = {
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

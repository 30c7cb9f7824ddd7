"""The report's cross-validation section: per-fold spread of r² and R², every method on the same folds."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from deeplsm._html import Markup

if TYPE_CHECKING:
    from deeplsm.study import Study

#: Display names of the cross-validated methods.
CV_NAMES = {"multi": "multi-output CNN", "single": "single-output CNNs", "ridge": "ridge",
            "svr": "SVR-LSM"}


def _pm(mean, sd) -> str:
    if mean is None:
        return "–"
    return f"{mean:.3f} ± {sd:.3f}" if sd is not None else f"{mean:.3f}"


def cv_section(study: Study, metrics: dict, outputs: list[str]) -> dict | None:
    """``{intro, table, figure}`` for the template, or None without a cross-validation."""
    from deeplsm.report import _figures as figs
    from deeplsm.report._report import _figure, _table

    cv = metrics.get("cv")
    path = study.out / "cv" / "folds.csv"
    if not cv or not path.is_file():
        return None
    m = study.config["models"]
    folds = pd.read_csv(path)
    methods = list(cv)
    rows = []
    for method in methods:
        row = [CV_NAMES.get(method, method)]
        for name in outputs:
            e = cv[method].get(name, {})
            row += [_pm(e.get("r2_mean"), e.get("r2_sd")), _pm(e.get("R2_mean"), e.get("R2_sd"))]
        row.append(str(max((e.get("n_folds", 0) for e in cv[method].values()), default=0)))
        rows.append(row)
    header = ["method", *[h for n in outputs for h in (f"{n} r²", f"{n} R²")], "folds"]
    n_total = m["folds"] * m["repeats"]
    intro = Markup(
        "{}-fold cross-validation repeated {} time(s) ({} test folds; repeat r partitions the "
        "subjects with the seed models.seed + r). In each fold the test set is one fold, the "
        "validation set the next one and the training set the others; every method is tested on "
        "the same folds. The CNNs train on the training folds and keep their best validation "
        "checkpoint; ridge and SVR-LSM are fitted on training + validation folds. Mean ± sample "
        "SD over the folds of the squared Pearson r² and of R² (scikit-learn r2_score). Per-fold "
        "values: <code>cv/folds.csv</code>. The prediction tables, group maps and localisation "
        "metrics elsewhere in this report come from the single main split, not from these folds."
    ).format(m["folds"], m["repeats"], n_total)
    table = _table(header, rows, title="Cross-validated test r² and R² (mean ± SD)")
    figure = _figure(figs.cv_figure(folds, outputs, methods), "cross-validation spread")
    return {"intro": intro, "table": table, "figure": figure}

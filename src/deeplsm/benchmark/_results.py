"""Each cell's ``metrics.json`` → one tidy table, ``results.csv``, and the cell table, ``cells.csv``.

``results.csv`` has one row per cell × method × score × metric::

    scenario, n, source, seed, noise, volume_weight, cell, method, attribution, headline,
    score, metric, value

``method`` is ``multi`` or ``single`` for the CNNs, otherwise the study's method name (``vlsm``,
``svr``, and ``ridge`` once the study has it). A CNN's localisation rows carry the attribution
method (``ig``, ``gradshap``, ``occlusion``) in ``attribution``; ``headline`` marks the rows the
summary and the plots use: every prediction row, every classical row, and the CNN rows of
:func:`headline_attribution`. ``metric`` is ``r2`` (squared Pearson r, the paper's), ``R2``
(sklearn's coefficient of determination), ``mse`` (test split), the localisation metrics
(``pr_auc``, ``average_precision``, ``prevalence``, ``cdc``, ``dice_best``,
``peak_distance_mm``, ``com_distance_mm``) and ``seconds`` (the method's stages; score ``all``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from deeplsm._utils import atomic_path
from deeplsm.simulate._scenarios import SCENARIOS

#: The CNN attribution the summary and the plots use when the configuration does not say (see
#: :func:`headline_attribution`): lesion-aware occlusion, the paper's best of the three.
HEADLINE_ATTRIBUTION = "occlusion"
CNN_MODES = ("multi", "single")
METHOD_ORDER = ("multi", "single", "ridge", "svr", "vlsm")
#: metrics.json prediction key -> results.csv metric.
PREDICTION_METRICS = {"r2_pearson": "r2", "r2": "R2", "mse": "mse"}
LOCALIZATION_METRICS = ("pr_auc", "average_precision", "prevalence", "cdc", "dice_best",
                        "peak_distance_mm", "com_distance_mm")
CELL_COLUMNS = ["scenario", "n", "source", "seed", "noise", "volume_weight"]
COLUMNS = [*CELL_COLUMNS, "cell", "method", "attribution", "headline", "score", "metric", "value"]


def split_method(name: str) -> tuple[str, str]:
    """``multi_occlusion`` → (``multi``, ``occlusion``); ``vlsm`` → (``vlsm``, ``""``)."""
    head, _, tail = name.partition("_")
    if head in CNN_MODES and tail:
        return head, tail
    return name, ""


def headline_attribution(config: dict) -> str:
    """The CNNs' headline attribution of a benchmark configuration: the first of its
    ``[study.explain] methods`` (the default grid: ``ig``, which with the ``readout`` preset's
    voxel-resolution network localises at the grid's resolution where occlusion windows are
    blocky), or :data:`HEADLINE_ATTRIBUTION`."""
    methods = (config.get("study", {}).get("explain", {}) or {}).get("methods") or []
    return methods[0] if methods else HEADLINE_ATTRIBUTION


def tidy_metrics(metrics: dict, headline_attr: str = HEADLINE_ATTRIBUTION) -> list[dict]:
    """One study's ``metrics.json`` as tidy rows (without the cell columns); the CNN rows of
    ``headline_attr`` are the headline ones."""
    rows: list[dict] = []
    for method, per_score in (metrics.get("prediction") or {}).items():
        for score, m in per_score.items():
            for key, metric in PREDICTION_METRICS.items():
                if m.get(key) is not None:
                    rows.append({"method": method, "attribution": "", "headline": True,
                                 "score": score, "metric": metric, "value": float(m[key])})
    for name, per_score in (metrics.get("localization") or {}).items():
        method, attribution = split_method(name)
        headline = attribution in ("", headline_attr)
        for score, m in per_score.items():
            for metric in LOCALIZATION_METRICS:
                if m.get(metric) is not None:
                    rows.append({"method": method, "attribution": attribution, "headline": headline,
                                 "score": score, "metric": metric, "value": float(m[metric])})
    timings = metrics.get("timings_s") or {}
    methods = {r["method"] for r in rows}
    for method in sorted(methods):
        stages = [f"train_{method}", f"explain_{method}"] if method in CNN_MODES else [method]
        secs = [timings[s] for s in stages if s in timings]
        if secs:
            rows.append({"method": method, "attribution": "", "headline": True, "score": "all",
                         "metric": "seconds", "value": float(sum(secs))})
    return rows


def collect_results(out: Path, records: list[dict],
                    headline_attr: str = HEADLINE_ATTRIBUTION) -> pd.DataFrame:
    """The tidy table of every finished cell (status ``ok``) of ``records``."""
    from deeplsm.benchmark._config import Cell

    rows = []
    for rec in records:
        if rec.get("status") != "ok":
            continue
        cell = Cell(**rec["cell"])
        path = out / "cells" / cell.id / "study" / "metrics.json"
        if not path.exists():
            continue
        base = {**cell.to_dict(), "cell": cell.id}
        rows += [{**base, **r} for r in tidy_metrics(json.loads(path.read_text()), headline_attr)]
    return pd.DataFrame(rows, columns=COLUMNS)


def cells_table(records: list[dict]) -> pd.DataFrame:
    """One row per cell: its grid values, status, wall and CPU seconds, peak memory and error."""
    from deeplsm.benchmark._config import Cell

    rows = [{**rec["cell"], "cell": Cell(**rec["cell"]).id, "status": rec["status"],
             "seconds": rec.get("seconds"), "cpu_seconds": rec.get("cpu_seconds"),
             "peak_rss_mb": rec.get("peak_rss_mb"), "error": rec.get("error") or ""} for rec in records]
    return pd.DataFrame(rows, columns=[*CELL_COLUMNS, "cell", "status", "seconds", "cpu_seconds",
                                       "peak_rss_mb", "error"])


def write_results(out: Path, results: pd.DataFrame, records: list[dict]) -> None:
    """Write ``results.csv`` and ``cells.csv`` atomically."""
    for name, df in (("results.csv", results), ("cells.csv", cells_table(records))):
        with atomic_path(out / name) as tmp:
            df.to_csv(tmp, index=False)


def headline_means(results: pd.DataFrame) -> pd.DataFrame:
    """Per condition × scenario × N × method × metric: mean over scores, then over seeds.

    Columns: ``source, noise, volume_weight, scenario, n, method, metric, mean, lo, hi, seeds``,
    where ``lo``/``hi`` are the smallest and largest per-seed means (the seed spread).
    """
    cond = ["source", "noise", "volume_weight", "scenario", "n", "method", "metric"]
    h = results[results["headline"].astype(bool)]
    if h.empty:
        return pd.DataFrame(columns=[*cond, "mean", "lo", "hi", "seeds"])
    per_seed = h.groupby([*cond, "seed"], as_index=False)["value"].mean()
    g = per_seed.groupby(cond)["value"]
    out = pd.DataFrame({"mean": g.mean(), "lo": g.min(), "hi": g.max(), "seeds": g.size()}).reset_index()
    # The scenarios and methods in their documented order, not alphabetically.
    rank = {**{s: i for i, s in enumerate(SCENARIOS)}, **{m: i for i, m in enumerate(METHOD_ORDER)}}
    keys = ["source", "noise", "volume_weight", "scenario", "n", "method", "metric"]
    return out.sort_values(keys, key=lambda c: c.map(lambda v: rank.get(v, 99)) if c.name in
                           ("scenario", "method") else c, kind="stable").reset_index(drop=True)

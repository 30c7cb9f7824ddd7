"""``benchmark.html``: one self-contained page (Jinja2, autoescaped; figures as base64 PNG)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pandas as pd

from deeplsm._utils import atomic_path
from deeplsm.benchmark import _figures as figs
from deeplsm.benchmark._results import HEADLINE_ATTRIBUTION, cells_table, headline_means
from deeplsm.benchmark._summary import summarise

#: Columns of the means table: metric -> (header, decimals).
TABLE_METRICS = {"r2": ("r²", 3), "R2": ("R²", 3), "pr_auc": ("PR-AUC", 3), "cdc": ("cDC", 3),
                 "peak_distance_mm": ("peak distance (mm)", 1), "seconds": ("seconds", 0)}


def _b64(png: bytes) -> str:
    return base64.b64encode(png).decode("ascii")


def _environment():
    import jinja2

    return jinja2.Environment(loader=jinja2.PackageLoader("deeplsm.benchmark", "templates"),
                              autoescape=True, undefined=jinja2.StrictUndefined)


def _condition_title(source: str, noise: float, volume_weight: float) -> str:
    return f"source {source}, noise {noise:g} × SD, volume confound {volume_weight:g}"


def _means_rows(means: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    wide = means.pivot_table(index=["scenario", "n", "method"], columns="metric", values="mean",
                             sort=False)
    header = ["scenario", "N", "method"] + [TABLE_METRICS[m][0] for m in TABLE_METRICS]
    rows = []
    for (sc, n, method), r in wide.iterrows():
        row = [sc, str(int(n)), method]
        for m, (_, dec) in TABLE_METRICS.items():
            v = r.get(m)
            row.append("–" if v is None or pd.isna(v) else f"{v:.{dec}f}")
        rows.append(row)
    return header, rows


def render_html(results: pd.DataFrame, records: list[dict], meta: dict) -> str:
    """The page's HTML for the tidy ``results``, the cell ``records`` and the run's ``meta``."""
    means = headline_means(results)
    conditions = []
    for (source, noise, vw), m in means.groupby(["source", "noise", "volume_weight"], sort=False):
        header, rows = _means_rows(m)
        conditions.append({
            "title": _condition_title(source, noise, vw),
            "summary": summarise(m),
            "curves": _b64(figs.curves_figure(m)),
            "heatmap": _b64(figs.heatmap_figure(m)),
            "header": header, "rows": rows,
        })
    cells = cells_table(records)
    cells_rows = [[r.cell, r.status, *("–" if pd.isna(v) else f"{v:.0f}"
                                       for v in (r.seconds, r.cpu_seconds, r.peak_rss_mb)), r.error]
                  for r in cells.itertuples()]
    cfg = meta["config"]
    return _environment().get_template("benchmark.html").render(
        n_ok=int((cells["status"] == "ok").sum()), n_failed=int((cells["status"] != "ok").sum()),
        n_cells=len(cells), too_few=meta.get("too_few_subjects", []), grid=cfg["grid"],
        seconds=meta.get("seconds"), headline=meta.get("headline_attribution", HEADLINE_ATTRIBUTION),
        conditions=conditions,
        cells_header=["cell", "status", "seconds", "CPU seconds", "peak memory (MB)", "error"],
        cells_rows=cells_rows,
        config=json.dumps(cfg, indent=2, default=str),
        versions=json.dumps(meta.get("versions", {}), indent=2),
    )


def write_benchmark_html(out: Path, results: pd.DataFrame, records: list[dict], meta: dict) -> Path:
    """Write ``out/benchmark.html`` atomically; return its path."""
    with atomic_path(out / "benchmark.html") as tmp:
        tmp.write_text(render_html(results, records, meta))
    return out / "benchmark.html"

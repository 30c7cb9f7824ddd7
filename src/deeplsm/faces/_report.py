"""A self-contained HTML page (PNG figures embedded as base64) for a ``deeplsm faces`` run.

Rendered from ``deeplsm/report/templates/faces_report.html`` with autoescaping, so labels,
image IDs and paths from the user reach the page as text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from deeplsm._html import img_src, render
from deeplsm._utils import atomic_path

_CSS = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: right; }
th { background: #eee; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.4em 0; }
.note { color: #555; font-size: 0.9em; }
pre { background: #f6f6f6; padding: 0.6em; font-size: 0.8em; overflow-x: auto; }
"""


def _img(path: Path) -> dict:
    return {"alt": Path(path).name, "src": img_src(Path(path).read_bytes())}


def _table(df: pd.DataFrame, floatfmt: str = "{:.4g}") -> dict:
    def cell(v) -> str:
        if isinstance(v, bool):
            return "yes" if v else "no"
        if isinstance(v, float):
            return "n/a" if v != v else floatfmt.format(v)
        return str(v)

    return {"header": [str(c) for c in df.columns],
            "rows": [[cell(v) for v in row] for row in df.itertuples(index=False)]}


def write_report(path: Path, *, config: dict, summary: dict, table: pd.DataFrame, loc: pd.DataFrame,
                 figures: Mapping[str, Path]) -> Path:
    """Write ``report.html``: Table III equivalent, Fig. 5, Fig. 6 per model, localisation."""
    from deeplsm.faces._run import _fmt_metric

    src = config["data"]
    hp = config["hyperparameters"]
    tab = table.copy()
    for g in ("single", "multi"):
        if g in tab.columns:
            tab[f"{g}-output"] = [_fmt_metric(m, v) for m, v in zip(tab["metric"], tab[g])]
            tab = tab.drop(columns=g)
    mean = None
    if len(loc):
        mean = _table(loc.groupby(["model", "output", "method"])[
            ["prevalence", "pr_auc", "average_precision", "cdc", "dice_best", "peak_inside"]]
            .mean().reset_index(), "{:.3f}")
    page = {
        "css": _CSS, "loader": str(src.get("loader")), "source": str(src.get("path", "generated")),
        "image_size": src.get("image_size", ["?"])[0], "n": summary["n_images"],
        "mode": summary["mode"], "seed": summary["seed"], "hp": hp,
        "total_seconds": f"{summary['timing'].get('total_seconds', 0):.0f}",
        "metrics": _table(tab),
        "fig5": _img(figures["fig5"]) if "fig5" in figures else None,
        "fig6": [{"model": key[5:], **_img(p)} for key, p in figures.items() if key.startswith("fig6_")],
        "localization": mean,
        "learning_curves": _img(figures["learning_curves"]) if "learning_curves" in figures else None,
        "config": json.dumps(config, indent=1, default=str),
    }
    with atomic_path(path) as tmp:
        tmp.write_text(render("faces_report.html", **page), encoding="utf-8")
    return path

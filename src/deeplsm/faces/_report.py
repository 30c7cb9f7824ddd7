"""A self-contained HTML page (PNG figures embedded as base64) for a ``deeplsm faces`` run."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

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


def _img(path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(Path(path).name)}" src="data:image/png;base64,{data}">'


def _table(df: pd.DataFrame, floatfmt: str = "{:.4g}") -> str:
    def cell(v) -> str:
        if isinstance(v, bool):
            return "yes" if v else "no"
        if isinstance(v, float):
            return "n/a" if v != v else floatfmt.format(v)
        return html.escape(str(v))

    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>"
                   for row in df.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_report(path: Path, *, config: dict, summary: dict, table: pd.DataFrame, loc: pd.DataFrame,
                 figures: Mapping[str, Path]) -> Path:
    """Write ``report.html``: Table III equivalent, Fig. 5, Fig. 6 per model, localisation."""
    from deeplsm.faces._run import _fmt_metric

    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>deeplsm faces</title>"
             f"<style>{_CSS}</style></head><body>",
             "<h1>deeplsm faces: multi-output vs single-output ResNet18</h1>"]
    src = config["data"]
    n = summary["n_images"]
    parts.append(f"<p class='note'>Data: {html.escape(str(src.get('loader')))} "
                 f"({html.escape(str(src.get('path', 'generated')))}), "
                 f"{src.get('image_size', ['?'])[0]} px images; train/val/test {n['train']}/{n['val']}/"
                 f"{n['test']}; mode {html.escape(summary['mode'])}, seed {summary['seed']}, "
                 f"{config['hyperparameters']['max_epochs']} epochs, batch "
                 f"{config['hyperparameters']['batch_size']}, {config['hyperparameters']['optimizer']}. "
                 f"Total time {summary['timing'].get('total_seconds', 0):.0f} s.</p>")
    parts.append("<h2>Prediction metrics on the test split (Table III)</h2>")
    tab = table.copy()
    for g in ("single", "multi"):
        if g in tab.columns:
            tab[f"{g}-output"] = [_fmt_metric(m, v) for m, v in zip(tab["metric"], tab[g])]
            tab = tab.drop(columns=g)
    parts.append(_table(tab))
    if "fig5" in figures:
        parts.append("<h2>Example image: predictions against the truth (Fig. 5)</h2>")
        parts.append(_img(figures["fig5"]))
    for key, p in figures.items():
        if key.startswith("fig6_"):
            parts.append(f"<h2>Explanations, {html.escape(key[5:])}-output model (Fig. 6)</h2>")
            parts.append("<p class='note'>|attribution| summed over RGB, each map scaled to its "
                         "maximum; multi-class outputs explained for the predicted class. Cyan: the "
                         "output's ground-truth region (synthetic data).</p>")
            parts.append(_img(p))
    if len(loc):
        parts.append("<h2>Localisation against the ground-truth regions</h2>")
        parts.append("<p class='note'>Mean over the explained images. PR-AUC and average precision "
                     "of the map against the region (chance = the region's share of the image), "
                     "continuous Dice, best Dice over thresholds, and the share of maps whose peak "
                     "lies inside the region.</p>")
        mean = (loc.groupby(["model", "output", "method"])[
            ["prevalence", "pr_auc", "average_precision", "cdc", "dice_best", "peak_inside"]]
            .mean().reset_index())
        parts.append(_table(mean, "{:.3f}"))
    if "learning_curves" in figures:
        parts.append("<h2>Learning curves</h2>")
        parts.append(_img(figures["learning_curves"]))
    parts.append("<h2>Configuration</h2>")
    parts.append(f"<pre>{html.escape(json.dumps(config, indent=1, default=str))}</pre>")
    parts.append("</body></html>")
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(parts), encoding="utf-8")
    return path

"""Write ``report.html`` (self-contained: figures embedded as base64 PNG) and ``README.txt``."""

from __future__ import annotations

import base64
import html
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import nibabel as nib
import numpy as np
import pandas as pd

from deeplsm._utils import atomic_path
from deeplsm.report import _figures as figs
from deeplsm.report._clusters import clusters_html

if TYPE_CHECKING:
    from deeplsm.study import Study

log = logging.getLogger("deeplsm")

#: The paper's Tables IV-VII (TRACE-VCI, 822 subjects), for side-by-side reading.
PAPER = {
    "mse": {"single": [0.0079, 0.0064, 0.0050], "multi": [0.0061, 0.0034, 0.0066]},
    "r2_pearson": {"single": [0.93, 0.84, 0.93], "multi": [0.94, 0.94, 0.97]},
    "pr_auc": {"single_gradshap": [0.1568, 0.089, 0.0236], "single_ig": [0.1526, 0.0709, 0.1042],
               "single_occlusion": [0.3439, 0.3854, 0.6457],
               "multi_gradshap": [0.1241, 0.0620, 0.2811], "multi_ig": [0.1597, 0.1043, 0.3893],
               "multi_occlusion": [0.3651, 0.4028, 0.5835]},
    "cdc": {"single_gradshap": [0.0938, 0.0712, 0.0384], "single_ig": [0.0857, 0.0682, 0.0667],
            "single_occlusion": [0.2039, 0.1481, 0.2724],
            "multi_gradshap": [0.0798, 0.0602, 0.1059], "multi_ig": [0.0944, 0.0727, 0.1499],
            "multi_occlusion": [0.1984, 0.1656, 0.2772]},
}

CSS = """
body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
td,th{border:1px solid #bbb;padding:.25em .6em;text-align:right}th{background:#f0f0f0}
td:first-child,th:first-child{text-align:left}
.best{font-weight:bold;background:#e4f4e4}.paper{color:#777}
img{max-width:100%}pre{background:#f6f6f6;padding:.8em;overflow-x:auto;font-size:.8em}
.reading li{margin:.3em 0}
"""


def _img_tag(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _fmt(v, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    if isinstance(v, float) and (abs(v) < 10 ** -digits and v != 0):
        return f"{v:.1e}"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _table(header: list[str], rows: list[list[str]], best_cols: dict[int, int] | None = None) -> str:
    out = ["<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"]
    for r, row in enumerate(rows):
        cells = []
        for c, cell in enumerate(row):
            cls = ' class="best"' if best_cols and best_cols.get(c) == r else ""
            cells.append(f"<td{cls}>{cell}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    return "".join(out) + "</table>"


def _score_names(study: Study) -> list[str]:
    return list(pd.read_csv(study.sim_dir / "scores.csv", nrows=0).columns[1:])


def _reading(metrics: dict, outputs: list[str]) -> str:
    """A short plain-language reading: best localiser per score and its margin."""
    loc = metrics.get("localization", {})
    items = []
    for name in outputs:
        ranked = sorted(((m[name]["pr_auc"], method) for method, m in loc.items()
                         if name in m and m[name].get("pr_auc") is not None), reverse=True)
        if not ranked:
            continue
        best_v, best = ranked[0]
        text = f"<b>{html.escape(name)}</b>: best localised by <b>{best}</b> (PR-AUC {best_v:.3f}"
        if len(ranked) > 1:
            text += f"; next {ranked[1][1]} {ranked[1][0]:.3f}, margin {best_v - ranked[1][0]:+.3f}"
        text += ")"
        for ref in ("vlsm", "svr"):
            if ref in loc and name in loc[ref] and best != ref and loc[ref][name].get("pr_auc") is not None:
                text += f"; {ref.upper()} {loc[ref][name]['pr_auc']:.3f}"
        prev = loc[best][name].get("prevalence")
        if prev:
            text += f"; a random map would score {prev:.4f}"
        items.append(f"<li>{text}.</li>")
    for mode, per in metrics.get("prediction", {}).items():
        r2 = [per[n]["r2_pearson"] for n in outputs if n in per and per[n]["r2_pearson"] is not None]
        if r2:
            ok = all(v >= 0.9 for v in r2)
            items.append(f"<li>{mode}-output CNN: squared Pearson r "
                         + ", ".join(f"{v:.2f}" for v in r2)
                         + (" — all ≥ 0.9." if ok else " — not all reach 0.9.") + "</li>")
    return '<ul class="reading">' + "".join(items) + "</ul>"


def write_report(study: Study, metrics: dict) -> Path:
    """Write ``DIR/report.html`` and ``DIR/README.txt`` for ``study``."""
    out = study.out
    outputs = _score_names(study)
    cohort = study.load_cohort()
    scores = pd.read_csv(study.sim_dir / "scores.csv", index_col=0)
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>deeplsm study report</title>",
             f"<style>{CSS}</style></head><body><h1>deeplsm study report</h1>",
             f"<p>{cohort.n_subjects} subjects on a {'×'.join(map(str, cohort.shape))} grid at "
             f"{cohort.voxel_size[0]:.3g} mm; scores: {', '.join(outputs)}.</p>"]
    parts.append("<h2>Reading</h2>" + _reading(metrics, outputs))

    truth = study.truth_path
    sim_json = study.sim_dir / "simulation.json"
    centres_mm = json.loads(sim_json.read_text())["centres_mm"] if sim_json.exists() else None
    if truth is not None and centres_mm is None:
        lab = np.asarray(nib.load(truth).dataobj)
        centres_mm = [list(cohort.affine[:3, :3] @ np.argwhere(lab == k).mean(0) + cohort.affine[:3, 3])
                      for k in range(1, int(lab.max()) + 1)]
    labels_img = nib.load(truth) if truth is not None else None

    parts.append("<h2>Cohort and scores (Figs. 2–4)</h2>")
    if labels_img is not None:
        parts.append(_img_tag(figs.frequency_figure(cohort.to_img(cohort.frequency_map(), np.float32),
                                                    labels_img, centres_mm), "frequency map"))
    parts.append(_img_tag(figs.score_histograms(scores), "score distributions"))
    if labels_img is not None:
        best = scores.sum(axis=1).idxmax()
        i = cohort.subject_ids.index(best)
        parts.append(_img_tag(figs.example_subject_figure(
            cohort.to_img(cohort.data[i], np.float32), labels_img, centres_mm,
            scores.loc[best].to_dict(), best), "example subject"))

    pred = metrics.get("prediction", {})
    if pred:
        parts.append("<h2>Prediction (Tables IV–V, Figs. A.1–A.2)</h2>")
        modes = list(pred)
        rows = []
        for k, name in enumerate(outputs):
            row = [name]
            for mode in modes:
                row.append(_fmt(pred[mode].get(name, {}).get("mse"), 4))
            for mode in modes:
                p = PAPER["mse"].get(mode)
                row.append(f'<span class="paper">{p[k]:.4f}</span>' if p and k < 3 else "–")
            rows.append(row)
        parts.append("<h3>MSE (Table IV)</h3>" + _table(
            ["score", *[f"{m}" for m in modes], *[f"paper {m}" for m in modes]], rows))
        rows = []
        for k, name in enumerate(outputs):
            row = [name]
            for mode in modes:
                m = pred[mode].get(name, {})
                row.append(f"{_fmt(m.get('r2_pearson'), 3)} (p {_fmt(m.get('p_value'), 3)})")
            for mode in modes:
                row.append(_fmt(pred[mode].get(name, {}).get("r2"), 3))
            for mode in modes:
                p = PAPER["r2_pearson"].get(mode)
                row.append(f'<span class="paper">{p[k]:.2f}</span>' if p and k < 3 else "–")
            rows.append(row)
        parts.append("<h3>Squared Pearson r with p-value, and R² (Table V)</h3>" + _table(
            ["score", *[f"{m} r² (p)" for m in modes], *[f"{m} R²" for m in modes],
             *[f"paper {m}" for m in modes]], rows))
        for mode in modes:
            lc = study.run_dir(mode) / "learning_curves.png"
            if lc.exists():
                parts.append(f"<h3>Learning curves: {mode} (Fig. A.1)</h3>"
                             + _img_tag(lc.read_bytes(), f"learning curves {mode}"))
        preds = {m: pd.read_csv(study.run_dir(m) / "predictions.csv") for m in modes
                 if (study.run_dir(m) / "predictions.csv").exists()}
        if preds:
            parts.append("<h3>Predicted against true, test split (Fig. A.2)</h3>"
                         + _img_tag(figs.prediction_scatter(preds, outputs), "predicted vs true"))

    loc = metrics.get("localization", {})
    if loc:
        parts.append("<h2>Localisation (Tables VI–VII, Figs. 7 and 9)</h2>")
        parts.append("<p>Every map is compared with the binary ROI of its score inside the MNI152 "
                     "brain mask. CNN maps: test-set sum of attributions (positive part for IG and "
                     "GradientSHAP), normalised to [0, 1]. VLSM: positive part of the t-map; SVR-LSM: "
                     "positive part of the beta map; both fitted on the CNN's train + validation "
                     "subjects. Bold: best per score. Grey: the paper's values.</p>")
        methods = list(loc)
        for key, title in (("pr_auc", "PR-AUC (Table VI)"), ("average_precision", "Average precision"),
                           ("cdc", "Continuous Dice (Table VII)"), ("dice_best", "Best-F1 Dice"),
                           ("peak_distance_mm", "Peak distance to ROI centre (mm)"),
                           ("com_distance_mm", "Centre-of-mass distance to ROI centre (mm)")):
            rows, vals = [], []
            for method in methods:
                row, v = [method], []
                for name in outputs:
                    x = loc[method].get(name, {}).get(key)
                    row.append(_fmt(x, 3 if "distance" not in key else 1))
                    v.append(x)
                if key in PAPER and method in PAPER[key]:
                    row.append('<span class="paper">' + " / ".join(f"{p:.3f}" for p in PAPER[key][method])
                               + "</span>")
                elif key in PAPER:
                    row.append("–")
                rows.append(row)
                vals.append(v)
            best = {}
            lower_better = "distance" in key
            for j in range(len(outputs)):
                col = [(r, v[j]) for r, v in enumerate(vals) if v[j] is not None]
                if col:
                    pick = min(col, key=lambda t: t[1]) if lower_better else max(col, key=lambda t: t[1])
                    best[j + 1] = pick[0]
            header = ["method", *outputs] + (["paper (1/2/3)"] if key in PAPER else [])
            parts.append(f"<h3>{title}</h3>" + _table(header, rows, best))
        if labels_img is not None:
            map_paths = _map_paths(study)
            if map_paths:
                parts.append("<h3>Group maps at the ROI-centre coronal slices (Fig. 7)</h3>"
                             + _img_tag(figs.maps_figure(map_paths, labels_img, centres_mm, outputs),
                                        "group maps"))
        ev = json.loads((out / "evaluation.json").read_text())["results"]
        parts.append("<h3>Precision-recall curves (Fig. 9)</h3>" + _img_tag(figs.pr_figure(ev, outputs),
                                                                          "PR curves"))

    parts.append(clusters_html(_map_paths(study), outputs))
    parts.append("<h2>Timings</h2>" + _table(
        ["stage", "seconds"], [[k, f"{v:.1f}"] for k, v in metrics.get("timings_s", {}).items()]))
    parts.append("<h2>Configuration</h2><pre>" + html.escape(json.dumps(study.config, indent=2))
                 + "</pre>")
    parts.append("<h2>Versions</h2><pre>" + html.escape(json.dumps(metrics.get("versions", {}), indent=2))
                 + "</pre></body></html>")
    with atomic_path(out / "report.html") as tmp:
        tmp.write_text("".join(parts))
    with atomic_path(out / "README.txt") as tmp:
        tmp.write_text(README_TXT)
    return out / "report.html"


def _map_paths(study: Study) -> dict[str, dict[str, str]]:
    """method name as in metrics.json -> output -> normalised map path."""
    out: dict[str, dict[str, str]] = {}
    for folder, prefix in study.map_folders():
        for f in sorted(folder.glob("*.nii.gz")):
            stem = f.name[: -len(".nii.gz")]
            method, _, output = stem.partition("_")
            out.setdefault(f"{prefix}{method}", {})[output] = str(f)
    return out


README_TXT = """deeplsm study output
====================

report.html                 the report: figures, tables, reading, timings, config, versions
metrics.json                all numbers in one stable schema (prediction, localization, timings_s,
                            config, versions)
config.json                 the study configuration used
evaluation.json             localisation metrics per map, with the precision-recall curves
stages/<stage>.json         finished stages and their cache keys (delete one to redo that stage)

cohort/cohort.lesions.npz   the lesion maps on the analysis grid (deeplsm cache; load with
                            deeplsm.cohort.LesionCohort.load)
simulation/scores.csv       subject,score_1..score_k
simulation/rois.nii.gz      ground-truth ROIs (label k = ROI of score k), analysis grid
simulation/simulation.json  ROI centres (voxels and MNI mm) and simulation parameters

train/multi/, train/single/ run folders of the CNNs (config.json, split.csv, checkpoints/,
                            metrics.json, predictions.csv, learning_curves.png, logs/)
maps/multi/, maps/single/   attribution group maps {ig,gradshap,occlusion}_<score>.nii.gz, normalised
                            to [0, 1]; sums/ holds the unnormalised sums (addable across runs)
maps/classical/             {vlsm,svr}_<score>.nii.gz: positive part of the t / beta maps, normalised
maps/*/<map>_clusters.tsv   cluster table of each map (size, peak value and MNI mm, sub-peaks,
                            centre of mass, atlas labels); <map>_clusters.json: how it was made
classical/vlsm/, classical/svr/
                            full classical outputs: <score>_stat, _z, _p, _p_fwe, _thresholded,
                            mask.nii.gz, summary.json; <score>_stat_clusters.tsv (and _z_) list
                            the clusters of significant voxels

Every NIfTI file is on the analysis grid in MNI space and opens in FSLeyes, MRIcroGL or nilearn.
"""

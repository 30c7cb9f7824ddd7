"""Write ``report.html`` (self-contained: figures embedded as base64 PNG) and ``README.txt``.

The page is ``templates/study_report.html`` rendered by Jinja2 with autoescaping: this module
computes the numbers, table rows and figures, the template lays them out. A table is a dict
``{"header": [...], "rows": [[cell, ...], ...], "best": {column: row}}``; a cell is plain text
(escaped) or :class:`markupsafe.Markup` built with ``Markup(...).format(...)``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import nibabel as nib
import numpy as np
import pandas as pd

from deeplsm._direction import DESCRIPTIONS
from deeplsm._html import Markup, img_src, render
from deeplsm._utils import atomic_path
from deeplsm.report import _figures as figs
from deeplsm.report._clusters import clusters_html
from deeplsm.report._cv import cv_section
from deeplsm.report._overlap import overlap_text, tested_mask

if TYPE_CHECKING:
    from deeplsm.study import Study

log = logging.getLogger("deeplsm")

#: The paper's simulated scores, by name: score k is the lesioned fraction of ROI k.
PAPER_SCORES = ("score_1", "score_2", "score_3")
#: The paper's Tables IV-VII (TRACE-VCI, 822 subjects): metric -> method -> score -> value.
PAPER = {metric: {method: dict(zip(PAPER_SCORES, values, strict=True)) for method, values in table.items()}
         for metric, table in {
    "mse": {"single": [0.0079, 0.0064, 0.0050], "multi": [0.0061, 0.0034, 0.0066]},
    "r2_pearson": {"single": [0.93, 0.84, 0.93], "multi": [0.94, 0.94, 0.97]},
    "pr_auc_trapezoid": {"single_gradshap": [0.1568, 0.089, 0.0236], "single_ig": [0.1526, 0.0709, 0.1042],
               "single_occlusion": [0.3439, 0.3854, 0.6457],
               "multi_gradshap": [0.1241, 0.0620, 0.2811], "multi_ig": [0.1597, 0.1043, 0.3893],
               "multi_occlusion": [0.3651, 0.4028, 0.5835]},
    "cdc": {"single_gradshap": [0.0938, 0.0712, 0.0384], "single_ig": [0.0857, 0.0682, 0.0667],
            "single_occlusion": [0.2039, 0.1481, 0.2724],
            "multi_gradshap": [0.0798, 0.0602, 0.1059], "multi_ig": [0.0944, 0.0727, 0.1499],
            "multi_occlusion": [0.1984, 0.1656, 0.2772]},
}.items()}


def paper_values(study: Study) -> dict | None:
    """:data:`PAPER` when ``study``'s scores are the paper's simulated ones, else ``None``.

    That is: simulated under the ``linear`` scenario with 3 ROIs, no weights, noise or
    lesion-volume confound, scores named ``score_1..3``, and score k's truth ROI k. The values
    are then matched by score name; for any other scores (a CSV, another scenario, other names)
    the report shows none, so no number of the paper stands beside a different score.
    """
    s = study.config["scores"]
    if s["source"] != "simulate" or s["scenario"] != "linear" or s["n_rois"] != len(PAPER_SCORES) \
            or s["weights"] is not None or s["noise"] or s["volume_weight"]:
        return None
    if tuple(_score_names(study)) != PAPER_SCORES:
        return None
    sim_json = study.sim_dir / "simulation.json"
    truth = json.loads(sim_json.read_text()).get("truth_labels") if sim_json.exists() else None
    if truth != {name: [k] for k, name in enumerate(PAPER_SCORES, 1)}:
        return None
    return PAPER


def _paper_cell(values: dict | None, outputs: list[str], digits: int):
    if not values:
        return "–"
    return _paper(" / ".join(f"{values[n]:.{digits}f}" if n in values else "–" for n in outputs))


def _paper_header(outputs: list[str]) -> str:
    return f"paper ({' / '.join(outputs)})"


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


def _figure(png: bytes, alt: str) -> dict:
    return {"alt": alt, "src": img_src(png)}


def _paper(text: str) -> Markup:
    return Markup('<span class="paper">{}</span>').format(text)


def _fmt(v, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    if isinstance(v, float) and (abs(v) < 10 ** -digits and v != 0):
        return f"{v:.1e}"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _table(header: list[str], rows: list[list], best_cols: dict[int, int] | None = None,
           title: str | None = None) -> dict:
    """A table for the template; ``best_cols`` maps a column to the row shown in bold."""
    return {"title": title, "header": header, "rows": rows, "best": best_cols or {}}


def _score_names(study: Study) -> list[str]:
    return list(pd.read_csv(study.sim_dir / "scores.csv", nrows=0).columns[1:])


def _reading(metrics: dict, outputs: list[str]) -> list[Markup]:
    """A short plain-language reading: best localiser per score and its margin (list items)."""
    loc = metrics.get("localization", {})
    items = []
    for name in outputs:
        ranked = sorted(((m[name]["pr_auc"], method) for method, m in loc.items()
                         if name in m and m[name].get("pr_auc") is not None), reverse=True)
        if not ranked:
            continue
        best_v, best = ranked[0]
        text = Markup("<b>{}</b>: best localised by <b>{}</b> (PR-AUC, i.e. AP, {:.3f}").format(
            name, best, best_v)
        if len(ranked) > 1:
            text += f"; next {ranked[1][1]} {ranked[1][0]:.3f}, margin {best_v - ranked[1][0]:+.3f}"
        text += ")"
        for ref, label in (("vlsm", "VLSM"), ("svr", "SVR"), ("ridge", "ridge")):
            if ref in loc and name in loc[ref] and best != ref and loc[ref][name].get("pr_auc") is not None:
                text += f"; {label} {loc[ref][name]['pr_auc']:.3f}"
        prev = loc[best][name].get("prevalence")
        if prev:
            text += f"; a random map would score {prev:.4f}"
        items.append(text + ".")
    items += _prediction_reading(metrics.get("prediction", {}), outputs)
    return items


#: Display names of the predictive methods.
PREDICTOR_NAMES = {"multi": "multi-output CNN", "single": "single-output CNNs", "ridge": "ridge",
                   "svr": "SVR-LSM"}


def _prediction_reading(pred: dict, outputs: list[str]) -> list[Markup]:
    """Which method predicts each score best (by R², then r²), and each CNN against 0.9."""
    items = []
    for name in outputs:
        ranked = sorted(((per[name]["r2"], per[name].get("r2_pearson"), method)
                         for method, per in pred.items()
                         if name in per and per[name].get("r2") is not None), reverse=True)
        if not ranked:
            continue
        r2, rp, best = ranked[0]
        text = Markup("<b>{}</b>: best predicted by <b>{}</b> (R² {:.3f}, r² {})").format(
            name, PREDICTOR_NAMES.get(best, best), r2, _fmt(rp, 3))
        if len(ranked) > 1:
            text += "; then " + ", ".join(f"{PREDICTOR_NAMES.get(m, m)} R² {v:.3f}" for v, _, m in ranked[1:])
        items.append(text + ".")
    for mode in ("multi", "single"):
        per = pred.get(mode, {})
        rows = [(per[n].get("r2_pearson"), per[n].get("r2")) for n in outputs if n in per]
        r2 = [v for v, _ in rows if v is not None]
        if r2:
            ok = all(v >= 0.9 for v in r2)
            items.append(Markup("{}: squared Pearson r² {}, R² {}{}").format(
                PREDICTOR_NAMES[mode], ", ".join(f"{v:.2f}" for v in r2),
                ", ".join(_fmt(v, 2) for _, v in rows),
                " — r² all ≥ 0.9." if ok else " — r² not all reach 0.9."))
    return items


def _best_rows(vals: list[list], lower_better: bool, offset: int = 1) -> dict[int, int]:
    """Column (``offset`` + j) -> row index of the best value in column j of ``vals`` (rows x cols)."""
    best = {}
    for j in range(len(vals[0]) if vals else 0):
        col = [(r, v[j]) for r, v in enumerate(vals) if v[j] is not None]
        if col:
            pick = min(col, key=lambda t: t[1]) if lower_better else max(col, key=lambda t: t[1])
            best[j + offset] = pick[0]
    return best


#: What the prediction tables show, above them in the report.
PREDICTION_INTRO = (
    "Test split of the CNNs. Ridge and SVR-LSM are fitted on the CNN's train + validation subjects "
    "(ridge's penalty by leave-one-out on them) and predict its test subjects. r²: squared Pearson "
    "correlation (the paper's measure; blind to scale and offset). R²: coefficient of determination "
    "(scikit-learn r2_score; also penalises miscalibration). Bold: best per column.")
#: Added where the paper's values are shown (see :func:`paper_values`).
PAPER_NOTE = " Grey: the paper's values, by score name."


def _prediction_tables(pred: dict, outputs: list[str], paper: dict | None = None) -> list[dict]:
    """Tables IV (MSE) and V (r² with p, R²): one row per predictive method, the best per column
    in bold, and with ``paper`` (see :func:`paper_values`) the paper's values in grey."""
    methods = list(pred)
    rows, vals = [], []
    for method in methods:
        v = [pred[method].get(n, {}).get("mse") for n in outputs]
        extra = [_paper_cell(paper["mse"].get(method), outputs, 4)] if paper else []
        rows.append([method, *[_fmt(x, 4) for x in v], *extra])
        vals.append(v)
    mse = _table(["method", *outputs, *([_paper_header(outputs)] if paper else [])], rows,
                 _best_rows(vals, lower_better=True), title="MSE (Table IV)")
    rows, vals = [], []
    for method in methods:
        row, v = [method], []
        for n in outputs:
            m = pred[method].get(n, {})
            row += [f"{_fmt(m.get('r2_pearson'), 3)} (p {_fmt(m.get('p_value'), 3)})", _fmt(m.get("r2"), 3)]
            v += [m.get("r2_pearson"), m.get("r2")]
        if paper:
            row.append(_paper_cell(paper["r2_pearson"].get(method), outputs, 2))
        rows.append(row)
        vals.append(v)
    header = ["method", *[h for n in outputs for h in (f"{n} r² (p)", f"{n} R²")],
              *([f"paper r² ({' / '.join(outputs)})"] if paper else [])]
    r2 = _table(header, rows, _best_rows(vals, lower_better=False),
                title="Squared Pearson r with p-value, and R² (Table V)")
    return [mse, r2]


def _prediction_files(study: Study, pred: dict) -> dict[str, Path]:
    """method -> its predictions.csv (subject, split, <score>_true, <score>_pred)."""
    out = {}
    for method in pred:
        folder = study.run_dir(method) if method in ("multi", "single") else study.out / "classical" / method
        if (folder / "predictions.csv").exists():
            out[method] = folder / "predictions.csv"
    return out


def write_report(study: Study, metrics: dict) -> Path:
    """Write ``DIR/report.html`` and ``DIR/README.txt`` for ``study``."""
    out = study.out
    outputs = _score_names(study)
    cohort = study.load_cohort()
    scores = pd.read_csv(study.sim_dir / "scores.csv", index_col=0)
    page: dict = {"css": CSS, "n_subjects": cohort.n_subjects,
                  "shape": "×".join(map(str, cohort.shape)), "voxel_size": f"{cohort.voxel_size[0]:.3g}",
                  "outputs": outputs, "reading": _reading(metrics, outputs),
                  "directions": [{"score": name, "text": DESCRIPTIONS.get(d, d)}
                                 for name, d in metrics.get("directions", {}).items()]}

    truth, truths = study.truth_per_score()
    labels_img = nib.load(truth) if truth is not None and truths else None
    paper = paper_values(study)
    page["paper"] = paper is not None

    cohort_figs = []
    tested, overlap = tested_mask(study, cohort)  # the minimum-overlap view (issue 14.4)
    cohort_figs.append(_figure(figs.frequency_figure(
        cohort.to_img(cohort.frequency_map(), np.float32), labels_img, truths,
        tested_img=None if tested is None else cohort.to_img(tested, np.uint8)), "frequency map"))
    page["overlap"] = {"text": overlap_text(cohort, overlap), "curve": _figure(figs.tested_voxels_curve(
        overlap["counts"], overlap["n_subjects"], overlap["min_subjects"]), "voxels tested per overlap")}
    cohort_figs.append(_figure(figs.score_histograms(scores), "score distributions"))
    if labels_img is not None:
        best = scores.sum(axis=1).idxmax()
        i = cohort.subject_ids.index(best)
        cohort_figs.append(_figure(figs.example_subject_figure(
            cohort.to_img(cohort.data[i], np.float32), labels_img, truths,
            scores.loc[best].to_dict(), best), "example subject"))
    page["cohort_figures"] = cohort_figs

    pred = metrics.get("prediction", {})
    page["prediction"] = None
    if pred:
        curves = []
        for mode in pred:
            lc = study.run_dir(mode) / "learning_curves.png"
            if lc.exists():
                curves.append({"mode": mode, **_figure(lc.read_bytes(), f"learning curves {mode}")})
        preds = {m: pd.read_csv(p) for m, p in _prediction_files(study, pred).items()}
        scatter = _figure(figs.prediction_scatter(preds, outputs), "predicted vs true") if preds else None
        page["prediction"] = {"intro": PREDICTION_INTRO + (PAPER_NOTE if paper else ""),
                              "tables": _prediction_tables(pred, outputs, paper),
                              "learning_curves": curves, "scatter": scatter}

    loc = metrics.get("localization", {})
    page["localization"] = None
    if loc:
        methods = list(loc)
        tables = []
        for key, title in (("pr_auc", "PR-AUC: step-wise average precision (headline)"),
                           ("pr_auc_trapezoid", "PR-AUC, trapezoid (the paper's Table VI; reference only)"),
                           ("cdc", "Continuous Dice (Table VII)"), ("dice_best", "Best-F1 Dice"),
                           ("peak_distance_mm", "Peak distance to the truth's centre, or its "
                                                "nearest region's (mm)"),
                           ("com_distance_mm", "Centre-of-mass distance to the truth's centre, "
                                               "region by region (mm)")):
            shown = paper is not None and key in paper
            rows, vals = [], []
            for method in methods:
                row, v = [method], []
                for name in outputs:
                    x = loc[method].get(name, {}).get(key)
                    row.append(_fmt(x, 3 if "distance" not in key else 1))
                    v.append(x)
                if shown:
                    row.append(_paper_cell(paper[key].get(method), outputs, 3))
                rows.append(row)
                vals.append(v)
            best = _best_rows(vals, lower_better="distance" in key)
            header = ["method", *outputs] + ([_paper_header(outputs)] if shown else [])
            tables.append(_table(header, rows, best, title=title))
        maps = None
        if labels_img is not None:
            map_paths = {m: p for m, p in _map_paths(study).items() if m in loc}  # this run's only
            if map_paths:
                maps = _figure(figs.maps_figure(map_paths, labels_img, truths, outputs), "group maps")
        ev = json.loads((out / "evaluation.json").read_text())["results"]
        page["localization"] = {"note": PR_AUC_PARAGRAPH, "tables": tables, "maps": maps,
                                "truth": _truth_note(truths or {}, outputs, paper),
                                "pr": _figure(figs.pr_figure(ev, [n for n in outputs if n in (truths or {})]),
                                              "PR curves")}

    page["cv"] = cv_section(study, metrics, outputs)
    page["exclusions"] = metrics.get("exclusions", {}).get("lines", [])
    this_run = study.map_methods()  # not maps an earlier configuration left on disk
    page["clusters"] = Markup(clusters_html(
        {m: p for m, p in _map_paths(study).items() if m in this_run}, outputs))
    page["timings"] = _table(["stage", "seconds"],
                             [[k, f"{v:.1f}"] for k, v in metrics.get("timings_s", {}).items()])
    page["config"] = json.dumps(study.config, indent=2)
    page["versions"] = json.dumps(metrics.get("versions", {}), indent=2)
    with atomic_path(out / "report.html") as tmp:
        tmp.write_text(render("study_report.html", **page), encoding="utf-8")
    with atomic_path(out / "README.txt") as tmp:
        tmp.write_text(README_TXT)
    return out / "report.html"


def _truth_note(truths: dict[str, list[int]], outputs: list[str], paper: dict | None) -> str:
    """Which labels of ``simulation/rois.nii.gz`` are each score's truth, and where the paper's
    values are."""
    parts = [f"{n} = label{'s' if len(truths[n]) > 1 else ''} {'+'.join(map(str, truths[n]))}"
             for n in outputs if n in truths]
    text = ("Ground truth of each score, the union of these labels of simulation/rois.nii.gz: "
            + "; ".join(parts) + ".")
    left = [n for n in outputs if n not in truths]
    if left:
        text += f" No ground truth for {', '.join(left)}."
    text += (" Distances to a truth of several regions are measured region by region (see "
             "evaluation.json's definitions).")
    if paper is None:
        text += (" The paper's values are shown only for its own simulated scores (linear "
                 "scenario, score_1..3 from 3 ROIs, no weights, noise or volume confound).")
    return text


def _map_paths(study: Study) -> dict[str, dict[str, str]]:
    """method name as in metrics.json -> output -> normalised map path."""
    out: dict[str, dict[str, str]] = {}
    for folder, prefix in study.map_folders():
        for f in sorted(folder.glob("*.nii.gz")):
            stem = f.name[: -len(".nii.gz")]
            method, _, output = stem.partition("_")
            out.setdefault(f"{prefix}{method}", {})[output] = str(f)
    return out


PR_AUC_PARAGRAPH = Markup(
    "<p><b>PR-AUC</b> here is the step-wise average precision (scikit-learn's "
    "<code>average_precision_score</code>): Σ<sub>k</sub> (R<sub>k</sub> − R<sub>k−1</sub>) "
    "P<sub>k</sub> over the map's distinct values from high to low, voxels tied at a value entering "
    "together. An all-zero or constant map scores the prevalence, and no map scores above the "
    "best precision it reaches. The paper's PR-AUC (Table VI) is the area under a P-R curve at "
    "1000 thresholds from the map's maximum to its minimum (its integration rule is not stated); "
    "the trapezoid row computes that area for comparison with the paper's values. Straight lines "
    "between the points interpolate precisions no threshold realises, which flatters blocky maps; "
    "the trapezoid starts at the precision of the highest threshold, not at (recall 0, "
    "precision 1), which would give a blank map about 0.5.</p>"
)

README_TXT = """deeplsm study output
====================

report.html                 the report: figures, tables, reading, timings, config, versions
metrics.json                all numbers in one stable schema (prediction of multi, single, ridge,
                            svr on the test split with MSE, r2_pearson, p_value, r2; localization,
                            directions (score -> direction), timings_s, config, versions)
config.json                 the study configuration used
evaluation.json             localisation metrics per map, with the precision-recall curves
stages/<stage>.json         finished stages and their cache keys (delete one to redo that stage)

cohort/cohort.lesions.npz   the lesion maps on the analysis grid (deeplsm cache; load with
                            deeplsm.cohort.LesionCohort.load)
simulation/scores.csv       subject,score_1..score_k
simulation/rois.nii.gz      ground-truth ROI labels, analysis grid; a score's truth is the union
                            of its labels (metrics.json and evaluation.json: truth_labels)
simulation/simulation.json  ROI centres (voxels and MNI mm), truth_labels and simulation
                            parameters (simulated scores only)

train/multi/, train/single/ run folders of the CNNs (config.json, split.csv, checkpoints/,
                            metrics.json, predictions.csv, learning_curves.png, logs/)
maps/multi/, maps/single/   attribution group maps {ig,gradshap,occlusion}_<score>.nii.gz, turned
                            by the score's direction and normalised to [0, 1]; sums/ holds the
                            unnormalised, unturned sums (addable across runs)
maps/classical/             {vlsm,svr,ridge}_<score>.nii.gz: the t / beta / coefficient maps
                            turned by the score's direction (negated for lower_is_worse,
                            absolute for two_sided), positive part, normalised
classical/vlsm/, classical/svr/, classical/ridge/
                            full classical outputs: <score>_stat, _z, _p, _p_fwe, _thresholded,
                            mask.nii.gz, summary.json; for svr and ridge also predictions.csv
                            (subject, split, <score>_true, <score>_pred) and metrics.json (test
                            split), fitted on the CNN's train + validation subjects;
                            <score>_stat_clusters.tsv (and _z_) list the clusters of significant
                            voxels
maps/*/<map>_clusters.tsv   cluster table of each map (size, peak value and MNI mm, sub-peaks,
                            centre of mass, atlas labels); <map>_clusters.json: how it was made
cv/                         with models.folds: repeated k-fold cross-validation of the CNNs, ridge
                            and SVR-LSM on the same folds: repeat-<r>/fold-<f>/<model>/ (run
                            folders, predictions), splits.csv (each subject's test fold per
                            repeat), folds.csv (repeat, fold, method, score, metric, value,
                            n_train, n_test) and summary.json (mean and SD per method and score,
                            also in metrics.json "cv")

metrics.json "exclusions" lists every subject or voxel left out (or kept but counted) and why:
score rows without a lesion map, empty lesion maps, the voxels outside the classical methods'
min_subjects mask, subjects without a tested voxel, held-out and unexplained subjects.

Every NIfTI file is on the analysis grid in MNI space and opens in FSLeyes, MRIcroGL or nilearn.
"""

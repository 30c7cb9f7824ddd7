"""Ablation of the multi-output CNN on the ``deeplsm demo`` cohort, one named variant per call.

The cohort and scores are built exactly as ``deeplsm demo`` builds them (the synthetic cohort and
simulation settings are read from :func:`deeplsm.study.demo_config`) and cached under ``--cache``.
Every CNN variant is trained on the demo's split (seed 0: 494 train / 164 val / 164 test) and
appends one row to the results JSON: variant, hyperparameters, test r² (squared Pearson) and R²
(sklearn ``r2_score``) per score, best epoch, seconds, load average, date and commit. ``ridge``
adds the linear reference rows (sklearn ``RidgeCV`` on the voxels, fitted on train and on
train + validation). ``table`` writes the markdown table of ``docs/train.md`` from the JSON.

Usage (from the repository root)::

    python benchmarks/bench_ablation.py ridge --cache CACHE
    python benchmarks/bench_ablation.py train baseline --cache CACHE --threads 1
    python benchmarks/bench_ablation.py train readout_l2 --cache CACHE --epochs 6   # screening
    python benchmarks/bench_ablation.py train NAME --set head=spatial --set head_stage=2 --cache CACHE
    python benchmarks/bench_ablation.py curve readout_l2 --cache CACHE --n-train 120,250,494
    python benchmarks/bench_ablation.py table --doc docs/train.md

Rows go to ``benchmarks/results/ablation.json`` (``--results``). r² for a given seed and thread
count is deterministic; timings depend on the machine's load, so every row records
``os.getloadavg()`` at its start and end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "ablation.json"
MAPS_RESULTS = ROOT / "benchmarks" / "results" / "ablation_maps.json"
BEGIN, END = "<!-- ablation-table:begin -->", "<!-- ablation-table:end -->"

#: Named variants: what changes against the demo's multi-output model (``fast`` preset,
#: 12 epochs, sigmoid outputs, global-average-pooled ResNet10 with the paper's MLP head).
VARIANTS: dict[str, tuple[str, dict]] = {
    "baseline": ("demo multi-output model as of main (fast preset, sigmoid, MLP head)",
                 {"head": "mlp", "output01": "sigmoid"}),
    "linear_out": ("identity output + MSE, clamped to [0, 1] only at prediction",
                   {"head": "mlp", "output01": "linear"}),
    "no_mixup": ("baseline without mixup", {"head": "mlp", "output01": "sigmoid", "mixup_alpha": 0.0}),
    "flat_l3": ("flattened linear head on layer3 (3x3x3x256), identity output",
                {"head": "flat", "head_stage": 3, "output01": "linear"}),
    "flat_l2": ("flattened linear head on layer2 (5x6x5x128), identity output",
                {"head": "flat", "head_stage": 2, "output01": "linear"}),
    "readout_l3": ("spatial x channel readout on layer3 (3x3x3), identity output",
                   {"head": "spatial", "head_stage": 3, "output01": "linear"}),
    "readout_l2": ("spatial x channel readout on layer2 (5x6x5), identity output",
                   {"head": "spatial", "head_stage": 2, "output01": "linear"}),
    "readout_l1": ("spatial x channel readout on layer1 (10x12x10), identity output",
                   {"head": "spatial", "head_stage": 1, "output01": "linear"}),
    "no_maxpool": ("baseline without the stem's max-pool (less down-sampling)",
                   {"head": "mlp", "output01": "sigmoid", "no_max_pool": True}),
    "readout_l1_nomp": ("readout on layer1 without the max-pool (19x23x20), identity output",
                        {"head": "spatial", "head_stage": 1, "output01": "linear", "no_max_pool": True}),
    "readout_l0_nomp": ("readout on the stem (conv1, no max-pool; 19x23x20x64), identity output",
                        {"head": "spatial", "head_stage": 0, "output01": "linear", "no_max_pool": True}),
}


# --- data ---------------------------------------------------------------------------------------
def demo_data(cache: Path):
    """The demo's cohort and simulated scores, built once and cached under ``cache``."""
    from deeplsm.cohort import LesionCohort, load_scores, write_scores
    from deeplsm.study import demo_config

    cohort_path, scores_path, rois_path = (cache / "cohort.lesions.npz", cache / "scores.csv",
                                           cache / "rois.nii.gz")
    if not (cohort_path.is_file() and scores_path.is_file() and rois_path.is_file()):
        import numpy as np

        from deeplsm.simulate import simulate
        from deeplsm.synthetic import make_wmh_cohort

        cfg = demo_config()
        c, s = cfg["cohort"], cfg["scores"]
        # The same calls as deeplsm.study's cohort and simulate stages.
        cohort = make_wmh_cohort(int(c["n_subjects"]), voxel_size=c["voxel_size"],
                                 random_state=c["seed"], verbose=False)
        sim = simulate(cohort, n_rois=s["n_rois"], roi_size=s["roi_size"],
                       roi_size_mm=s["roi_size_mm"], min_patients=s["min_patients"],
                       weights=None if s["weights"] is None else np.asarray(s["weights"]),
                       noise=s["noise"], volume_weight=s["volume_weight"], random_state=s["seed"])
        cache.mkdir(parents=True, exist_ok=True)
        cohort.save(cohort_path)
        write_scores(scores_path, cohort.subject_ids, sim.scores, sim.score_names)
        cohort.to_img(sim.labels, dtype=np.int16).to_filename(rois_path)
    cohort = LesionCohort.load(cohort_path)
    return cohort, load_scores(scores_path, cohort.subject_ids)


def demo_split(cohort) -> dict[str, str]:
    from deeplsm.study import demo_config
    from deeplsm.train import split_subjects

    return split_subjects(cohort.subject_ids, random_state=demo_config()["models"]["seed"])


def _train_subset_ids(cohort, n: int) -> list[str]:
    """The first ``n`` of the demo's training subjects in a seeded random order (nested subsets)."""
    split = demo_split(cohort)
    train_ids = [s for s in cohort.subject_ids if split[s] == "train"]
    return [str(s) for s in np.random.default_rng(0).permutation(train_ids)[:n]]


# --- rows ---------------------------------------------------------------------------------------
def _commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "src"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return out + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def _append(results: Path, row: dict) -> None:
    rows = json.loads(results.read_text()) if results.is_file() else []
    rows.append(row)
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(rows, indent=1) + "\n")
    print(json.dumps({k: row[k] for k in ("variant", "test") if k in row}, indent=1))


def _base_row(kind: str, variant: str, command: str) -> dict:
    return {"kind": kind, "variant": variant, "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "commit": _commit(), "command": command, "load_avg_start": [round(v, 2) for v in os.getloadavg()]}


def _metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    from deeplsm.evaluate import regression_metrics

    m = regression_metrics(y_true, y_pred)
    return {"r2_pearson": m["r2_pearson"], "r2_score": m["r2_score"], "mse": m["mse"]}


def ridge(args) -> list[dict]:
    """Linear references on the same split: sklearn ``RidgeCV`` (penalty by efficient
    leave-one-out CV) or, with ``--model lasso``, a non-negative ``LassoCV`` (5-fold), on the
    voxels or (``--features block2``) on 2x2x2 block means, fitted on train and on train + val."""
    from sklearn.linear_model import LassoCV, RidgeCV

    cohort, scores = demo_data(args.cache)
    split = demo_split(cohort)
    lab = np.array([split[s] for s in cohort.subject_ids])
    x = cohort.data.astype(np.float64)
    if args.features == "block2":
        import torch

        x = torch.nn.functional.avg_pool3d(torch.from_numpy(x)[:, None], 2, 2, ceil_mode=True).numpy()
    x = x.reshape(cohort.n_subjects, -1)
    x = x[:, x.any(axis=0)]  # voxels never lesioned carry nothing
    rows = []
    for fit_on in (("train",), ("train", "val")):
        name = args.model + ("" if args.features == "voxels" else f"_{args.features}")
        row = _base_row("linear", f"{name}_" + "_".join(fit_on), _command(args))
        tr, te = np.isin(lab, fit_on), lab == "test"
        if args.n_train is not None:  # the learning curve's subset of the training subjects
            if fit_on != ("train",):
                continue
            keep = set(_train_subset_ids(cohort, args.n_train))
            tr = np.array([s in keep for s in cohort.subject_ids])
            row["variant"] += f"_n{args.n_train}"
        t0 = time.perf_counter()
        row["test"], row["alpha"] = {}, {}
        for score in scores.columns:
            y = scores[score].to_numpy()
            if args.model == "ridge":
                model = RidgeCV(alphas=np.logspace(-3, 4, 15)).fit(x[tr], y[tr])
            else:
                model = LassoCV(alphas=12, cv=5, positive=True, max_iter=3000, random_state=0)
                model.fit(x[tr], y[tr])
                row.setdefault("nonzero", {})[score] = int(np.sum(model.coef_ != 0))
            row["test"][score] = _metrics(y[te], np.clip(model.predict(x[te]), 0, 1))
            row["alpha"][score] = float(model.alpha_)
        row["seconds"] = round(time.perf_counter() - t0, 2)
        row["n_train"] = int(tr.sum())
        how = ("RidgeCV, alphas 1e-3..1e4 (15, log), efficient LOO CV" if args.model == "ridge"
               else "non-negative LassoCV, 12 alphas, 5-fold CV")
        on = "voxels" if args.features == "voxels" else "2x2x2 block means (8 mm)"
        row["note"] = (f"sklearn {how}, on {on}; predictions clipped to [0, 1]; fitted on "
                       + " + ".join(fit_on))
        row["load_avg_end"] = [round(v, 2) for v in os.getloadavg()]
        rows.append(row)
        _append(args.results, row)
    return rows


def _command(args) -> str:
    return "python benchmarks/bench_ablation.py " + " ".join(sys.argv[1:])


def _overrides(args) -> tuple[str, dict]:
    desc, ov = VARIANTS.get(args.variant, ("", {}))
    if args.variant not in VARIANTS and not args.set:
        raise SystemExit(f"unknown variant {args.variant!r}; known: {', '.join(VARIANTS)} "
                         "(or describe it with --set key=value)")
    ov = dict(ov)
    for item in args.set or []:
        k, _, v = item.partition("=")
        try:
            ov[k] = json.loads(v)
        except json.JSONDecodeError:
            ov[k] = v
        desc = (desc + "; " if desc else "") + item
    if args.epochs is not None:
        ov["max_epochs"] = args.epochs
    ov.setdefault("max_epochs", 12)  # the demo's multi-output epochs
    return desc, ov


def train(args) -> dict:
    from deeplsm.train import train_run

    cohort, scores = demo_data(args.cache)
    desc, ov = _overrides(args)
    run = args.cache / "runs" / (args.variant + (f"_e{args.epochs}" if args.epochs else "")
                                 + (f"_n{args.n_train}" if args.n_train else "")
                                 + ("_single" if args.mode == "single" else "")
                                 + ("_trainval" if args.fit_trainval else ""))
    if run.exists():
        shutil.rmtree(run)
    row = _base_row("cnn", args.variant, _command(args))
    row["description"], row["overrides"], row["threads"] = desc, ov, args.threads
    keep = None
    if args.fit_trainval:  # the CNN given ridge's subjects: validation joins training
        return _train_on_trainval(args, run, row, cohort, scores, ov)
    if args.n_train is not None:  # learning curve: fewer training subjects, same val and test
        train_ids = set(_train_subset_ids(cohort, args.n_train))
        split = demo_split(cohort)
        keep = [s for s in cohort.subject_ids if split[s] != "train" or s in train_ids]
    t0 = time.perf_counter()
    if keep is None:
        train_run(run, cohort, scores, mode=args.mode, preset="fast", seed=0, overrides=ov,
                  threads=args.threads, verbose=False)
    else:
        _train_subset(run, cohort, scores, keep, ov, args.threads)
    row["seconds"] = round(time.perf_counter() - t0, 1)
    return _finish_row(args, run, row)


def _finish_row(args, run: Path, row: dict) -> dict:
    m = json.loads((run / "metrics.json").read_text())
    row["test"] = {k: {"r2_pearson": v["r2_pearson"], "r2_score": v["r2_score"], "mse": v["mse"]}
                   for k, v in m["test"].items()}
    row["val"] = {k: {"r2_pearson": v["r2_pearson"], "r2_score": v["r2_score"]} for k, v in m["val"].items()}
    fits = list(m["training"].values())  # one model (multi) or one per output (single)
    row["mode"] = args.mode
    row["best_epoch"] = fits[0]["best_epoch"] if len(fits) == 1 else [f["best_epoch"] for f in fits]
    row["epochs"] = fits[0]["epochs"]
    row["fit_seconds"] = round(sum(f["fit_seconds"] for f in fits), 1)
    row["seconds_per_epoch"] = round(row["fit_seconds"] / max(1, row["epochs"]) / len(fits), 1)
    row["n_train"] = m["n_subjects"]["train"]
    row["load_avg_end"] = [round(v, 2) for v in os.getloadavg()]
    _append(args.results, row)
    return row


def _train_on_trainval(args, run: Path, row: dict, cohort, scores, ov: dict) -> dict:
    """Train on training + validation subjects (as ridge_train_val is fitted), keeping 8
    validation subjects only so that the loop has a validation set; test subjects unchanged."""
    from unittest import mock

    from deeplsm.train import train_run

    split = dict(demo_split(cohort))
    val = [s for s in cohort.subject_ids if split[s] == "val"]
    for s in val[8:]:
        split[s] = "train"
    t0 = time.perf_counter()
    with mock.patch("deeplsm.train._run.split_subjects",
                    lambda ids, fractions, seed: {s: split[s] for s in ids}):
        train_run(run, cohort, scores, mode="multi", preset="fast", seed=0, overrides=ov,
                  threads=args.threads, verbose=False)
    row["seconds"] = round(time.perf_counter() - t0, 1)
    row["description"] += "; fitted on train + val (8 val subjects kept for the loop)"
    return _finish_row(args, run, row)


def _train_subset(run: Path, cohort, scores, keep: list[str], ov: dict, threads: int | None) -> None:
    """Train on a subset of the demo's training subjects, with the demo's val and test subjects.

    ``train_run`` draws its split from the seed; here the demo's split is imposed on the subset
    (the seeded split of a smaller cohort would shuffle validation and test subjects).
    """
    from unittest import mock

    from deeplsm.train import train_run

    split = demo_split(cohort)
    with mock.patch("deeplsm.train._run.split_subjects",
                    lambda ids, fractions, seed: {s: split[s] for s in ids}):
        train_run(run, cohort.subset(keep), scores.loc[keep], mode="multi", preset="fast", seed=0,
                  overrides=ov, threads=threads, verbose=False)


# --- group maps ---------------------------------------------------------------------------------
def explain(args) -> dict:
    """Group maps of a trained variant from a set of subjects, scored against the ROIs.

    The attribution settings are the demo's (``demo_config()['explain']``); "PR-AUC" here is the
    step-wise ``average_precision`` of ``deeplsm.evaluate``. A ``vlsm`` row (t-test on the
    training + validation subjects, as the demo's VLSM) is added with ``--vlsm``.
    """
    from deeplsm.evaluate import evaluate_maps
    from deeplsm.explain import explain_run
    from deeplsm.study import demo_config

    demo_data(args.cache)
    e = demo_config()["explain"]
    run = args.cache / "runs" / args.run
    maps = args.cache / "maps" / f"{args.run}_{args.subjects}_{args.max_subjects or 'all'}"
    if maps.exists():
        shutil.rmtree(maps)
    row = _base_row("maps", args.run, _command(args))
    t0 = time.perf_counter()
    explain_run(run, methods=args.methods, subjects=args.subjects, window=e["window"],
                stride=e["stride"], occlusion_positive=e["occlusion_positive"], out_dir=maps,
                max_subjects=args.max_subjects, verbose=False, n_steps=e["n_steps"],
                internal_batch_size=e["internal_batch_size"], n_samples=e["n_samples"],
                nt_samples=e["nt_samples"], stdevs=e["stdevs"], random_state=e["seed"])
    row["seconds"] = round(time.perf_counter() - t0, 1)
    meta = json.loads((maps / "maps.json").read_text())
    row.update(subjects=args.subjects, n_subjects=meta["n_subjects"],
               method_seconds={k: round(v, 1) for k, v in meta["seconds"].items()})
    res = evaluate_maps(maps, args.cache / "rois.nii.gz")["results"]
    row["average_precision"] = {m: {o: round(r["average_precision"], 4) for o, r in per.items()}
                                for m, per in res.items()}
    if args.vlsm:
        row["average_precision"]["vlsm"] = _vlsm_ap(args.cache)
    row["load_avg_end"] = [round(v, 2) for v in os.getloadavg()]
    _append(args.maps_results, row)
    print(json.dumps(row["average_precision"], indent=1))
    return row


def _vlsm_ap(cache: Path) -> dict:
    """VLSM t-map (positive part) on the training + validation subjects, as the demo scores it."""
    from deeplsm.classical import MassUnivariateLSM
    from deeplsm.evaluate import evaluate_maps
    from deeplsm.explain import normalise_map
    from deeplsm.study import demo_config

    c = demo_config()["classical"]
    cohort, scores = demo_data(cache)
    split = demo_split(cohort)
    ids = [s for s in cohort.subject_ids if split[s] != "test"]
    out = cache / "maps" / "vlsm"
    out.mkdir(parents=True, exist_ok=True)
    for name in scores.columns:
        est = MassUnivariateLSM(test=c["vlsm_test"], volume_correction=c["volume_correction"],
                                min_subjects=c["min_subjects"], n_permutations=0, correction="fdr")
        est.fit(cohort.subset(ids), scores.loc[ids, name].to_numpy())
        stat = np.asarray(est.statistic_img_.dataobj, dtype=np.float64)
        cohort.to_img(normalise_map(stat, positive=True), np.float32).to_filename(out / f"vlsm_{name}.nii.gz")
    res = evaluate_maps(out, cache / "rois.nii.gz")["results"]["vlsm"]
    return {o: round(r["average_precision"], 4) for o, r in res.items()}


# --- markdown -----------------------------------------------------------------------------------
def _fmt(v) -> str:
    return "–" if v is None else f"{v:.3f}"


def _shown_command(cmd: str) -> str:
    """The command as a reader reruns it: the cache folder as CACHE, default results file."""
    parts, out, skip = cmd.split(), [], False
    for i, p in enumerate(parts):
        if skip:
            skip = False
            continue
        if p in ("--results", "--maps-results"):
            skip = True
            continue
        if i > 0 and parts[i - 1] == "--cache":
            p = "CACHE"
        out.append(p)
    return " ".join(out)


def _best(r) -> str:
    b = r["best_epoch"]
    if b is None:
        return "–"
    return "/".join(str(v + 1) for v in b) if isinstance(b, list) else str(b + 1)


def table(args) -> str:
    """Markdown table of every row of the results file, in the order they were appended."""
    rows = json.loads(args.results.read_text())
    names = list(rows[0]["test"])
    lines = ["| row | what changed | mode | train subjects | epochs (best) | test r² "
             + " / ".join(names) + " | test R² " + " / ".join(names)
             + " | s per epoch (load) | command |", "|" + "---|" * 9]
    for r in rows:
        r2 = " / ".join(_fmt(r["test"][n]["r2_pearson"]) for n in names)
        big = " / ".join(_fmt(r["test"][n]["r2_score"]) for n in names)
        if r["kind"] == "cnn":
            ep, mode = f"{r['epochs']} ({_best(r)})", r.get("mode", "multi")
            spe = f"{r['seconds_per_epoch']:.0f} ({r['load_avg_start'][0]:.1f})"
            change = r["description"]
        else:
            ep, mode, spe = "–", "–", f"{r['seconds']:.0f} s in all"
            change = "linear reference: " + r["note"]
        lines.append(f"| {r['variant']} | {change} | {mode} | {r['n_train']} | {ep} | {r2} | {big} | "
                     f"{spe} | `{_shown_command(r['command'])}` |")
    md = "\n".join(lines)
    if args.doc:
        text = args.doc.read_text()
        if BEGIN not in text:
            raise SystemExit(f"{args.doc} has no {BEGIN} ... {END} block")
        pre, rest = text.split(BEGIN, 1)
        _, post = rest.split(END, 1)
        args.doc.write_text(pre + BEGIN + "\n" + md + "\n" + END + post)
    print(md)
    return md


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    p_data = sub.add_parser("data", help="build (or check) the cached demo cohort and scores")
    p_ridge = sub.add_parser("ridge", help="append the linear reference rows (RidgeCV by default)")
    p_ridge.add_argument("--model", choices=("ridge", "lasso"), default="ridge")
    p_ridge.add_argument("--features", choices=("voxels", "block2"), default="voxels")
    p_ridge.add_argument("--n-train", type=int, default=None,
                         help="fit on this many of the demo's training subjects (learning curve)")
    p_train = sub.add_parser("train", help="train one variant and append its row")
    p_train.add_argument("variant")
    p_train.add_argument("--set", action="append", metavar="KEY=VALUE",
                         help="hyperparameter override (repeatable); values are JSON when they look like it")
    p_train.add_argument("--epochs", type=int, default=None)
    p_train.add_argument("--n-train", type=int, default=None,
                         help="train on this many of the demo's training subjects (learning curve)")
    p_train.add_argument("--threads", type=int, default=1)
    p_train.add_argument("--fit-trainval", action="store_true",
                         help="train on training + validation subjects (8 validation subjects kept)")
    p_train.add_argument("--mode", choices=("multi", "single"), default="multi",
                         help="one multi-output network (default) or one network per score")
    p_expl = sub.add_parser("explain", help="group maps of a trained variant, scored against the ROIs")
    p_expl.add_argument("run", help="run folder name under CACHE/runs (e.g. baseline)")
    p_expl.add_argument("--subjects", choices=("test", "trainval", "all"), default="trainval")
    p_expl.add_argument("--max-subjects", type=int, default=None)
    p_expl.add_argument("--methods", type=lambda v: v.split(","), default=["occlusion", "ig"])
    p_expl.add_argument("--vlsm", action="store_true", help="also score the VLSM t-map")
    p_expl.add_argument("--maps-results", type=Path, default=MAPS_RESULTS)
    p_expl.add_argument("--threads", type=int, default=1)
    p_table = sub.add_parser("table", help="print the markdown table; with --doc, write it into the file")
    p_table.add_argument("--doc", type=Path, default=None)
    for p in (p_data, p_ridge, p_train, p_expl):
        p.add_argument("--cache", type=Path, required=True, help="folder for the cohort, scores and runs")
    for p in (p_ridge, p_train, p_table):
        p.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args()
    os.environ.setdefault("CI", "1")
    if getattr(args, "cache", None) is not None:
        args.cache = args.cache.resolve()
    if args.what in ("train", "explain"):
        import torch

        torch.set_num_threads(args.threads)
    commands = {"data": lambda a: demo_data(a.cache), "ridge": ridge, "train": train,
                "explain": explain, "table": table}
    commands[args.what](args)


if __name__ == "__main__":
    main()

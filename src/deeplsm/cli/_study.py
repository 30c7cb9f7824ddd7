"""``deeplsm study``: one TOML file → cohort, scores, CNNs, maps, VLSM/SVR/ridge, evaluation, report."""

from __future__ import annotations

import argparse
import sys

from deeplsm.cli._common import add_device_option, device_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("study", help="run a configured study end to end (resumable, cached)",
                       description="Stages: cohort, simulate, train, explain, VLSM/SVR-LSM/ridge, evaluate, "
                       "report. Finished stages are reused on a rerun; an interrupted run resumes.")
    p.add_argument("--config", required=True, help="study TOML file (see examples/study.toml)")
    p.add_argument("--out", required=True, help="output folder")
    add_device_option(p, default=None,
                      extra="; overrides models.device and explain.device of the config")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def apply_device(config: dict, args: argparse.Namespace) -> dict:
    """``--device``, checked, replaces both device keys of ``config``."""
    if args.device is not None:
        device_from_args(args)
        config["models"]["device"] = config["explain"]["device"] = args.device
    return config


def run(args: argparse.Namespace) -> int:
    from deeplsm._outputs import prepare_output
    from deeplsm.cli._common import absolute_inputs
    from deeplsm.study import load_config, run_study

    if args.device is not None:
        device_from_args(args)  # before the config is even read
    absolute_inputs(args, "config")
    config = apply_device(load_config(args.config), args)
    out = prepare_output(args.out, inputs=[args.config, *study_inputs(config)], resume=True)
    args.interrupt_hint = "rerun the same command to resume"
    metrics = run_study(config, out, verbose=not args.quiet)
    print_summary(metrics, args.out)
    return 0


def study_inputs(config: dict) -> list[str]:
    """The files and folders a study configuration reads (its --out may not contain them)."""
    found = [config["cohort"]["source"], config["scores"]["source"], config["scores"].get("truth"),
             config["models"].get("weights")]
    return [str(p) for p in found if p and p not in ("synthetic", "simulate")]


def print_summary(metrics: dict, out) -> None:
    """The end-of-run table in the terminal."""
    w = sys.stdout.write
    pred = metrics.get("prediction", {})
    if pred:
        w("\nprediction on the test split (r²: squared Pearson r; R²: sklearn r2_score; * best per score)\n")
        w(f"  {'score':<12}{'method':<8}{'MSE':>10}{'r²':>9}{'R²':>9}\n")
        names = list(dict.fromkeys(n for per in pred.values() for n in per))
        for name in names:
            rows = {method: per[name] for method, per in pred.items() if name in per}
            best = {key: _best(rows, key, lower=key == "mse") for key in ("mse", "r2_pearson", "r2")}
            for i, (method, m) in enumerate(rows.items()):
                cells = [_mark(_f(m.get(key), 4 if key == "mse" else 3), best[key] == method)
                         for key in ("mse", "r2_pearson", "r2")]
                w(f"  {name if i == 0 else '':<12}{method:<8}{cells[0]:>10}{cells[1]:>9}{cells[2]:>9}\n")
    cv = metrics.get("cv", {})
    if cv:
        from deeplsm.train._cv import cv_summary_line

        w("\nrepeated k-fold cross-validation, test folds (mean ± SD; cv/folds.csv per fold)\n")
        for method, per in cv.items():
            w(f"  {cv_summary_line({method: per})}\n")
    loc = metrics.get("localization", {})
    if loc:
        names = sorted({n for per in loc.values() for n in per})
        w("\nlocalisation PR-AUC (step-wise average precision) / cDC\n")
        w(f"  {'method':<18}" + "".join(f"{n:>18}" for n in names) + "\n")
        for method, per in loc.items():
            cells = [f"{_f(per.get(n, {}).get('pr_auc'))} / {_f(per.get(n, {}).get('cdc'))}" for n in names]
            w(f"  {method:<18}" + "".join(f"{c:>18}" for c in cells) + "\n")
    t = metrics.get("timings_s", {})
    if t:
        w("\nstage times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in t.items())
          + f"; total {sum(t.values()):.0f}\n")
    w(f"\nreport: {out}/report.html\n")


def _f(v, d: int = 3) -> str:
    return "–" if v is None else f"{v:.{d}f}"


def _best(rows: dict[str, dict], key: str, lower: bool) -> str | None:
    """The method with the best ``key`` among ``rows`` (method -> metrics), or None."""
    vals = {m: r.get(key) for m, r in rows.items() if r.get(key) is not None}
    if not vals:
        return None
    return (min if lower else max)(vals, key=vals.get)


def _mark(text: str, best: bool) -> str:
    return f"*{text}" if best else text

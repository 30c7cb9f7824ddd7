"""``deeplsm study``: one TOML file → cohort, scores, CNNs, maps, VLSM/SVR, evaluation, report."""

from __future__ import annotations

import argparse
import sys

from deeplsm.cli._common import add_device_option, device_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("study", help="run a configured study end to end (resumable, cached)",
                       description="Stages: cohort, simulate, train, explain, VLSM/SVR-LSM, evaluate, "
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
    from deeplsm.study import load_config, run_study

    if args.device is not None:
        device_from_args(args)  # before the config is even read
    metrics = run_study(apply_device(load_config(args.config), args), args.out, verbose=not args.quiet)
    print_summary(metrics, args.out)
    return 0


def print_summary(metrics: dict, out) -> None:
    """The end-of-run table in the terminal."""
    w = sys.stdout.write
    pred = metrics.get("prediction", {})
    for mode, per in pred.items():
        w(f"\n{mode}-output prediction (test split)\n")
        w(f"  {'score':<12}{'MSE':>10}{'r²':>8}{'R²':>8}\n")
        for name, m in per.items():
            w(f"  {name:<12}{_f(m.get('mse'), 4):>10}{_f(m.get('r2_pearson')):>8}{_f(m.get('r2')):>8}\n")
    loc = metrics.get("localization", {})
    if loc:
        names = sorted({n for per in loc.values() for n in per})
        w("\nlocalisation PR-AUC / cDC\n")
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

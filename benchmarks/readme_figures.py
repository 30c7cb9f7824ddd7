"""The README's measured figures, written from results files and never typed by hand.

Three steps, each a subcommand::

    python benchmarks/readme_figures.py demo --out /tmp/demo_out        # ~15 min on 2 cores
    python benchmarks/readme_figures.py benchmark --out /tmp/bench_out  # the default grid, ~1 h
    python benchmarks/readme_figures.py benchmark --out /tmp/bench_ph \
        --config examples/bench_paper_head.toml --results benchmarks/results/benchmark_paper_head.json
    python benchmarks/readme_figures.py render                          # README blocks from both
    python benchmarks/readme_figures.py check                           # exit 1 if they differ

``demo`` runs ``deeplsm demo`` exactly as a user does and stores, in ``benchmarks/results/demo.json``,
the demo's own ``metrics.json`` numbers (prediction of every predictor on the test split,
localisation of every map) with the wall time, the peak memory of the command, the stage times,
the machine's load average sampled while it ran, the date, the commit and the machine.
``benchmark`` does the same for ``deeplsm benchmark`` (the default grid) in
``benchmarks/results/benchmark.json``. ``render`` rewrites the README between the
``<!-- figures:NAME -->`` and ``<!-- /figures:NAME -->`` markers from those files, including
which of issue 13's goals the demo meets; ``check`` (and ``tests/test_readme_figures.py``) fails
when the README's blocks are not what the stored results give.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"

#: Issue 13's goals for the demo, checked from the stored results.
GOALS = {"r2": 0.95, "R2": 0.93, "below_ridge": 0.02, "occlusion_ap": 0.8, "ig_ap": 0.6,
         "minutes": 15.0}
CNN_MODES = ("multi", "single")
ATTRIBUTIONS = ("ig", "gradshap", "occlusion")
NAMES = {"ig": "IG", "gradshap": "GradientSHAP", "occlusion": "occlusion", "vlsm": "VLSM",
         "svr": "SVR-LSM", "ridge": "ridge"}


# ---------------------------------------------------------------------------------------- running
def _commit() -> dict:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--", "src"))}


def _machine() -> dict:
    mem = None
    try:
        mem = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        pass
    gpu = None
    try:
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        pass
    return {"platform": platform.platform(), "processor": platform.machine(),
            "cpu_count": os.cpu_count(), "memory_gib": mem, "gpu": gpu,
            "python": platform.python_version()}


class _LoadSampler(threading.Thread):
    """The 1-minute load average every ``every`` seconds while a command runs."""

    def __init__(self, every: float = 15.0) -> None:
        super().__init__(daemon=True)
        self.every, self.samples, self._stop = every, [os.getloadavg()[0]], threading.Event()

    def run(self) -> None:
        while not self._stop.wait(self.every):
            self.samples.append(os.getloadavg()[0])

    def stop(self) -> dict:
        self._stop.set()
        self.samples.append(os.getloadavg()[0])
        return {"start": round(self.samples[0], 2), "max": round(max(self.samples), 2),
                "mean": round(sum(self.samples) / len(self.samples), 2)}


def _timed(cmd: list[str]) -> dict:
    """Run ``cmd``; its wall time, peak RSS (largest process) and the load while it ran, and the
    commit it started from (later commits while it runs do not change what ran)."""
    print("$", " ".join(cmd), flush=True)
    start = _commit()
    sampler = _LoadSampler()
    sampler.start()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd)
    wall = time.perf_counter() - t0
    load = sampler.stop()
    if proc.returncode != 0:
        sys.exit(f"readme_figures: {' '.join(cmd)} failed with exit code {proc.returncode}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
    return {"command": " ".join(cmd), "wall_s": round(wall, 1), "peak_rss_mb": round(peak),
            "load_average": load, **start}


def _record(kind: str, run: dict) -> dict:
    return {"kind": kind, "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": _machine(), **run}


def _deeplsm() -> str:
    exe = shutil.which("deeplsm")
    if exe is None:
        sys.exit("readme_figures: the deeplsm command is not installed (pip install -e .)")
    return exe


def _fresh(out: Path) -> Path:
    """``out`` made empty: measured from scratch, never resumed (only deeplsm's folders go)."""
    out = out.resolve()
    if out.exists():
        if not (out / ".deeplsm").exists():
            sys.exit(f"readme_figures: {out} exists and is not a deeplsm output folder")
        shutil.rmtree(out)
    return out


def cmd_demo(args: argparse.Namespace) -> None:
    out = _fresh(Path(args.out))
    run = _timed([_deeplsm(), "demo", "--out", str(out), "--quiet"])
    m = json.loads((out / "metrics.json").read_text())
    rec = _record("demo", run)
    rec.update(prediction=m["prediction"], localization=m["localization"], timings_s=m["timings_s"],
               versions=m.get("versions", {}), config=m.get("config", {}))
    _write(Path(args.results), rec)
    # the README's picture: the report's group-map figure (Fig. 7) of this very run
    html = (out / "report.html").read_text()
    found = re.search(r'<img alt="group maps" src="data:image/png;base64,([^"]+)"', html)
    if found:
        (ROOT / "docs" / "demo_maps.png").write_bytes(base64.b64decode(found.group(1)))
        print("wrote docs/demo_maps.png")


def cmd_benchmark(args: argparse.Namespace) -> None:
    import pandas as pd

    from deeplsm.benchmark._results import headline_means

    out = _fresh(Path(args.out))
    cmd = [_deeplsm(), "benchmark", "--out", str(out), "--quiet", "--jobs", str(args.jobs)]
    if args.config:
        cmd += ["--config", str(Path(args.config).resolve())]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    run = _timed(cmd)
    results = pd.read_csv(out / "results.csv")
    cells = pd.read_csv(out / "cells.csv")
    means = headline_means(results)
    rec = _record("benchmark", run)
    rec["means"] = json.loads(means.to_json(orient="records"))
    rec["cells"] = json.loads(cells.drop(columns=["error"]).to_json(orient="records"))
    rec["failed"] = int((cells["status"] != "ok").sum())
    rec["headline_attribution"] = json.loads((out / "benchmark.json").read_text()).get("headline_attribution")
    _write(Path(args.results), rec)


def _write(path: Path, rec: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rec, indent=1, sort_keys=False) + "\n")
    print(f"wrote {path}")


# -------------------------------------------------------------------------------------- rendering
def _f(v: float | None, nd: int = 2) -> str:
    return "–" if v is None else f"{v:.{nd}f}"


def _stamp(rec: dict) -> str:
    m = rec["machine"]
    gpu = f", GPU {m['gpu']}" if m.get("gpu") else ", no GPU"
    load = rec["load_average"]
    note = f" ({rec['note']})" if rec.get("note") else ""
    return (f"Measured {rec['date'][:10]} at commit `{rec['commit'][:10]}`{note}"
            f"{' (with uncommitted changes)' if rec.get('dirty') else ''} on {m['cpu_count']} CPU "
            f"cores, {m['memory_gib']} GiB RAM{gpu} ({m['platform']}, Python {m['python']}); load "
            f"average {load['start']} at the start, {load['max']} at most while it ran. Command: "
            f"`{_shown(rec['command'])}`.")


def _shown(command: str) -> str:
    """The command as a user types it: ``deeplsm ...`` rather than the venv's absolute path."""
    exe, _, rest = command.partition(" ")
    return f"{Path(exe).name} {rest}".strip()


def demo_goals(rec: dict) -> list[tuple[str, bool, str]]:
    """Issue 13's goals: (goal, met, measured) from the stored demo results."""
    pred, loc = rec["prediction"], rec["localization"]
    scores = sorted(pred["multi"])
    multi = pred["multi"]
    ridge = pred.get("ridge", {})
    out = []
    r2 = [multi[s]["r2_pearson"] for s in scores]
    out.append((f"multi-output test r² ≥ {GOALS['r2']} on every score", min(r2) >= GOALS["r2"],
                " / ".join(_f(v, 3) for v in r2)))
    big = [multi[s]["r2"] for s in scores]
    out.append((f"multi-output test R² ≥ {GOALS['R2']} on every score", min(big) >= GOALS["R2"],
                " / ".join(_f(v, 3) for v in big)))
    if ridge:
        gap = [ridge[s]["r2_pearson"] - multi[s]["r2_pearson"] for s in scores]
        out.append((f"r² never more than {GOALS['below_ridge']} below ridge (same subjects)",
                    max(gap) <= GOALS["below_ridge"],
                    "ridge − CNN: " + " / ".join(f"{v:+.3f}" for v in gap)))
    for method, goal in (("occlusion", GOALS["occlusion_ap"]), ("ig", GOALS["ig_ap"])):
        key = f"multi_{method}"
        if key in loc:
            ap = [loc[key][s]["pr_auc"] for s in scores]
            out.append((f"multi-output {NAMES[method]} PR-AUC ≥ {goal} on every score",
                        min(ap) >= goal, " / ".join(_f(v, 3) for v in ap)))
    if "vlsm" in loc:
        vlsm = sum(loc["vlsm"][s]["pr_auc"] for s in scores) / len(scores)
        best_name, best = max(((k, sum(loc[k][s]["pr_auc"] for s in scores) / len(scores))
                               for k in loc if k.split("_")[0] in CNN_MODES), key=lambda kv: kv[1])
        out.append(("a CNN map's mean PR-AUC ≥ VLSM's", best >= vlsm,
                    f"best CNN map {best_name} {best:.3f}, VLSM {vlsm:.3f}"))
    minutes = rec["wall_s"] / 60
    out.append((f"`deeplsm demo` within {GOALS['minutes']:.0f} min on 2 cores", minutes <= GOALS["minutes"],
                f"{minutes:.1f} min"))
    return out


def render_demo(rec: dict) -> str:
    pred, loc, t = rec["prediction"], rec["localization"], rec["timings_s"]
    scores = sorted(pred["multi"])
    lines = [_stamp(rec), "",
             f"**{rec['wall_s'] / 60:.1f} min wall**, peak memory {rec['peak_rss_mb'] / 1024:.1f} GB.", "",
             "| stage | " + " | ".join(t) + " |", "|---|" + "---|" * len(t),
             "| seconds | " + " | ".join(_f(v, 1) for v in t.values()) + " |", "",
             "Prediction on the test split: squared Pearson r (the paper's r²) / sklearn R², every "
             "predictor on the same test subjects (ridge and SVR-LSM fitted on training + validation):", "",
             "| predictor | " + " | ".join(scores) + " |", "|---|" + "---|" * len(scores)]
    for model in ("multi", "single", "ridge", "svr"):
        if model in pred:
            cells = [f"{_f(pred[model][s]['r2_pearson'], 3)} / {_f(pred[model][s]['r2'], 3)}" for s in scores]
            lines.append(f"| {model} | " + " | ".join(cells) + " |")
    lines += ["", "Localisation, PR-AUC (step-wise average precision) / continuous Dice against each "
              f"ROI (prevalence {_f(loc['vlsm'][scores[0]]['prevalence'] if 'vlsm' in loc else None, 4)}, "
              "a random map's PR-AUC):", "",
              "| map | " + " | ".join(scores) + " | mean PR-AUC |", "|---|" + "---|" * (len(scores) + 1)]
    order = [f"{m}_{a}" for m in CNN_MODES for a in ATTRIBUTIONS] + ["vlsm", "svr", "ridge"]
    for key in [k for k in order if k in loc]:
        mode, _, attr = key.partition("_")
        name = f"{mode} {NAMES[attr]}" if attr else NAMES[key]
        cells = [f"{_f(loc[key][s]['pr_auc'])} / {_f(loc[key][s]['cdc'])}" for s in scores]
        mean = sum(loc[key][s]["pr_auc"] for s in scores) / len(scores)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {mean:.3f} |")
    lines += ["", "Issue 13's goals for the demo:", "", "| goal | met | measured |", "|---|---|---|"]
    lines += [f"| {g} | {'yes' if ok else '**no**'} | {v} |" for g, ok, v in demo_goals(rec)]
    return "\n".join(lines)


def _clean_means(rec: dict):
    """The stored headline means of the conditions without noise or volume confound."""
    import pandas as pd

    means = pd.DataFrame(rec["means"])
    return means[(means["noise"] == 0) & (means["volume_weight"] == 0)]


def bench_answer(rec: dict) -> dict[str, dict[str, list[str]]]:
    """For r² and PR-AUC: the cells where the multi-output CNN beats every other method, and not."""
    means = _clean_means(rec)
    answer: dict[str, dict[str, list[str]]] = {}
    for metric in ("r2", "pr_auc"):
        d = means[means["metric"] == metric]
        wins, losses, winners = [], [], {}
        for (source, scenario, n), g in d.groupby(["source", "scenario", "n"], sort=False):
            vals = dict(zip(g["method"], g["mean"]))
            if "multi" not in vals:
                continue
            others = {k: v for k, v in vals.items() if k != "multi"}
            best_other = max(others, key=others.get)
            label = f"{scenario} (N = {n}, {source})"
            line = f"{label}: multi {vals['multi']:.2f} vs {best_other} {others[best_other]:.2f}"
            if vals["multi"] > others[best_other]:
                wins.append(line)
            else:
                losses.append(line)
                winners[best_other] = winners.get(best_other, 0) + 1
        answer[metric] = {"wins": wins, "losses": losses, "winners": winners}
    return answer


def render_benchmark(rec: dict) -> str:
    means = _clean_means(rec)
    methods = [m for m in ("multi", "single", "ridge", "svr", "vlsm") if m in set(means["method"])]
    cells = rec["cells"]
    wall = sum(c["seconds"] or 0 for c in cells)
    lines = [_stamp(rec), "",
             f"**{rec['wall_s'] / 60:.1f} min wall** for {len(cells)} cells ({rec['failed']} failed); "
             f"the cells' own times add up to {wall / 60:.1f} min; peak memory per cell "
             f"{min(c['peak_rss_mb'] or 0 for c in cells) / 1024:.1f}–"
             f"{max(c['peak_rss_mb'] or 0 for c in cells) / 1024:.1f} GB.", "",
             "Mean over the scores of each cell (one seed): test r² (squared Pearson r) of the "
             "predictors, and PR-AUC of the maps (the CNNs' "
             f"{NAMES.get(rec.get('headline_attribution') or 'occlusion')} maps). Best per row in bold.", "",
             "| source | scenario | N | " + " | ".join(f"r² {m}" for m in methods if m != "vlsm")
             + " | " + " | ".join(f"PR-AUC {m}" for m in methods) + " |",
             "|---|---|---|" + "---|" * (2 * len(methods) - ("vlsm" in methods))]
    for (source, scenario, n), g in means.groupby(["source", "scenario", "n"], sort=False):
        row = [source, scenario, str(n)]
        for metric, ms in (("r2", [m for m in methods if m != "vlsm"]), ("pr_auc", methods)):
            vals = {m: g[(g["metric"] == metric) & (g["method"] == m)]["mean"] for m in ms}
            vals = {m: (float(v.iloc[0]) if len(v) else None) for m, v in vals.items()}
            best = max((v for v in vals.values() if v is not None), default=None)
            row += [("**" + _f(v) + "**") if v is not None and v == best else _f(v) for v in vals.values()]
        lines.append("| " + " | ".join(row) + " |")
    ans = bench_answer(rec)
    for metric, name in (("r2", "r²"), ("pr_auc", "PR-AUC")):
        w, lo = ans[metric]["wins"], ans[metric]["losses"]
        lines += ["", f"**Where the multi-output CNN beats every other method in {name}** "
                  f"({len(w)} of {len(w) + len(lo)} cells): " + ("; ".join(w) if w else "nowhere") + "."]
        best = ans[metric]["winners"]
        lines += [f"Where it does not ({len(lo)} cells), the best was "
                  + (", ".join(f"{m} in {k}" for m, k in sorted(best.items(), key=lambda kv: -kv[1]))
                     if best else "–") + "."]
    return "\n".join(lines)


def render_direction(rec: dict) -> str:
    """The LESYMAP lower-is-worse check (issue 14's done-when) per training budget."""
    over = ", ".join(f"{k} = {v}" for k, v in (rec.get("overrides") or {}).items())
    lines = [f"Measured {rec['date'][:10]} at commit `{rec['commit'][:10]}` on {rec['device']}, "
             f"{rec['n_subjects']} LESYMAP masks at {rec['voxel_mm']:g} mm ({rec['grid']}); load "
             f"average {rec['load_average_start']:.1f} at the start; {rec['total_seconds'] / 60:.1f} min "
             f"in all{'; training overrides: ' + over if over else ''}. Command: `{rec['command']}`.", ""]
    order = [f"{m}_{a}" for m in CNN_MODES for a in ATTRIBUTIONS] + ["vlsm", "svr", "ridge"]
    for b in rec["budgets"]:
        loc = b["localization"]
        r2 = b["r2_test"].get("multi", {})
        lines += [f"Budget {b['epochs_multi']} epochs (multi-output) / {b['epochs_single']} (each "
                  f"single-output model), {b['seconds']:.0f} s; multi-output test r² "
                  + " / ".join(f"{v:.2f}" for v in r2.values()) + " (ridge "
                  + " / ".join(f"{v:.2f}" for v in b["r2_test"].get("ridge", {}).values()) + "):", "",
                  "| map | score_1 (lower is worse): peak distance, PR-AUC "
                  "| score_2: peak distance, PR-AUC |",
                  "|---|---|---|"]
        within = []
        for key in [k for k in order if k in loc]:
            mode, _, attr = key.partition("_")
            name = f"{mode} {NAMES[attr]}" if attr else NAMES[key]
            cells = []
            for s in ("score_1", "score_2"):
                v = loc[key].get(s, {})
                cells.append(f"{_f(v.get('peak_distance_mm'), 1)} mm, {_f(v.get('pr_auc'), 3)}")
            d = loc[key].get("score_1", {}).get("peak_distance_mm")
            within.append(d is not None and d <= 10.0)
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines += ["", f"{sum(within)} of {len(within)} maps of the lower-is-worse score peak within "
                  "10 mm of its ROI's centre.", ""]
    return "\n".join(lines).rstrip()


def render_classical(rec: dict) -> str:
    """VLSM's speed against nilearn's ``permuted_ols``, measured side by side in one run."""
    v, prov, m = rec["vlsm_t"], rec["vlsm_t"]["provenance"], rec["machine"]
    lo = min([x["load_before"][0] for x in v["ours"] + v["nilearn"]])
    hi = max([x["load_after"][0] for x in v["ours"] + v["nilearn"]])
    return (f"**VLSM against nilearn**, measured side by side in one run "
            f"(`{rec['command']}`, {prov['date_utc'][:10]}, commit `{prov['commit'][:10]}`, "
            f"{m['cpu_count']} CPU cores, load average {lo:.1f}–{hi:.1f}): the t-test with "
            f"{v['permutations']} max-T permutations on N = {v['n_subjects']} subjects and "
            f"{v['n_voxels']:,} voxels ({v['n_patterns']:,} distinct patterns) took "
            f"{v['seconds_ours_median']:.1f} s with deeplsm and {v['seconds_nilearn_median']:.1f} s "
            f"with nilearn's `permuted_ols` (the same permutations, n_jobs = {v['nilearn_n_jobs']}): "
            f"nilearn **{v['ratio_nilearn_over_ours']:.1f}× slower**, t maps equal within "
            f"{v['max_abs_t_diff_vs_nilearn']:.1e}.")


RENDERERS = {"classical": ("classical.json", render_classical),
             "direction_lesymap": ("direction_lesymap.json", render_direction),
             "direction_lesymap_bias_mean": ("direction_lesymap_bias_mean.json", render_direction),
             "demo": ("demo.json", render_demo), "benchmark": ("benchmark.json", render_benchmark),
             "benchmark_paper_head": ("benchmark_paper_head.json", render_benchmark)}


def render(text: str, results: Path = RESULTS) -> str:
    """``text`` (the README) with every ``figures:NAME`` block rewritten from its results file."""
    for name, (fname, fn) in RENDERERS.items():
        start, end = f"<!-- figures:{name} -->", f"<!-- /figures:{name} -->"
        if start not in text:
            continue
        path = results / fname
        body = fn(json.loads(path.read_text())) if path.is_file() else \
            f"*Not measured yet: `python benchmarks/readme_figures.py` writes `benchmarks/results/{fname}`.*"
        block = f"{start}\n{body}\n{end}"
        text = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _m, b=block: b, text, flags=re.S)
    return text


def cmd_render(args: argparse.Namespace) -> None:
    text = README.read_text()
    new = render(text)
    if args.check:
        if new != text:
            sys.exit("readme_figures: README.md's measured figures differ from benchmarks/results; "
                     "run python benchmarks/readme_figures.py render")
        print("README.md figures match benchmarks/results")
        return
    README.write_text(new)
    print("README.md figures rendered" + (" (unchanged)" if new == text else ""))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="run deeplsm demo and store its figures")
    d.add_argument("--out", default="/tmp/readme_demo")
    d.add_argument("--results", default=str(RESULTS / "demo.json"))
    d.set_defaults(func=cmd_demo)
    b = sub.add_parser("benchmark", help="run the default deeplsm benchmark grid and store its figures")
    b.add_argument("--out", default="/tmp/readme_benchmark")
    b.add_argument("--results", default=str(RESULTS / "benchmark.json"))
    b.add_argument("--jobs", type=int, default=1)
    b.add_argument("--config", help="a benchmark TOML file (default: the default grid)")
    b.add_argument("--threads", type=int, help="torch threads per cell (deeplsm benchmark --threads)")
    b.set_defaults(func=cmd_benchmark)
    r = sub.add_parser("render", help="rewrite the README's figure blocks from the results files")
    r.set_defaults(func=cmd_render, check=False)
    c = sub.add_parser("check", help="exit 1 if the README's figure blocks differ from the results")
    c.set_defaults(func=cmd_render, check=True)
    args = p.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()

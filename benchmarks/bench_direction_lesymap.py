"""What training budget do the CNNs need to localise a lower-is-worse score on real stroke masks?

The issue's "done when" (issue 14, score direction): the 131 LESYMAP masks get a simulated
``lower_is_worse`` score, ``score_1 = 1 - fraction of ROI 1 lesioned``, next to a
``higher_is_worse`` one, ``score_2 = fraction of ROI 2 lesioned`` (two 16 mm cubes where at least
15 subjects have lesions, ``deeplsm.simulate``), and ``deeplsm study`` must give every method a
non-empty positive map that peaks within 10 mm of the ROI. ``tests/study/test_direction_lesymap.py``
checks that at 8 mm with a tiny training budget; this script runs the demo-like size (4 mm grid,
the demo's `readout` preset and explanation settings: IG 8 steps, GradientSHAP 8 samples, occlusion
window 3 / stride 2, every training + validation subject) once per training budget (epochs of
the multi-output model, and of each single-output model) and records, per budget, every map's
peak distance to the ROI centre, its PR-AUC (average precision) against the prevalence, the sign
of the raw attributions in the ROI, the test r² and the stage times.

Run (CPU or GPU; see ``benchmarks/bench_gpu.py`` for the GPU machine's wheels)::

    PYTHONPATH=src python benchmarks/bench_direction_lesymap.py --out /tmp/dir_lesymap \\
        --json benchmarks/results/direction_lesymap.json [--budgets 24:12,48:24] \\
        [--cohort cache.lesions.npz]

``--cohort`` takes a cache of the masks already on the 4 mm grid (``LesionCohort.save``), so the
masks need not travel to another machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

LESYMAP = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lesymap-lesions"
CNN_MAPS = [f"{m}_{a}" for m in ("multi", "single") for a in ("ig", "gradshap", "occlusion")]


def _commit() -> str:
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True)
    return done.stdout.strip()


def make_inputs(cohort, folder: Path, seed: int = 0) -> dict:
    """``scores.csv`` (score_1 lower is worse, score_2 higher is worse) and ``rois.nii.gz``."""
    from deeplsm.simulate import simulate

    sim = simulate(cohort, n_rois=2, roi_size_mm=16.0, min_patients=15, random_state=seed)
    folder.mkdir(parents=True, exist_ok=True)
    scores = pd.DataFrame({"score_1": 1.0 - sim.scores[:, 0], "score_2": sim.scores[:, 1]},
                          index=pd.Index(cohort.subject_ids, name="subject"))
    scores.to_csv(folder / "scores.csv")
    cohort.to_img(sim.labels, dtype=np.int16).to_filename(folder / "rois.nii.gz")
    return {"scores": str(folder / "scores.csv"), "truth": str(folder / "rois.nii.gz"),
            "centres_mm": sim.to_json()["centres_mm"],
            "patients_with_deficit": [int((sim.scores[:, k] > 0).sum()) for k in (0, 1)]}


def config(cache: Path, inputs: dict, epochs: int, single_epochs: int, device: str,
           max_subjects: int | None = None, extra: dict | None = None) -> dict:
    from deeplsm.study import make_config

    return make_config({
        "cohort": {"source": str(cache), "voxel_size": None},
        "scores": {"source": inputs["scores"], "truth": inputs["truth"],
                   "direction": {"score_1": "lower_is_worse"}},
        "models": {"modes": ["multi", "single"], "preset": "readout",
                   "overrides": {"max_epochs": epochs, **(extra or {})},
                   "single_overrides": {"max_epochs": single_epochs}, "device": device},
        "explain": {"subjects": "trainval", "n_steps": 8, "n_samples": 8, "window": 3, "stride": 2,
                    "device": device, "max_subjects": max_subjects},
        "classical": {"permutations": 1000, "tail": "one-sided"},
    })


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lesymap", default=str(LESYMAP), help="folder of the 131 masks")
    p.add_argument("--cohort", help="a .lesions.npz cache of the masks on the analysis grid instead")
    p.add_argument("--voxel-size", type=float, default=4.0)
    p.add_argument("--budgets", default="24:12",
                   help="comma list of MULTI_EPOCHS:SINGLE_EPOCHS (default: the demo's 24:12)")
    p.add_argument("--device", default="auto")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a training hyperparameter for every model, e.g. bias_init=mean (repeatable)")
    p.add_argument("--max-subjects", type=int, help="explain only this many test subjects (dry runs)")
    p.add_argument("--out", required=True, help="working folder (one study, rerun per budget)")
    p.add_argument("--json", required=True, help="results file, rewritten after every budget")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    import torch

    from deeplsm.cohort import LesionCohort, load_lesions
    from deeplsm.study import run_study

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if args.cohort:
        cohort = LesionCohort.load(args.cohort)
    else:
        cohort = load_lesions(args.lesymap, grid="mni", voxel_size=args.voxel_size, verbose=False)
    cache = out / "lesymap.lesions.npz"
    cohort.save(cache)
    inputs = make_inputs(cohort, out / "inputs")
    command = " ".join(["python", "benchmarks/bench_direction_lesymap.py", *(argv or sys.argv[1:])])
    record = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "commit": _commit(),
              "command": command, "load_average_start": os.getloadavg()[0], "machine": platform.node(),
              "device": torch.cuda.get_device_name(0) if torch.cuda.is_available()
              else platform.processor() or "cpu",
              "grid": "x".join(map(str, cohort.shape)), "voxel_mm": float(cohort.voxel_size[0]),
              "n_subjects": cohort.n_subjects, "inputs": inputs, "budgets": []}
    rois = np.asarray(nib.load(inputs["truth"]).dataobj)
    extra = {}
    for item in args.set:
        key, _, value = item.partition("=")
        try:
            extra[key] = json.loads(value)  # numbers, true/false, lists
        except ValueError:
            extra[key] = value  # a plain string such as "mean"
    record["overrides"] = extra
    for item in args.budgets.split(","):
        epochs, single = (int(x) for x in item.split(":"))
        t = time.perf_counter()
        metrics = run_study(config(cache, inputs, epochs, single, args.device, args.max_subjects, extra),
                            out / "study", verbose=False)
        row = {"epochs_multi": epochs, "epochs_single": single,
               "seconds": round(time.perf_counter() - t, 1), "timings_s": metrics["timings_s"],
               "r2_test": {m: {s: v["r2_pearson"] for s, v in per.items()}
                           for m, per in metrics["prediction"].items()},
               "localization": {}}
        for method, per in metrics["localization"].items():
            row["localization"][method] = {
                s: {k: v[k] for k in ("peak_distance_mm", "pr_auc", "prevalence", "cdc")}
                for s, v in per.items()}
        # the raw sums' sign in ROI 1: negative = the network lowers score_1 where ROI 1 is damaged
        row["roi1_raw_sum"] = {}
        for mode in ("multi", "single"):
            for a in ("ig", "gradshap", "occlusion"):
                sums = out / "study" / "maps" / mode / "sums"
                raw = np.asarray(nib.load(sums / f"{a}_score_1.nii.gz").dataobj)
                row["roi1_raw_sum"][f"{mode}_{a}"] = float(raw[rois == 1].sum())
        record["budgets"].append(row)
        record["total_seconds"] = round(time.perf_counter() - t0, 1)
        record["load_average_end"] = os.getloadavg()[0]
        Path(args.json).write_text(json.dumps(record, indent=1))
        print(f"budget {epochs}:{single} ({row['seconds']:.0f} s)  r2 multi "
              f"{row['r2_test'].get('multi')}", flush=True)
        for method in [*CNN_MAPS, "vlsm", "svr", "ridge"]:
            per = row["localization"].get(method, {})
            cells = "  ".join(f"{s}: peak {v['peak_distance_mm']:.1f} mm AP {v['pr_auc']:.3f}"
                              for s, v in per.items() if v["peak_distance_mm"] is not None)
            print(f"  {method:<18}{cells}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

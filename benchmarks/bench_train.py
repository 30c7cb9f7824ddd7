"""Training benchmarks for ``deeplsm train`` (prints and writes JSON; not a test).

1. ``throughput``: training samples/s of the 3D ResNet10 (forward + backward + AdamW step) at
   the fast grid (3.3 mm) and the paper grid (1.667 mm), fp32 against bf16 autocast +
   channels_last_3d (layer4 kept in fp32, as the trainer does).
2. ``fit``: ``train_run`` with a preset on a synthetic 822-subject WMH cohort with 3 simulated
   scores (``deeplsm.synthetic`` + ``deeplsm.simulate``), multi- or single-output; wall time and
   test metrics; plus a voxelwise ridge baseline on the same split.

Usage::

    python benchmarks/bench_train.py throughput [--out FILE.json]
    python benchmarks/bench_train.py fit --mode multi --voxel-size 3.3 [--epochs N] [--mixup A]
        [--cohort CACHE.lesions.npz --scores scores.csv] [--run RUN] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from deeplsm._utils import package_versions


def _step_rate(shape, batch: int, bf16: bool, n_steps: int = 3) -> float:
    from deeplsm.models import TaskSpec, build_net
    from deeplsm.train._module import _keep_fp32, flush_denormal

    torch.manual_seed(0)
    net = build_net(TaskSpec(["s1", "s2", "s3"]))
    if bf16:
        net = net.to(memory_format=torch.channels_last_3d)
        _keep_fp32(net.backbone.layer4)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    x = (torch.rand(batch, 1, *shape) < 0.05).float()
    if bf16:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    y = torch.rand(batch, 3)

    def step():
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = net.logits(x)
        torch.nn.functional.mse_loss(torch.sigmoid(out.float()), y).backward()
        opt.step()

    with flush_denormal():
        step()  # warm-up (oneDNN primitive creation)
        t0 = time.perf_counter()
        for _ in range(n_steps):
            step()
        dt = time.perf_counter() - t0
    return batch * n_steps / dt


def throughput(args) -> dict:
    from deeplsm.cohort import PAPER_VOXEL_SIZE, mni_brain_grid

    res = {}
    for label, vs, batch in (("fast_3.3mm", 3.3, 16), ("paper_1.667mm", PAPER_VOXEL_SIZE, 4)):
        shape = mni_brain_grid(vs).shape
        r = {"shape": list(shape), "batch": batch}
        for mode, bf16 in (("fp32", False), ("bf16_channels_last", True)):
            r[f"{mode}_samples_per_s"] = round(_step_rate(shape, batch, bf16), 2)
            print(label, mode, r[f"{mode}_samples_per_s"], flush=True)
        res[label] = r
    return res


def _ridge_baseline(cohort, scores, split) -> dict:
    from sklearn.linear_model import RidgeCV

    from deeplsm.evaluate import regression_metrics

    x = cohort.data.reshape(cohort.n_subjects, -1).astype(np.float32)
    tr = np.array([split[s] in ("train", "val") for s in cohort.subject_ids])
    te = np.array([split[s] == "test" for s in cohort.subject_ids])
    t0 = time.perf_counter()
    out = {}
    for name in scores.columns:
        y = scores.loc[cohort.subject_ids, name].to_numpy()
        model = RidgeCV(alphas=np.logspace(-1, 3, 9)).fit(x[tr], y[tr])
        out[name] = regression_metrics(y[te], model.predict(x[te]))["r2_pearson"]
    out["seconds"] = round(time.perf_counter() - t0, 2)
    return out


def fit(args) -> dict:
    from deeplsm.cohort import LesionCohort, load_scores
    from deeplsm.train import load_trained, train_run

    if args.cohort:
        cohort = LesionCohort.load(args.cohort)
        scores = load_scores(args.scores, cohort.subject_ids)
    else:
        from deeplsm.simulate import simulate
        from deeplsm.synthetic import make_wmh_cohort

        cohort = make_wmh_cohort(args.n, voxel_size=args.voxel_size, random_state=args.seed, verbose=False)
        sim = simulate(cohort, roi_size_mm=8 / 0.6, random_state=args.seed)
        import pandas as pd

        scores = pd.DataFrame(sim.scores, columns=sim.score_names, index=cohort.subject_ids)
    run = Path(args.run)
    if run.exists():
        shutil.rmtree(run)
    overrides = {"max_epochs": args.epochs, "mixup_alpha": args.mixup, "precision": args.precision,
                 "channels_last": True if args.precision == "bf16-mixed" else None}
    t0 = time.perf_counter()
    train_run(run, cohort, scores, mode=args.mode, preset=args.preset, seed=args.seed,
              overrides=overrides, verbose=False)
    wall = time.perf_counter() - t0
    metrics = json.loads((run / "metrics.json").read_text())
    split = load_trained(run).split
    res = {
        "mode": args.mode, "preset": args.preset, "n_subjects": cohort.n_subjects,
        "grid_shape": list(cohort.shape), "voxel_size_mm": round(cohort.voxel_size[0], 3),
        "nonzero_fraction": {c: round(float((scores[c] > 0).mean()), 3) for c in scores.columns},
        "wall_seconds": round(wall, 1),
        "fit": metrics["training"],
        "test_r2_pearson": {k: v["r2_pearson"] for k, v in metrics["test"].items()},
        "test_r2_score": {k: v["r2_score"] for k, v in metrics["test"].items()},
        "test_mse": {k: v["mse"] for k, v in metrics["test"].items()},
        "val_r2_pearson": {k: v["r2_pearson"] for k, v in metrics["val"].items()},
        "ridge_baseline_test_r2": _ridge_baseline(cohort, scores, split),
        "overrides": {k: v for k, v in overrides.items() if v is not None},
    }
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="what", required=True)
    t = sub.add_parser("throughput")
    f = sub.add_parser("fit")
    f.add_argument("--mode", choices=("multi", "single"), default="multi")
    f.add_argument("--preset", default="fast")
    f.add_argument("--n", type=int, default=822)
    f.add_argument("--voxel-size", type=float, default=3.3)
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--epochs", type=int, default=None)
    f.add_argument("--mixup", type=float, default=None)
    f.add_argument("--precision", default=None)
    f.add_argument("--cohort", default=None, help="cached cohort (.lesions.npz) instead of generating")
    f.add_argument("--scores", default=None)
    f.add_argument("--run", default="bench_run")
    for p in (t, f):
        p.add_argument("--out", default=None)
        p.add_argument("--threads", type=int, default=None,
                       help="torch threads; 1 was ~3x faster than 2 while other jobs held both cores")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("CI", "1")  # no progress bars in benchmark logs
    res = throughput(args) if args.what == "throughput" else fit(args)
    res["machine"] = {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                      "load_avg_at_end": list(os.getloadavg())}
    res["versions"] = package_versions()
    print(json.dumps(res, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Ridge LSM and SVR-LSM on the demo's cohort and split, with the variants left out measured beside.

Run from the repository root::

    python benchmarks/bench_ridge.py --study /tmp/demo_classical --out benchmarks/results/ridge.json

1. Runs ``deeplsm.study.run_study`` with the demo configuration and ``models.modes = []`` into
   ``--study`` (cached: a rerun reuses it), so only the cohort and the classical stages cost time.
   Ridge and SVR-LSM are fitted on the CNN's train + validation subjects and predict its test
   subjects exactly as in ``deeplsm demo``; their numbers are read from that study's
   ``metrics.json`` (prediction: MSE, r², R²; localisation: average precision, PR-AUC).
2. On the same subjects: ridge with DTLVC, an elastic net (scikit-learn ``ElasticNetCV``, 5-fold,
   l1_ratio in 0.2/0.5/0.8/1.0), each with fit time, test r²/R² and the average precision of the
   positive part of its coefficient map; and the time of ridge with 1000 permutations.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from deeplsm._utils import package_versions
from deeplsm.classical import RidgeLSM, voxel_mask
from deeplsm.evaluate import evaluate_map, regression_metrics
from deeplsm.explain import normalise_map
from deeplsm.study import Study, demo_config, run_study


def _loc(cohort, beta_flat, labels, k) -> dict:
    img = cohort.to_img(normalise_map(beta_flat.reshape(cohort.shape), positive=True), np.float32)
    roi = nib.Nifti1Image((labels == k).astype(np.uint8), cohort.affine)
    m = evaluate_map(img, roi)
    return {"average_precision": m["average_precision"], "pr_auc": m["pr_auc"]}


def _pred(y_true, y_pred) -> dict:
    m = regression_metrics(y_true, y_pred)
    return {"r2_pearson": m["r2_pearson"], "r2": m["r2_score"], "mse": m["mse"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--study", default="/tmp/deeplsm-bench-ridge", help="study folder (cached)")
    ap.add_argument("--out", default="benchmarks/results/ridge.json")
    ap.add_argument("--no-enet", action="store_true", help="skip the elastic net")
    ap.add_argument("--noise", type=float, default=0.0, help="scores.noise (x each score's SD; default 0)")
    args = ap.parse_args()

    cfg = demo_config()
    cfg["models"]["modes"] = []
    cfg["classical"]["methods"] = ["vlsm", "svr", "ridge"]
    cfg["scores"]["noise"] = args.noise
    t0 = time.perf_counter()
    metrics = run_study(cfg, args.study, verbose=False)
    study_s = time.perf_counter() - t0
    study = Study(cfg, args.study, verbose=False)
    cohort = study.load_cohort()
    scores = pd.read_csv(Path(args.study) / "simulation" / "scores.csv", index_col=0).loc[cohort.subject_ids]
    labels = np.asarray(nib.load(Path(args.study) / "simulation" / "rois.nii.gz").dataobj)
    split = study.split(cohort)
    test = np.array([split[s] == "test" for s in cohort.subject_ids])
    tv_ids = [s for s in cohort.subject_ids if split[s] != "test"]
    train, held = cohort.subset(tv_ids), cohort.subset([s for s in cohort.subject_ids if split[s] == "test"])
    data = train.data.reshape(train.n_subjects, -1)
    mask, _ = voxel_mask(data, cfg["classical"]["min_subjects"])
    result: dict = {"noise": args.noise, "study_seconds": round(study_s, 2),
                    "timings_s": metrics["timings_s"],
                    "n_train_val": train.n_subjects, "n_test": held.n_subjects,
                    "n_tested_voxels": int(mask.sum()), "study": {}, "variants": {},
                    "load_average": os.getloadavg(), "versions": package_versions()}
    for method in ("ridge", "svr", "vlsm"):
        for name in scores.columns:
            entry = {"localization": {key: metrics["localization"][method][name][key]
                                      for key in ("average_precision", "pr_auc")}}
            if method in metrics["prediction"]:
                p = metrics["prediction"][method][name]
                entry["prediction"] = {"r2_pearson": p["r2_pearson"], "r2": p["r2"], "mse": p["mse"]}
            result["study"].setdefault(method, {})[name] = entry
    summary = json.loads((Path(args.study) / "classical" / "ridge" / "summary.json").read_text())
    result["ridge_penalty"] = {n: {"penalty": o["penalty"], "relative": o["penalty"] / o["penalty_scale"],
                                   "at_edge": o["penalty_at_edge"]} for n, o in summary["outputs"].items()}

    X_tv = data[:, mask].astype(np.float64)
    X_te = held.data.reshape(held.n_subjects, -1)[:, mask].astype(np.float64)
    for k, name in enumerate(scores.columns, start=1):
        y = scores[name].to_numpy()
        y_tv, y_te = y[~test], y[test]
        row = {}
        for vc in ("none", "dtlvc"):
            t = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m = RidgeLSM(volume_correction=vc, n_permutations=0).fit(train, y_tv)
            secs = time.perf_counter() - t
            row[f"ridge_{vc}"] = {"seconds": round(secs, 2), **_pred(y_te, m.predict(held)),
                                  **_loc(cohort, m.beta_.ravel(), labels, k)}
        t = time.perf_counter()
        RidgeLSM(n_permutations=1000, random_state=0).fit(train, y_tv)
        row["ridge_none_1000_permutations_seconds"] = round(time.perf_counter() - t, 2)
        if not args.no_enet:
            from sklearn.linear_model import ElasticNetCV

            t = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                enet = ElasticNetCV(l1_ratio=[0.2, 0.5, 0.8, 1.0], alphas=20, cv=5, max_iter=5000,
                                    n_jobs=1, random_state=0).fit(X_tv, y_tv)
            secs = time.perf_counter() - t
            beta = np.zeros(mask.size)
            beta[mask] = enet.coef_
            row["elastic_net"] = {"seconds": round(secs, 2), "alpha": float(enet.alpha_),
                                  "l1_ratio": float(enet.l1_ratio_),
                                  "n_nonzero": int((enet.coef_ != 0).sum()),
                                  **_pred(y_te, enet.predict(X_te)), **_loc(cohort, beta, labels, k)}
        result["variants"][name] = row
        print(name, json.dumps(row, indent=1))
    print("study:", json.dumps(result["study"], indent=1))
    print("ridge penalty:", result["ridge_penalty"])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}; study {study_s:.1f} s; load average {os.getloadavg()}")


if __name__ == "__main__":
    main()

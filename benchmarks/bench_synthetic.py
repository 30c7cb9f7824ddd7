"""Synthetic WMH cohort: generation time, peak memory and burden distribution.

Usage: python benchmarks/bench_synthetic.py [--n 822] [--voxel-size 1.6667] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np

from deeplsm._utils import package_versions
from deeplsm.cohort import PAPER_VOXEL_SIZE, mni_brain_grid
from deeplsm.synthetic import make_wmh_cohort, wmh_priors


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=822)
    ap.add_argument("--voxel-size", type=float, default=PAPER_VOXEL_SIZE)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    grid = mni_brain_grid(args.voxel_size)
    t0 = time.perf_counter()
    wmh_priors(grid)
    t_priors = time.perf_counter() - t0
    t0 = time.perf_counter()
    cohort = make_wmh_cohort(args.n, grid=grid, random_state=args.seed, verbose=False)
    t_gen = time.perf_counter() - t0
    vol = cohort.lesion_volumes_ml()
    q1, med, q3 = np.percentile(vol, [25, 50, 75])
    res = {
        "n_subjects": args.n, "grid_shape": list(grid.shape), "voxel_size_mm": args.voxel_size,
        "priors_s": round(t_priors, 2), "generate_s": round(t_gen, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "burden_ml": {"median": round(med, 2), "q1": round(q1, 2), "q3": round(q3, 2),
                      "max": round(float(vol.max()), 1),
                      "frac_under_2ml": round(float((vol < 2).mean()), 3),
                      "frac_over_50ml": round(float((vol > 50).mean()), 3)},
        "versions": package_versions(),
    }
    print(json.dumps(res, indent=2))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(res, fh, indent=2)


if __name__ == "__main__":
    main()

"""Benchmark: cluster tables (deeplsm.evaluate.cluster_table) against nilearn's get_clusters_table.

Run from the repository root, for example::

    PYTHONPATH=src python benchmarks/bench_clusters.py --out benchmarks/results/clusters.json

The maps are smoothed Gaussian noise (sigma 2 voxels), LAS, normalised to a maximum |value| of
1: stand-ins for speckled attribution maps. Cases: the 1 mm MNI box (181x217x181) with our
defaults (clusters above half the maximum, at least 100 mm³), and the 2 mm box (91x109x91) with
every cluster above half the maximum (no size limit; nilearn's per-cluster passes over the whole
image make this case slow at 1 mm). Each is run beside nilearn's get_clusters_table on the same
map, threshold and size limit; both must give the same peaks. Times are wall-clock seconds of
one call.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from deeplsm._utils import package_versions
from deeplsm.evaluate import cluster_table


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    from nilearn.reporting import get_clusters_table

    results = {"cases": {}, "load_average": os.getloadavg(), "platform": platform.platform(),
               "versions": package_versions()}
    for name, mm, shape, min_mm3 in (("1 mm, >= 100 mm3", 1.0, (181, 217, 181), 100.0),
                                     ("2 mm, every cluster", 2.0, (91, 109, 91), 0.0)):
        rng = np.random.default_rng(args.seed)
        d = ndimage.gaussian_filter(rng.normal(size=shape).astype(np.float32), 2.0)
        d /= np.abs(d).max()
        aff = np.diag([-mm, mm, mm, 1.0])
        aff[:3, 3] = [90, -126, -72]
        img = nib.Nifti1Image(d, aff)
        ours, t_ours = _timed(lambda i=img, m=min_mm3: cluster_table(i, threshold=0.5,
                                                                    min_volume_mm3=m))
        k = int(np.ceil(min_mm3 / mm**3))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            ref, t_ref = _timed(lambda i=img, k=k: get_clusters_table(
                i, 0.5, cluster_threshold=k, two_sided=True))
        same = (len(ours) == len(ref) and np.allclose(
            ours[["x_mm", "y_mm", "z_mm", "peak_value"]].to_numpy(),
            ref[["X", "Y", "Z", "Peak Stat"]].to_numpy(dtype=float), atol=1e-5))
        results["cases"][name] = {"clusters": int((ours["peak"] == 0).sum()), "rows": len(ours),
                                  "deeplsm_s": round(t_ours, 2), "nilearn_s": round(t_ref, 2),
                                  "same_peaks": bool(same)}
        print(f"{name}: {results['cases'][name]}", flush=True)
    results["load_average_after"] = os.getloadavg()
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return results


if __name__ == "__main__":
    main()

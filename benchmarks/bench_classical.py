"""Benchmarks of the classical baselines (VLSM and SVR-LSM), with nilearn side by side.

Run from the repository root::

    PYTHONPATH=src python benchmarks/bench_classical.py --out benchmarks/results/classical.json

It prints each figure and writes them all to a JSON file. Cases:

1. VLSM pooled t + 1000 max-T permutations at N=800 on the paper grid (about 100k tested voxels),
   against nilearn ``permuted_ols`` on the same problem (its per-permutation cost is measured with
   ``--nilearn-perms`` permutations and extrapolated to 1000 unless ``--nilearn-perms 1000``).
2. SVR-LSM with 1000 permutations on the same cohort.
3. The 131 real LESYMAP masks at 1 mm (when ``../shared`` exists): Brunner–Munzel alone, and with
   1000 permutations.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from deeplsm._utils import package_versions
from deeplsm.classical import SVRLSM, MassUnivariateLSM
from deeplsm.cohort import LesionCohort, load_lesions, mni_brain_grid
from deeplsm.cohort._grid import PAPER_VOXEL_SIZE

ROOT = Path(__file__).resolve().parents[1]
LESYMAP = ROOT / ".." / "shared" / "data" / "lesymap-lesions"


def synthetic_cohort(n: int, seed: int = 0, spheres: int = 2, radius=(4, 10)) -> LesionCohort:
    """Random unions of spheres inside the MNI brain mask on the paper grid (1.667 mm)."""
    from nilearn.datasets import load_mni152_brain_mask
    from nilearn.image import resample_img

    rng = np.random.default_rng(seed)
    grid = mni_brain_grid(PAPER_VOXEL_SIZE)
    brain = resample_img(load_mni152_brain_mask(resolution=1), target_affine=grid.affine,
                         target_shape=grid.shape, interpolation="nearest", force_resample=True,
                         copy_header=True)
    brain = np.asarray(brain.dataobj) > 0
    centres = np.argwhere(brain)
    # keep lesions in one hemisphere's middle band, as stroke cohorts do (more overlap)
    rel = centres / np.asarray(grid.shape)
    centres = centres[(rel[:, 0] < 0.5) & (rel[:, 1] > 0.25) & (rel[:, 1] < 0.75) & (rel[:, 2] > 0.3)
                      & (rel[:, 2] < 0.8)]
    data = np.zeros((n, *grid.shape), np.uint8)
    ii, jj, kk = np.ogrid[:grid.shape[0], :grid.shape[1], :grid.shape[2]]
    for s in range(n):
        for c in centres[rng.integers(0, len(centres), size=spheres)]:
            r = rng.uniform(*radius)
            lo = np.maximum(c - int(r) - 1, 0)
            hi = np.minimum(c + int(r) + 2, grid.shape)
            sl = tuple(slice(a, b) for a, b in zip(lo, hi))
            d2 = (ii[sl[0]] - c[0]) ** 2 + (jj[:, sl[1]] - c[1]) ** 2 + (kk[:, :, sl[2]] - c[2]) ** 2
            data[(s, *sl)] |= (d2 <= r * r) & brain[sl]
    return LesionCohort([f"sub-{i:04d}" for i in range(n)], data, grid.affine)


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def bench_vlsm(cohort, y, nilearn_perms: int, res: dict) -> None:
    from nilearn.mass_univariate import permuted_ols

    est, t_ours = timed(lambda: MassUnivariateLSM(test="t", n_permutations=1000, min_subjects=10,
                                                   random_state=0).fit(cohort, y))
    n_vox = est.n_tested_
    print(f"[vlsm] N={cohort.n_subjects} V={n_vox} tested voxels ({est.n_patterns_} patterns): "
          f"t + 1000 max-T permutations in {t_ours:.2f} s")
    _, t_ours_nl = timed(lambda: MassUnivariateLSM(test="t", n_permutations=nilearn_perms,
                                                    min_subjects=10, random_state=0).fit(cohort, y))
    X = cohort.data.reshape(cohort.n_subjects, -1)[:, est.mask_.ravel()].astype(np.float64)
    out0, t_nl0 = timed(lambda: permuted_ols(y[:, None], X, model_intercept=True, n_perm=0,
                                             verbose=0, n_jobs=1))
    _, t_nl = timed(lambda: permuted_ols(y[:, None], X, model_intercept=True, n_perm=nilearn_perms,
                                         two_sided_test=True, random_state=0, verbose=0, n_jobs=1))
    per_perm = max(t_nl - t_nl0, 0.0) / nilearn_perms
    nl_1000 = t_nl0 + 1000 * per_perm
    diff = float(np.abs(out0["t"][0] - est.statistic_[est.mask_]).max())
    print(f"[vlsm] nilearn permuted_ols: {nilearn_perms} perms in {t_nl:.2f} s (ours {t_ours_nl:.2f} s, "
          f"ratio {t_nl / t_ours_nl:.1f}x); per permutation {per_perm * 1000:.1f} ms -> 1000 perms "
          f"{'measured' if nilearn_perms == 1000 else 'extrapolated'} {nl_1000:.1f} s, "
          f"ratio {nl_1000 / t_ours:.1f}x; max |t diff| {diff:.2e}")
    res["vlsm_t"] = {"n_subjects": cohort.n_subjects, "n_voxels": n_vox, "n_patterns": est.n_patterns_,
                     "grid": list(cohort.shape), "seconds_1000_perms": t_ours,
                     "nilearn_perms": nilearn_perms, "seconds_ours_at_nilearn_perms": t_ours_nl,
                     "seconds_nilearn_at_nilearn_perms": t_nl, "seconds_nilearn_no_perms": t_nl0,
                     "seconds_nilearn_1000_perms": nl_1000,
                     "nilearn_1000_extrapolated": nilearn_perms != 1000,
                     "ratio_same_perms": t_nl / t_ours_nl, "ratio_1000_perms": nl_1000 / t_ours,
                     "max_abs_t_diff_vs_nilearn": diff}


def bench_svr(cohort, y, res: dict) -> None:
    est, t_fit = timed(lambda: SVRLSM(n_permutations=0).fit(cohort, y))
    est, t = timed(lambda: SVRLSM(n_permutations=1000, random_state=0).fit(cohort, y))
    print(f"[svr] N={cohort.n_subjects} V={est.n_tested_}: one fit {t_fit:.2f} s; "
          f"fit + 1000 permutations {t:.2f} s ({est.n_support_} support vectors)")
    res["svr"] = {"n_subjects": cohort.n_subjects, "n_voxels": est.n_tested_, "seconds_fit": t_fit,
                  "seconds_1000_perms": t, "n_support_vectors": est.n_support_}


def bench_lesymap(cache: Path, res: dict) -> None:
    if not LESYMAP.is_dir():
        print("[lesymap] ../shared/data/lesymap-lesions not found; skipped")
        return
    cache_file = cache / "lesymap_1mm.lesions.npz"
    if cache_file.exists():
        cohort, t_load = timed(lambda: LesionCohort.load(cache_file))
    else:
        cohort, t_load = timed(lambda: load_lesions(LESYMAP, verbose=False))
        cache.mkdir(parents=True, exist_ok=True)
        cohort.save(cache_file)
    rng = np.random.default_rng(0)
    y = rng.normal(size=cohort.n_subjects)  # untied, like most continuous scores
    kw = dict(test="bm", min_subjects=0.1, random_state=0)
    _, t0 = timed(lambda: MassUnivariateLSM(n_permutations=0, correction="fdr", **kw).fit(cohort, y))
    _, t0_np = timed(lambda: MassUnivariateLSM(n_permutations=0, correction="fdr",
                                               compress_patches=False, **kw).fit(cohort, y))
    est, t = timed(lambda: MassUnivariateLSM(n_permutations=1000, **kw).fit(cohort, y))
    y_tied = np.round(y, 1)  # tied scores take the general (slower) path
    _, t_tied = timed(lambda: MassUnivariateLSM(n_permutations=100, **kw).fit(cohort, y_tied))
    print(f"[lesymap] {cohort.n_subjects} real masks, 1 mm {cohort.shape}, loaded in {t_load:.1f} s; "
          f">=10% ({est.n_min_subjects_} subjects): {est.n_tested_} voxels, {est.n_patterns_} patterns")
    print(f"[lesymap] BM test alone {t0:.2f} s ({t0_np:.2f} s without patches); "
          f"BM + 1000 permutations {t:.1f} s; tied scores, 100 permutations {t_tied:.1f} s")
    res["lesymap_bm"] = {"n_subjects": cohort.n_subjects, "n_voxels": est.n_tested_,
                         "n_patterns": est.n_patterns_, "min_subjects": est.n_min_subjects_,
                         "seconds_load": t_load, "seconds_test_only": t0,
                         "seconds_test_only_no_patches": t0_np, "seconds_1000_perms": t,
                         "seconds_100_perms_tied_scores": t_tied}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=800)
    ap.add_argument("--nilearn-perms", type=int, default=100)
    ap.add_argument("--skip", nargs="*", default=[], choices=("vlsm", "svr", "lesymap"))
    ap.add_argument("--cache", type=Path, default=Path("/tmp/deeplsm-bench-cache"))
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "classical.json")
    args = ap.parse_args()
    res = {"machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                       "processor": platform.processor(),
                       "load_average_at_start": list(os.getloadavg())},
           "versions": package_versions()}
    if {"vlsm", "svr"} - set(args.skip):
        cohort, t = timed(lambda: synthetic_cohort(args.n))
        rng = np.random.default_rng(1)
        flat = cohort.data.reshape(cohort.n_subjects, -1)
        roi = flat[:, np.argsort(cohort.frequency_map().ravel())[-200:]]  # most-lesioned voxels
        y = 100 - 40 * roi.mean(axis=1) + rng.normal(0, 5, cohort.n_subjects)
        print(f"[data] synthetic cohort N={cohort.n_subjects} on {cohort.shape} in {t:.1f} s")
        if "vlsm" not in args.skip:
            bench_vlsm(cohort, y, args.nilearn_perms, res)
        if "svr" not in args.skip:
            bench_svr(cohort, y, res)
        del cohort, flat
    if "lesymap" not in args.skip:
        bench_lesymap(args.cache, res)
    res["machine"]["load_average_at_end"] = list(os.getloadavg())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

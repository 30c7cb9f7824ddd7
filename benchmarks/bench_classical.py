"""Benchmarks of the classical baselines (VLSM and SVR-LSM), with nilearn side by side.

Run from the repository root::

    PYTHONPATH=src python benchmarks/bench_classical.py --out benchmarks/results/classical.json

It prints each figure and writes them all to a JSON file. Cases:

1. VLSM pooled t + max-T permutations at N=800 on the paper grid (about 100k tested voxels),
   against nilearn ``permuted_ols`` on the same problem with the same number of permutations
   (``--perms``, default 1000), timed side by side in one run, alternating ours and nilearn
   ``--repeats`` times. Nothing is extrapolated: the ratio is nilearn's measured time over ours.
2. SVR-LSM with 1000 permutations on the same cohort.
3. The 131 real LESYMAP masks at 1 mm (when ``../shared`` exists): Brunner–Munzel alone, and with
   1000 permutations.

Every case records the date, the commit and the machine load (``os.getloadavg()``) before and
after each timing: on a shared machine a ratio is only as good as the load it was taken at.
With ``--skip``, the cases skipped keep their entries from an earlier ``--out`` file (each with
its own provenance).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
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


def load() -> list[float]:
    """1-, 5- and 15-minute load averages, rounded."""
    return [round(x, 2) for x in os.getloadavg()]


def provenance() -> dict:
    """When, on which commit and at which load a case was measured."""
    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                                  check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None

    status = git("status", "--porcelain", "--untracked-files=no")
    return {"date_utc": datetime.now(UTC).isoformat(timespec="seconds"), "commit": git("rev-parse", "HEAD"),
            "uncommitted_changes": bool(status) if status is not None else None,
            "load_average": load(), "cpu_count": os.cpu_count()}


def timed_with_load(fn):
    before = load()
    out, seconds = timed(fn)
    return out, {"seconds": round(seconds, 3), "load_before": before, "load_after": load()}


def bench_vlsm(cohort, y, perms: int, repeats: int, res: dict) -> None:
    from nilearn.mass_univariate import permuted_ols

    start = provenance()
    X = None
    ours, theirs = [], []
    est = None
    for r in range(repeats):  # alternate, so that a change of load hits both sides alike
        est, t = timed_with_load(lambda r=r: MassUnivariateLSM(
            test="t", n_permutations=perms, min_subjects=10, random_state=r).fit(cohort, y))
        ours.append(t)
        print(f"[vlsm] ours: t + {perms} max-T permutations in {t['seconds']:.2f} s "
              f"(load {t['load_before'][0]:.1f} -> {t['load_after'][0]:.1f})")
        if X is None:
            X = cohort.data.reshape(cohort.n_subjects, -1)[:, est.mask_.ravel()].astype(np.float64)
        out, t = timed_with_load(lambda r=r, X=X: permuted_ols(
            y[:, None], X, model_intercept=True, n_perm=perms, two_sided_test=True, random_state=r,
            verbose=0, n_jobs=1))
        theirs.append(t)
        print(f"[vlsm] nilearn permuted_ols: {perms} permutations in {t['seconds']:.2f} s "
              f"(load {t['load_before'][0]:.1f} -> {t['load_after'][0]:.1f})")
    diff = float(np.abs(out["t"][0] - est.statistic_[est.mask_]).max())
    med_ours = float(np.median([t["seconds"] for t in ours]))
    med_theirs = float(np.median([t["seconds"] for t in theirs]))
    ratio = med_theirs / med_ours
    print(f"[vlsm] N={cohort.n_subjects}, {est.n_tested_} tested voxels ({est.n_patterns_} patterns), "
          f"{perms} permutations each: ours {med_ours:.2f} s, nilearn {med_theirs:.2f} s -> "
          f"{ratio:.1f}x (median of {repeats}); max |t diff| {diff:.2e}")
    res["vlsm_t"] = {"n_subjects": cohort.n_subjects, "n_voxels": est.n_tested_,
                     "n_patterns": est.n_patterns_, "grid": list(cohort.shape),
                     "permutations": perms, "repeats": repeats, "ours": ours, "nilearn": theirs,
                     "seconds_ours_median": med_ours, "seconds_nilearn_median": med_theirs,
                     "ratio_nilearn_over_ours": ratio, "extrapolated": False,
                     "nilearn_n_jobs": 1, "max_abs_t_diff_vs_nilearn": diff,
                     "provenance": start, "load_average_at_end": load()}


def bench_svr(cohort, y, res: dict) -> None:
    start = provenance()
    est, t_fit = timed(lambda: SVRLSM(n_permutations=0).fit(cohort, y))
    est, t = timed(lambda: SVRLSM(n_permutations=1000, random_state=0).fit(cohort, y))
    print(f"[svr] N={cohort.n_subjects} V={est.n_tested_}: one fit {t_fit:.2f} s; "
          f"fit + 1000 permutations {t:.2f} s ({est.n_support_} support vectors)")
    res["svr"] = {"n_subjects": cohort.n_subjects, "n_voxels": est.n_tested_, "seconds_fit": t_fit,
                  "seconds_1000_perms": t, "n_support_vectors": est.n_support_,
                  "provenance": start, "load_average_at_end": load()}


def bench_lesymap(cache: Path, res: dict) -> None:
    if not LESYMAP.is_dir():
        print("[lesymap] ../shared/data/lesymap-lesions not found; skipped")
        return
    start = provenance()
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
                         "seconds_100_perms_tied_scores": t_tied,
                         "provenance": start, "load_average_at_end": load()}


CASES = ("vlsm_t", "svr", "lesymap_bm")


def earlier_results(path: Path) -> dict:
    """Cases of an earlier results file, each carrying its own provenance."""
    if not path.exists():
        return {}
    old = json.loads(path.read_text())
    out = {}
    for case in CASES:
        if case in old:
            entry = dict(old[case])
            entry.setdefault("provenance", {"note": "measured before per-case provenance was recorded",
                                            "machine": old.get("machine")})
            entry["kept_from_an_earlier_run"] = True
            out[case] = entry
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=800, help="synthetic subjects (default 800)")
    ap.add_argument("--perms", type=int, default=1000,
                    help="permutations for both sides of the VLSM/nilearn ratio (default 1000)")
    ap.add_argument("--repeats", type=int, default=1,
                    help="timings of each side, alternating (default 1; the median is reported)")
    ap.add_argument("--skip", nargs="*", default=[], choices=("vlsm", "svr", "lesymap"))
    ap.add_argument("--cache", type=Path, default=Path("/tmp/deeplsm-bench-cache"))
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "classical.json")
    args = ap.parse_args()
    if args.perms < 1 or args.repeats < 1:
        ap.error("--perms and --repeats must be at least 1")
    kept = earlier_results(args.out)
    res = {"command": " ".join(["python", *sys.argv]),
           "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                       "processor": platform.processor(), "load_average_at_start": load()},
           "provenance": provenance(), "versions": package_versions()}
    try:
        from threadpoolctl import threadpool_info

        res["machine"]["blas_threads"] = sorted({i.get("num_threads") for i in threadpool_info()})
    except ImportError:
        pass
    if {"vlsm", "svr"} - set(args.skip):
        cohort, t = timed(lambda: synthetic_cohort(args.n))
        rng = np.random.default_rng(1)
        flat = cohort.data.reshape(cohort.n_subjects, -1)
        roi = flat[:, np.argsort(cohort.frequency_map().ravel())[-200:]]  # most-lesioned voxels
        y = 100 - 40 * roi.mean(axis=1) + rng.normal(0, 5, cohort.n_subjects)
        print(f"[data] synthetic cohort N={cohort.n_subjects} on {cohort.shape} in {t:.1f} s")
        if "vlsm" not in args.skip:
            bench_vlsm(cohort, y, args.perms, args.repeats, res)
        if "svr" not in args.skip:
            bench_svr(cohort, y, res)
        del cohort, flat
    if "lesymap" not in args.skip:
        bench_lesymap(args.cache, res)
    for case, entry in kept.items():
        res.setdefault(case, entry)
    res["machine"]["load_average_at_end"] = load()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""``deeplsm synth``: write a synthetic WMH cohort folder."""

from __future__ import annotations

import argparse
import time

from deeplsm.cli._common import positive_float, positive_int, seed_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="generate a synthetic WMH lesion cohort (BIDS-like folder)",
                       description="Write sub-XXXX_lesion.nii.gz files and participants.tsv.")
    p.add_argument("--n", type=positive_int, default=822, help="number of subjects (default 822)")
    p.add_argument("--voxel-size", type=positive_float, default=None, metavar="MM",
                   help="isotropic voxel size in mm of the MNI brain-box grid (default: the "
                   "paper's 1.667 mm)")
    p.add_argument("--seed", type=seed_int, default=0, help="random seed (default 0)")
    p.add_argument("--out", required=True, help="output folder: new, empty, or earlier deeplsm output "
                   "with --overwrite (written atomically)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace earlier deeplsm output in the folder (only deeplsm's own files)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from deeplsm._outputs import prepare_output
    from deeplsm.synthetic import make_wmh_cohort, write_cohort_folder

    out = prepare_output(args.out, overwrite=args.overwrite)
    t0 = time.perf_counter()
    cohort = make_wmh_cohort(args.n, voxel_size=args.voxel_size, random_state=args.seed,
                             verbose=not args.quiet)
    t1 = time.perf_counter()
    write_cohort_folder(cohort, out, verbose=not args.quiet)
    vol = cohort.lesion_volumes_ml()
    q1, med, q3 = np.percentile(vol, [25, 50, 75])
    print(f"deeplsm synth: {cohort.n_subjects} subjects on {cohort.shape} at "
          f"{cohort.voxel_size[0]:.3g} mm -> {args.out}\n"
          f"  lesion volume mL: median {med:.2f}, IQR {q1:.2f}-{q3:.2f}, max {vol.max():.1f}\n"
          f"  generated in {t1 - t0:.1f} s, written in {time.perf_counter() - t1:.1f} s")
    return 0

"""``deeplsm simulate``: cubic ROIs where lesions are common, and scores from their overlap."""

from __future__ import annotations

import argparse
from pathlib import Path

from deeplsm.cli._common import (
    add_lesion_options,
    finite_float,
    nonnegative_float,
    open_unit_float,
    positive_float,
    positive_int,
    seed_int,
)

#: ``deeplsm.simulate.SCENARIOS``, spelled out so ``--help`` stays fast (a test keeps them equal).
SCENARIOS = ("linear", "mixture", "and", "or", "threshold", "tract")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulate", help="pick ground-truth ROIs and simulate scores (paper §2.2.1)",
                       description="Writes DIR/scores.csv, DIR/rois.nii.gz, DIR/simulation.json.")
    add_lesion_options(p)
    g = p.add_argument_group("simulation")
    g.add_argument("--scenario", choices=SCENARIOS, default="linear",
                   help="how a score follows from damage: linear (the paper: lesioned fraction of "
                   "one ROI), mixture (weighted sum of 2-3 ROIs), and (minimum of an ROI pair's "
                   "fractions), or (maximum), threshold (steep sigmoid of the fraction), tract "
                   "(share of a thin tube's fibres cut); default linear")
    g.add_argument("--n-rois", type=positive_int, default=3,
                   help="number of scores: ROIs for linear/mixture/threshold, ROI pairs for "
                   "and/or/tract (default 3)")
    size = g.add_mutually_exclusive_group()
    size.add_argument("--roi-size", type=positive_int, default=None,
                      help="cube side in voxels of the analysis grid (default 8, the paper's)")
    size.add_argument("--roi-size-mm", type=positive_float, default=None,
                      help="cube side in mm (rounded to whole voxels)")
    g.add_argument("--min-patients", type=positive_int, default=10,
                   help="every ROI voxel must be lesioned in at least this many subjects (default 10)")
    g.add_argument("--noise", type=nonnegative_float, default=0.0,
                   help="Gaussian noise SD as a fraction of each score's SD (default 0)")
    g.add_argument("--weights", default=None, metavar="FILE",
                   help="CSV/whitespace matrix (n_scores x n_rois): each score mixes ROIs")
    g.add_argument("--volume-weight", type=finite_float, default=0.0,
                   help="lesion-volume confound in score-SD units per SD of log volume (default 0)")
    g.add_argument("--no-clip", action="store_true", help="do not clip scores to [0, 1]")
    g.add_argument("--critical-mass", type=open_unit_float, default=None, metavar="F",
                   help="threshold scenario: lesioned fraction at the sigmoid's midpoint (default 0.25)")
    g.add_argument("--steepness", type=positive_float, default=None,
                   help="threshold scenario: sigmoid slope per unit of fraction (default 20)")
    g.add_argument("--tract-radius-mm", type=positive_float, default=None, metavar="MM",
                   help="tract scenario: tube radius (default half the ROI side)")
    p.add_argument("--seed", type=seed_int, default=0, help="random seed (default 0)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--overwrite", action="store_true",
                   help="replace earlier deeplsm output in the folder (only deeplsm's own files)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from deeplsm._outputs import prepare_output
    from deeplsm._utils import atomic_path, package_versions, write_json
    from deeplsm.cli._common import absolute_inputs, load_lesions_from_args
    from deeplsm.cohort import write_scores
    from deeplsm.exceptions import DeepLSMError
    from deeplsm.simulate import simulate

    inputs = absolute_inputs(args, "lesions", "weights")
    out = prepare_output(args.out, inputs=inputs, overwrite=args.overwrite)
    weights = None
    if args.weights:
        wpath = Path(args.weights)
        if not wpath.exists():
            raise DeepLSMError(f"weights file does not exist: {wpath}")
        try:
            weights = np.loadtxt(wpath, delimiter="," if wpath.suffix == ".csv" else None, ndmin=2)
        except ValueError as err:
            raise DeepLSMError(f"{wpath}: cannot read a numeric matrix ({err})") from None
    threshold = {k: v for k, v in (("threshold_at", args.critical_mass),
                                   ("threshold_steepness", args.steepness)) if v is not None}
    cohort = load_lesions_from_args(args, verbose=not args.quiet)
    sim = simulate(cohort, scenario=args.scenario, n_rois=args.n_rois,
                   roi_size=args.roi_size or 8,
                   roi_size_mm=args.roi_size_mm, min_patients=args.min_patients,
                   weights=weights, noise=args.noise, volume_weight=args.volume_weight,
                   clip=not args.no_clip, tract_radius_mm=args.tract_radius_mm,
                   random_state=args.seed, **threshold)
    with atomic_path(out, command="simulate") as tmp:
        tmp.mkdir()
        write_scores(tmp / "scores.csv", cohort.subject_ids, sim.scores, sim.score_names)
        img = cohort.to_img(sim.labels, dtype=np.int16)
        img.to_filename(tmp / "rois.nii.gz")
        meta = sim.to_json()
        meta.update({"seed": args.seed, "lesions": str(args.lesions), "grid": cohort.grid.to_dict(),
                     "n_subjects": cohort.n_subjects, "versions": package_versions()})
        write_json(tmp / "simulation.json", meta)
    nz = (sim.scores > 0).mean(axis=0)
    what = "tubes" if args.scenario == "tract" else f"ROIs of {sim.params['roi_size']}^3 voxels"
    print(f"deeplsm simulate: {args.scenario} scenario, {len(sim.centres_vox)} {what} on "
          f"{cohort.shape} -> {args.out}")
    for k, (c, mm) in enumerate(zip(sim.centres_vox, sim.centres_mm)):
        print(f"  label {k + 1}: voxel {list(c)}, MNI {mm} mm")
    for k, name in enumerate(sim.score_names):
        print(f"  {name}: labels {', '.join(map(str, sim.truth[name]))}; > 0 in {nz[k]:.0%} of subjects")
    return 0

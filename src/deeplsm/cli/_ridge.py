"""``deeplsm ridge``: ridge LSM (voxelwise multivariate linear model) with permutation inference."""

from __future__ import annotations

import argparse
import logging

from deeplsm.cli._common import positive_float
from deeplsm.cli._vlsm import add_common_options, load_inputs, write_outputs

log = logging.getLogger("deeplsm")


def positive_floats(text: str) -> list[float]:
    """``0.1,1,10``: a comma-separated list of positive numbers."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list of positive numbers")
    return [positive_float(t) for t in items]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ridge", help="ridge LSM: voxelwise multivariate linear model, penalty by "
                       "leave-one-out cross-validation",
                       description="Ridge regression of each score on the tested voxels (scikit-learn "
                       "RidgeCV, efficient leave-one-out). Writes DIR/{output}_stat.nii.gz "
                       "(coefficient map), _p and _p_fwe (with permutations), _thresholded, "
                       "mask.nii.gz, summary.json.")
    add_common_options(p, volume_default="none")
    a = p.add_argument_group("model")
    a.add_argument("--alphas", type=positive_floats, metavar="A,B,...",
                   help="penalties to choose from (default: 41 log-spaced values from 1e-6 to 1e4 "
                   "times the mean squared norm of the centred lesion vectors)")
    a.add_argument("--correction", choices=("none", "fwe", "cfwer"), default="none",
                   help="what thresholds the _thresholded map: voxelwise permutation p ('none', "
                   "default), max-|beta| FWE or CFWER")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from deeplsm.classical import RidgeLSM

    cohort, scores, cov = load_inputs(args)
    fitted = {}
    for i, name in enumerate(scores.columns):
        log.info("ridge: %s (%d subjects)", name, cohort.n_subjects)
        est = RidgeLSM(
            alphas=args.alphas, volume_correction=args.volume_correction,
            min_subjects=args.min_subjects, n_permutations=args.permutations, tail=args.tails[name],
            correction=args.correction, alpha=args.alpha, cfwer_v=args.cfwer_v,
            random_state=args.seed + i, verbose=not args.quiet,
        )
        fitted[name] = est.fit(cohort, scores[name].to_numpy(), covariates=cov)
        log.info("ridge: %s penalty %.3g (leave-one-out MSE %.4g)", name, est.penalty_,
                 float(est.loo_mse_.min()))
    write_outputs(args, cohort, fitted, "ridge", scores=scores)
    return 0

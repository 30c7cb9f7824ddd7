"""``deeplsm svr``: SVR-LSM (RBF support-vector regression) with permutation inference."""

from __future__ import annotations

import argparse
import logging

from deeplsm.cli._common import atlas_from_args, cv_folds, nonnegative_float, positive_float, positive_int
from deeplsm.cli._vlsm import add_common_options, load_inputs, write_outputs

log = logging.getLogger("deeplsm")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("svr", help="SVR-LSM: multivariate lesion-symptom mapping with an RBF SVR",
                       description="SVR-LSM (Zhang et al. 2014; DeMarco & Turkeltaub 2018). Writes "
                       "DIR/{output}_stat.nii.gz (beta map), _p and _p_fwe (with permutations), "
                       "_thresholded, mask.nii.gz, summary.json, {output}_stat_clusters.tsv.")
    add_common_options(p, volume_default="dtlvc")
    a = p.add_argument_group("model")
    a.add_argument("--C", type=positive_float, default=30.0, help="box constraint (default: 30)")
    a.add_argument("--gamma", type=positive_float, default=5.0, help="RBF gamma (default: 5)")
    a.add_argument("--epsilon", type=nonnegative_float, default=0.1, help="epsilon tube (default: 0.1)")
    a.add_argument("--correction", choices=("none", "fwe", "cfwer"), default="none",
                   help="what thresholds the _thresholded map: voxelwise permutation p ('none', "
                   "default), max-beta FWE or CFWER")
    a.add_argument("--cv", type=cv_folds, metavar="K",
                   help="choose C and gamma by K-fold cross-validation first")
    a.add_argument("--n-jobs", type=positive_int, default=1, help="processes for permuted refits")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from deeplsm.classical import SVRLSM

    atlas = atlas_from_args(args)
    cohort, scores, cov = load_inputs(args)
    fitted = {}
    for i, name in enumerate(scores.columns):
        log.info("svr: %s (%d subjects)", name, cohort.n_subjects)
        est = SVRLSM(
            C=args.C, gamma=args.gamma, epsilon=args.epsilon,
            volume_correction=args.volume_correction, min_subjects=args.min_subjects,
            n_permutations=args.permutations, tail=args.tails[name], correction=args.correction,
            alpha=args.alpha, cfwer_v=args.cfwer_v, cv=args.cv, n_jobs=args.n_jobs,
            random_state=args.seed + i, verbose=not args.quiet,
        )
        fitted[name] = est.fit(cohort, scores[name].to_numpy(), covariates=cov)
    write_outputs(args, cohort, fitted, "svr", atlas, scores)
    return 0

"""``deeplsm vlsm``: voxel-based lesion-symptom mapping with permutation FWE."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from deeplsm.cli._common import (
    absolute_inputs,
    add_atlas_options,
    add_direction_option,
    add_lesion_options,
    atlas_from_args,
    comma_list,
    load_lesions_from_args,
    min_subjects,
    nonnegative_int,
    open_unit_float,
    positive_int,
    seed_int,
)

log = logging.getLogger("deeplsm")


def volume_correction_type(text: str) -> str:
    """A lesion-volume control as LESYMAP or svrlsmgui names it (or one of our aliases)."""
    from deeplsm.classical._common import resolve_volume_correction
    from deeplsm.exceptions import DeepLSMError

    try:
        return resolve_volume_correction(text).name
    except DeepLSMError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_common_options(p: argparse.ArgumentParser, volume_default: str) -> None:
    """Options shared by ``vlsm`` and ``svr``."""
    add_lesion_options(p)
    g = p.add_argument_group("scores")
    g.add_argument("--scores", required=True, metavar="CSV",
                   help="score table: a subject column and one numeric column per output")
    g.add_argument("--outputs", type=comma_list, metavar="A,B",
                   help="score columns to map (default: all)")
    g.add_argument("--covariates", metavar="CSV",
                   help="table of nuisance covariates (subject column + numeric columns)")
    a = p.add_argument_group("analysis")
    a.add_argument("--volume-correction", type=volume_correction_type, default=volume_default,
                   metavar="KIND",
                   help="lesion-volume control, as LESYMAP / svrlsmgui name it: none; behavior "
                   "(= score; volume regressed out of the score); voxel (= dtlvc; lesion vectors "
                   "/ sqrt(volume)); both (behavior + voxel, LESYMAP); lesion (volume regressed out "
                   "of every voxel's lesion values, svrlsmgui 'Regress on Lesion'); "
                   f"regress_on_both (behavior + lesion, svrlsmgui) (default: {volume_default})")
    a.add_argument("--min-subjects", type=min_subjects, default=10, metavar="N|FRACTION",
                   help="test voxels lesioned (and spared) in at least N subjects, or in this "
                   "fraction of them (default: 10)")
    add_direction_option(a, "recorded in summary.json, and the side tested with --tail one-sided; "
                         "the _stat maps keep their sign (positive: lesioned subjects score higher)")
    a.add_argument("--tail", choices=("two-sided", "one-sided", "greater", "less"), default="two-sided",
                   help="permutation test: two-sided (default); one-sided towards each score's "
                   "deficit (--direction: greater for higher_is_worse, less for lower_is_worse, "
                   "two-sided for two_sided); 'greater': lesioned subjects score higher; 'less': lower")
    a.add_argument("--permutations", type=nonnegative_int, default=1000, metavar="N",
                   help="score permutations for FWE/CFWER (0: none; default: 1000)")
    a.add_argument("--alpha", type=open_unit_float, default=0.05, help="significance level (default: 0.05)")
    a.add_argument("--cfwer-v", type=positive_int, default=1, metavar="V",
                   help="CFWER: tolerate up to V-1 false positive voxels (default 1 = FWE)")
    a.add_argument("--seed", type=seed_int, default=0, help="random seed (default: 0)")
    add_atlas_options(p)
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--overwrite", action="store_true",
                   help="replace earlier deeplsm output in DIR (only deeplsm's own files)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def load_inputs(args):
    """Check ``--out`` against the output policy, then read the cohort, score table and covariates.

    Also resolves ``--direction`` against the score columns into ``args.directions``
    (score -> direction) and ``--tail`` into ``args.tails`` (score -> tail).
    """
    from deeplsm._direction import deficit_tail, resolve_directions
    from deeplsm._outputs import prepare_output
    from deeplsm.cohort import load_scores

    inputs = absolute_inputs(args, "lesions", "scores", "covariates")
    args.out = str(prepare_output(args.out, inputs=inputs, overwrite=args.overwrite))
    cohort = load_lesions_from_args(args, verbose=not args.quiet)
    scores = load_scores(args.scores, cohort.subject_ids, args.outputs)
    args.directions = resolve_directions(args.direction, scores.columns, what="--direction")
    args.tails = {name: deficit_tail(d) if args.tail == "one-sided" else args.tail
                  for name, d in args.directions.items()}
    cov = None
    if args.covariates:
        cov = load_scores(args.covariates, cohort.subject_ids).to_numpy()
    return cohort, scores, cov


def write_outputs(args, cohort, fitted: dict, method: str, atlas=None, scores=None) -> Path:
    """Write every fitted estimator's maps, the mask, cluster tables and ``summary.json`` to
    ``--out``, atomically; log (once) and record what was left out and why."""
    from deeplsm.classical import save_fitted_maps
    from deeplsm.cohort import cohort_exclusions

    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
              if k not in ("func", "directions", "tails")}
    out = save_fitted_maps(args.out, cohort, fitted, method, config, atlas=atlas,
                           directions=args.directions, exclusions=cohort_exclusions(cohort, scores))
    log.info("wrote %d output(s) to %s", len(fitted), out)
    return out


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("vlsm", help="voxel-based lesion-symptom mapping (t, Welch, Brunner-Munzel, "
                       "regression, Liebermeister) with permutation FWE",
                       description="Mass-univariate VLSM. Writes DIR/{output}_stat.nii.gz, _z, _p, "
                       "_p_fdr, _p_fwe (with permutations), _thresholded, mask.nii.gz, summary.json, "
                       "and cluster tables of the significant voxels ({output}_stat_clusters.tsv, "
                       "{output}_z_clusters.tsv).")
    add_common_options(p, volume_default="none")
    a = p.add_argument_group("test")
    a.add_argument("--test", choices=("t", "welch", "bm", "regression", "liebermeister"), default="t",
                   help="voxelwise test (default: t, pooled variance)")
    a.add_argument("--correction", choices=("none", "fdr", "bonferroni", "fwe", "cfwer", "cluster"),
                   default=None, help="what thresholds the _thresholded map (default: fwe with "
                   "permutations, fdr without)")
    a.add_argument("--cluster-p", type=open_unit_float, default=0.001,
                   help="cluster-forming uncorrected p for --correction cluster (default: 0.001)")
    a.add_argument("--no-patches", action="store_true",
                   help="test every voxel, not each distinct lesion pattern once")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from deeplsm.classical import MassUnivariateLSM

    atlas = atlas_from_args(args)
    cohort, scores, cov = load_inputs(args)
    correction = args.correction or ("fwe" if args.permutations > 0 else "fdr")
    fitted = {}
    for i, name in enumerate(scores.columns):
        log.info("vlsm: %s (%s test, %d subjects)", name, args.test, cohort.n_subjects)
        est = MassUnivariateLSM(
            test=args.test, tail=args.tails[name], volume_correction=args.volume_correction,
            min_subjects=args.min_subjects, compress_patches=not args.no_patches,
            n_permutations=args.permutations, correction=correction, alpha=args.alpha,
            cfwer_v=args.cfwer_v, cluster_p=args.cluster_p, random_state=args.seed + i,
            verbose=not args.quiet,
        )
        fitted[name] = est.fit(cohort, scores[name].to_numpy(), covariates=cov)
    write_outputs(args, cohort, fitted, "vlsm", atlas, scores)
    return 0

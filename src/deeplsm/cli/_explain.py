"""``deeplsm explain``: attribution group maps for every output of a trained run."""

from __future__ import annotations

import argparse
import os
import sys

from deeplsm.cli._common import (
    absolute_inputs,
    add_atlas_options,
    add_device_option,
    add_direction_option,
    atlas_from_args,
    comma_list,
    device_from_args,
    nonnegative_float,
    positive_int,
    seed_int,
    voxels_or_mm,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain", help="IG / GradientSHAP / occlusion group maps for every output of a run",
        description="Explain every output of a trained run on its test subjects and save group "
        "maps (sum over subjects, turned by --direction, positive part for IG and GradientSHAP, "
        "normalised to [0, 1]: high where damage makes the deficit worse) as "
        "RUN/maps/{method}_{output}.nii.gz with a cluster table {method}_{output}_clusters.tsv, "
        "raw sums in RUN/maps/sums/.")
    p.add_argument("--run", required=True, metavar="RUN", help="run folder from 'deeplsm train'")
    p.add_argument("--methods", type=comma_list, default=["ig", "gradshap", "occlusion"],
                   help="comma list of ig, gradshap, occlusion (exact lesion-aware), "
                   "occlusion_captum (captum's full sweep); default ig,gradshap,occlusion")
    p.add_argument("--subjects", choices=("test", "trainval", "all"), default="test",
                   help="subjects whose maps are summed: the test split (default), the training + "
                   "validation subjects, or all")
    p.add_argument("--outputs", type=comma_list, help="output names (default: all)")
    p.add_argument("--max-subjects", type=positive_int, help="explain only the first N subjects")
    p.add_argument("--out", metavar="DIR", help="output folder (default RUN/maps)")
    add_direction_option(p, "lower_is_worse negates the summed attributions before the positive "
                         "part is taken (damage that lowers an output gives negative IG, "
                         "GradientSHAP and occlusion values), two_sided takes their absolute value")
    add_device_option(p)
    g = p.add_argument_group("occlusion")
    g.add_argument("--occlusion-window", type=voxels_or_mm, default=8,
                   help="voxels, or mm as 12mm (default 8)")
    g.add_argument("--occlusion-stride", type=voxels_or_mm, default=4,
                   help="voxels, or mm as 6mm (default 4)")
    g.add_argument("--occlusion-positive", action="store_true",
                   help="keep only the positive part of occlusion group maps")
    g.add_argument("--batch-size", type=positive_int,
                   help="occluded volumes per forward pass (default: 16, or on a GPU as many as "
                   "half its free memory holds)")
    g = p.add_argument_group("integrated gradients / GradientSHAP")
    g.add_argument("--n-steps", type=positive_int, default=32, help="IG steps (default 32)")
    g.add_argument("--internal-batch-size", type=positive_int, default=8)
    g.add_argument("--n-samples", type=positive_int, default=8, help="GradientSHAP samples (default 8)")
    g.add_argument("--nt-samples", type=positive_int,
                   help="wrap GradientSHAP in NoiseTunnel smoothgrad_sq with this many samples "
                   "(the paper: 10)")
    g.add_argument("--stdevs", type=nonnegative_float, default=0.1, help="NoiseTunnel noise SD")
    g.add_argument("--seed", type=seed_int, default=0, help="random seed for GradientSHAP")
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    add_atlas_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from deeplsm._outputs import prepare_output
    from deeplsm.exceptions import DeepLSMError
    from deeplsm.explain import METHODS, explain_run

    device = device_from_args(args)
    bad = [m for m in args.methods if m not in METHODS]
    if bad:
        raise DeepLSMError(f"unknown method {bad[0]!r}; choose from {', '.join(METHODS)}")
    atlas = atlas_from_args(args)
    (run,) = absolute_inputs(args, "run")
    absolute_inputs(args, "atlas", "atlas_labels")
    if not os.path.isdir(run):
        raise DeepLSMError(f"run folder does not exist: {run}" if not os.path.exists(run)
                           else f"--run {run} is a file; give a run folder from 'deeplsm train'")
    # Writing into a maps folder adds or updates maps (that is how methods are explained in
    # several calls), so earlier deeplsm output there is reused, not an error.
    out = prepare_output(args.out if args.out is not None else os.path.join(run, "maps"),
                         inputs=[run], resume=True, allow_inside=[run])
    paths = explain_run(
        run, methods=args.methods, subjects=args.subjects, outputs=args.outputs,
        window=args.occlusion_window, stride=args.occlusion_stride,
        occlusion_positive=args.occlusion_positive, direction=args.direction, out_dir=out,
        max_subjects=args.max_subjects,
        device=device, verbose=not args.quiet, n_steps=args.n_steps,
        internal_batch_size=args.internal_batch_size,
        n_samples=args.n_samples, nt_samples=args.nt_samples, stdevs=args.stdevs,
        random_state=args.seed, occlusion_batch_size=args.batch_size, atlas=atlas,
    )
    for method, per in paths.items():
        for output, path in per.items():
            print(f"{method}\t{output}\t{path}")
    print("wrote group maps; score them with 'deeplsm evaluate --maps DIR --truth ROIS'",
          file=sys.stderr)
    return 0

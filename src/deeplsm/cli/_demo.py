"""``deeplsm demo``: the whole study on the embedded synthetic WMH cohort."""

from __future__ import annotations

import argparse

from deeplsm.cli._common import add_device_option


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole study on the embedded synthetic WMH cohort",
                       description="822 synthetic WMH subjects at 4 mm, 3 ROIs, multi- and "
                       "single-output CNNs, IG/GradientSHAP/occlusion, VLSM, SVR-LSM and ridge, one report. "
                       "About 11 minutes on a 2-core CPU.")
    p.add_argument("--out", required=True, help="output folder (rerun to reuse finished stages)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="tiny version (under 2 minutes), for tests")
    size.add_argument("--preset", choices=("fast", "paper"), default="fast",
                      help="'paper': the paper's scale (1.667 mm grid, paper training preset; "
                      "meant for a GPU)")
    add_device_option(p, default=None, extra=" (default: auto)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from deeplsm._outputs import prepare_output
    from deeplsm.cli._study import apply_device, print_summary
    from deeplsm.study import demo_config, run_study

    config = apply_device(demo_config(quick=args.quick, preset=args.preset), args)
    out = prepare_output(args.out, resume=True)
    args.interrupt_hint = "rerun the same command to resume"
    metrics = run_study(config, out, verbose=not args.quiet)
    print_summary(metrics, args.out)
    return 0

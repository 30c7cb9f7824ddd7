"""Argument types and option groups shared by several subcommands."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def nonnegative_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {v}")
    return v


def positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {v}")
    return v


def unit_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0 < v <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {v}")
    return v


def comma_list(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return items


def add_device_option(parser, default: str | None = "auto", extra: str = "") -> None:
    """``--device``: where networks train, predict and are explained."""
    from deeplsm._device import DEVICE_HELP

    help_text = DEVICE_HELP if default == "auto" else DEVICE_HELP.replace(" (default: auto)", "")
    parser.add_argument("--device", default=default, metavar="DEV", help=help_text + extra)


def device_from_args(args: argparse.Namespace, default: str = "auto"):
    """The checked :class:`torch.device` of ``--device`` (a user error names the option)."""
    from deeplsm._device import resolve_device

    spec = args.device if args.device is not None else default
    return resolve_device(spec, what="--device")


def add_lesion_options(parser: argparse.ArgumentParser) -> None:
    """``--lesions`` plus the analysis-grid options every lesion-reading command shares."""
    g = parser.add_argument_group("lesions and analysis grid")
    g.add_argument("--lesions", required=True, metavar="PATH",
                   help="folder of NIfTI lesion maps (sub-*_lesion.nii[.gz] or any *.nii[.gz]), "
                   "a glob, a CSV/TSV with subject and path columns, or a *.lesions.npz cache")
    g.add_argument("--voxel-size", type=positive_float, metavar="MM",
                   help="analysis grid voxel size in mm (MNI brain bounding box)")
    g.add_argument("--grid", choices=("paper", "mni", "native"),
                   help="'paper': 1.667 mm MNI brain box, as the paper; 'native': the lesions' "
                   "own grid (default unless --voxel-size is given)")
    g.add_argument("--threshold", type=unit_float,
                   help="binarise probabilistic maps at >= THRESHOLD (otherwise they are an error)")


def load_lesions_from_args(args: argparse.Namespace, verbose: bool = True):
    from deeplsm.cohort import load_lesions

    return load_lesions(args.lesions, grid=args.grid, voxel_size=args.voxel_size,
                        threshold=args.threshold, verbose=verbose)

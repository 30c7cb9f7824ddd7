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


def absolute_inputs(args: argparse.Namespace, *names: str) -> list[str]:
    """Make the input options ``names`` absolute in ``args`` (once, at the door); return them all.

    Empty values (an unset shell variable) are errors; lists (``--maps A B``) are made absolute
    item by item.
    """
    from deeplsm._outputs import absolute_input

    found: list[str] = []
    for name in names:
        value = getattr(args, name, None)
        flag = "--" + name.replace("_", "-")
        if value is None:
            continue
        if isinstance(value, list):
            value = [absolute_input(v, flag) for v in value]
            found.extend(value)
        else:
            value = absolute_input(value, flag)
            found.append(value)
        setattr(args, name, value)
    return found

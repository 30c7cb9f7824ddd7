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
                   help="folder of NIfTI lesion maps (BIDS lesion masks, searched recursively, "
                   "or any *.nii[.gz]), "
                   "a glob, a CSV/TSV with subject and path columns, or a *.lesions.npz cache")
    g.add_argument("--voxel-size", type=positive_float, metavar="MM",
                   help="analysis grid voxel size in mm (MNI brain bounding box)")
    g.add_argument("--grid", choices=("paper", "mni", "native"),
                   help="'paper': 1.667 mm MNI brain box, as the paper; 'mni': the MNI brain box "
                   "at --voxel-size (default: the lesions' voxel size), each map resampled through "
                   "its own header; 'native': the lesions' own grid, one header for all (default "
                   "unless --voxel-size is given)")
    g.add_argument("--threshold", type=unit_float,
                   help="binarise probabilistic maps at >= THRESHOLD (otherwise they are an error)")
    g.add_argument("--session", metavar="LABEL|all",
                   help="BIDS masks: keep session LABEL (ses-LABEL), or 'all' to keep every "
                   "session as its own subject (sub-01_ses-1); needed when a subject has masks "
                   "from several sessions")


def load_lesions_from_args(args: argparse.Namespace, verbose: bool = True):
    from deeplsm.cohort import load_lesions

    return load_lesions(args.lesions, grid=args.grid, voxel_size=args.voxel_size,
                        threshold=args.threshold, session=args.session, verbose=verbose)


def add_atlas_options(parser: argparse.ArgumentParser) -> None:
    """``--atlas IMG --atlas-labels TABLE``: label the cluster tables written next to the maps."""
    g = parser.add_argument_group("cluster tables")
    g.add_argument("--atlas", metavar="IMG",
                   help="label image in MNI space (any grid; resampled nearest-neighbour) to name "
                   "each cluster's peak and regions in the <map>_clusters.tsv tables")
    g.add_argument("--atlas-labels", metavar="TSV",
                   help="the atlas's label table: TSV or CSV with columns index,name")


def atlas_from_args(args: argparse.Namespace):
    """The :class:`deeplsm.evaluate.Atlas` of ``--atlas/--atlas-labels``, or None."""
    from deeplsm.exceptions import DeepLSMError

    if (args.atlas is None) != (args.atlas_labels is None):
        raise DeepLSMError("--atlas and --atlas-labels go together: give the label image and "
                           "its index,name table")
    if args.atlas is None:
        return None
    from deeplsm.evaluate import load_atlas

    return load_atlas(args.atlas, args.atlas_labels)

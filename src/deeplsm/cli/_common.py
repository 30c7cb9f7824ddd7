"""Argument types and option groups shared by several subcommands."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from deeplsm._schema import (
    AnyFloat,
    CVFolds,
    MinSubjects,
    NonNegativeFloat,
    NonNegativeInt,
    OpenUnitFloat,
    PositiveFloat,
    PositiveInt,
    Seed,
    UnitFloat,
    VoxelsOrMm,
    cli_type,
    field_type,
)

#: ``type=`` callables for number options. Each checks one range of ``deeplsm._schema``, the
#: same definition the study settings and the Python API use.
positive_int = cli_type(PositiveInt)
nonnegative_int = cli_type(NonNegativeInt)
positive_float = cli_type(PositiveFloat)
nonnegative_float = cli_type(NonNegativeFloat)
finite_float = cli_type(AnyFloat)
unit_float = cli_type(UnitFloat)  # (0, 1]: binarisation thresholds
open_unit_float = cli_type(OpenUnitFloat)  # (0, 1): significance levels, p thresholds
seed_int = cli_type(Seed)
voxels_or_mm = cli_type(VoxelsOrMm)
min_subjects = cli_type(MinSubjects)
cv_folds = cli_type(CVFolds)


def hyperparameter(name: str) -> Callable[[str], Any]:
    """``type=`` for the training hyperparameter ``name``, checked by ``deeplsm.train.Hyperparameters``.

    The model is imported only when the option is given, so building the parser stays cheap.
    """

    def parse(text: str) -> Any:
        from deeplsm.train._presets import Hyperparameters

        return cli_type(field_type(Hyperparameters, name))(text)

    parse.__name__ = name
    return parse


def comma_list(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return items


def direction_arg(text: str) -> str | dict[str, str]:
    """``--direction``: ``KIND`` for every score, or ``NAME=KIND[,NAME=KIND...]`` per score."""
    from deeplsm._direction import DIRECTIONS, spelling

    def kind(value: str) -> str:
        if spelling(value) not in DIRECTIONS:
            raise argparse.ArgumentTypeError(f"{value!r} is not a direction; choose from "
                                             f"{', '.join(DIRECTIONS)} (or NAME=KIND,...)")
        return spelling(value)

    if "=" not in text:
        return kind(text)
    out = {}
    for item in (t.strip() for t in text.split(",") if t.strip()):
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise argparse.ArgumentTypeError(f"expected KIND or NAME=KIND[,NAME=KIND...], got {text!r}")
        out[name.strip()] = kind(value.strip())
    return out


def add_direction_option(parser, effect: str) -> None:
    """``--direction``: which sign of each score's map is the deficit; ``effect`` says what it does."""
    parser.add_argument(
        "--direction", type=direction_arg, default=None, metavar="KIND|NAME=KIND,...",
        help="score direction, for every score or per score (scores not named: higher_is_worse): "
        "higher_is_worse (default; damage raises the score), lower_is_worse (damage lowers it: "
        f"aphasia quotients, accuracy), two_sided (either way); {effect}")


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

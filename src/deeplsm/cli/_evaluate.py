"""``deeplsm evaluate``: score attribution or statistic maps against ground-truth ROIs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deeplsm.cli._common import absolute_inputs, positive_int
from deeplsm.exceptions import DeepLSMError

LABELS_FORMAT = "NAME=K[+K...][,NAME=K...] or a JSON object such as '{\"naming\": [1, 2]}'"


def _labels(text: str) -> dict[str, list[int]]:
    """``--labels``: output name -> its truth labels, ``naming=1+2,fluency=3`` or the JSON object
    ``{"naming": [1, 2], "fluency": 3}`` (the study's ``scores.truth_labels`` as JSON)."""
    import json

    from deeplsm.evaluate import label_list

    def bad(extra: str = "") -> argparse.ArgumentTypeError:
        return argparse.ArgumentTypeError(f"expected {LABELS_FORMAT}, got {text!r}{extra}")

    if text.lstrip().startswith("{"):
        try:
            raw = json.loads(text)
        except ValueError:
            raise bad(" (not valid JSON)") from None
        if not raw or any(not str(k).strip() for k in raw):
            raise bad()
        try:
            return {str(k).strip(): label_list(str(k), v) for k, v in raw.items()}
        except DeepLSMError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
    out: dict[str, list[int]] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, labels = item.partition("=")
        try:
            if not sep or not name.strip() or name.strip() in out:
                raise ValueError
            ks = [int(k) for k in labels.split("+")]
            if any(k < 1 for k in ks) or len(set(ks)) != len(ks):
                raise ValueError
        except ValueError:
            raise bad() from None
        out[name.strip()] = ks
    if not out:
        raise bad()
    return out


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate", help="localisation metrics (PR-AUC, cDC, Dice, distances) of maps vs ROIs",
        description="Score NIfTI maps (ours or any tool's) against binary ROIs: PR-AUC as step-wise "
        "average precision (ties as scikit-learn; a flat map scores the prevalence), the PR curve "
        "over 1000 thresholds and its trapezoid area (the paper's figure), prevalence, continuous "
        "Dice, best-F1 Dice, peak and centre-of-mass distances in mm; all inside a brain mask.")
    p.add_argument("--maps", required=True, nargs="+", metavar="PATH",
                   help="a folder of maps (e.g. RUN/maps) or NIfTI files")
    p.add_argument("--truth", required=True, metavar="NIFTI",
                   help="ROI label image (1..k; e.g. SIM/rois.nii.gz) or a 4D stack, one ROI per volume")
    p.add_argument("--out", required=True, metavar="FILE.json",
                   help="results JSON; the PR-curve figure goes beside it as FILE.png")
    p.add_argument("--labels", type=_labels, metavar="NAME=K[+K],...",
                   help="map output names to ROI labels; NAME=K1+K2 scores NAME against the union "
                   "of labels K1 and K2 (a truth of several regions); also a JSON object "
                   "'{\"naming\": [1, 2], \"fluency\": 3}', the study's scores.truth_labels "
                   "(default: trailing number of the file name)")
    p.add_argument("--mask", default="mni", metavar="mni|none|NIFTI",
                   help="brain mask: nilearn's MNI152 mask resampled to the grid (default), none, "
                   "or a mask image")
    p.add_argument("--n-thresholds", type=positive_int, default=1000,
                   help="PR-curve thresholds from max to min (default 1000)")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG")
    p.add_argument("--overwrite", action="store_true",
                   help="replace FILE.json (and FILE.png) written earlier by deeplsm")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from deeplsm._outputs import prepare_output
    from deeplsm._utils import package_versions, write_json
    from deeplsm.evaluate import evaluate_maps, plot_pr_curves

    if args.n_thresholds < 2:
        raise DeepLSMError(f"--n-thresholds must be at least 2, got {args.n_thresholds}")
    named_mask = args.mask.lower() in ("mni", "none")
    inputs = absolute_inputs(args, "maps", "truth", *(() if named_mask else ("mask",)))
    out = prepare_output(args.out, inputs=inputs, overwrite=args.overwrite, file=True,
                         siblings=() if args.no_plot else (".png",))
    maps = args.maps[0] if len(args.maps) == 1 and Path(args.maps[0]).is_dir() else args.maps
    mask = args.mask if args.mask.lower() in ("mni", "none") else Path(args.mask)
    ev = evaluate_maps(maps, args.truth, labels=args.labels, mask=mask,
                       n_thresholds=args.n_thresholds)
    ev = {"truth": str(args.truth), **ev, "versions": package_versions()}
    png = out.with_suffix(".png")
    if not args.no_plot:
        plot_pr_curves(ev, png)
    try:  # the JSON last, so that a failure leaves neither file
        write_json(out, ev)
    except BaseException:
        if not args.no_plot:
            png.unlink(missing_ok=True)
        raise
    print(f"{'method':<18}{'output':<12}{'PR-AUC':>8}{'trapz':>8}{'prev':>8}{'cDC':>8}{'Dice':>8}"
          f"{'peak mm':>9}{'COM mm':>9}")
    for method, per in ev["results"].items():
        for output, r in per.items():
            pk = "-" if r["peak_distance_mm"] is None else f"{r['peak_distance_mm']:.1f}"
            cm = "-" if r["com_distance_mm"] is None else f"{r['com_distance_mm']:.1f}"
            print(f"{method:<18}{output:<12}{r['pr_auc']:8.3f}{r['pr_auc_trapezoid']:8.3f}"
                  f"{r['prevalence']:8.4f}{r['cdc']:8.3f}{r['dice_best']:8.3f}{pk:>9}{cm:>9}")
    print("PR-AUC: step-wise average precision (a flat map scores prev); trapz: trapezoid area "
          "under the thresholded curve, for the paper's figure", file=sys.stderr)
    print(f"mask: {ev['mask']}", file=sys.stderr)
    print(f"wrote {out}", file=sys.stderr)
    return 0

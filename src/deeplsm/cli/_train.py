"""``deeplsm train``: train a multi-output or single-output 3D ResNet10 and write a run folder."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from deeplsm.cli._common import (
    absolute_inputs,
    add_device_option,
    add_lesion_options,
    comma_list,
    device_from_args,
    hyperparameter,
    load_lesions_from_args,
    nonnegative_int,
    positive_int,
    seed_int,
)
from deeplsm.exceptions import DeepLSMError

log = logging.getLogger("deeplsm")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a multi- or single-output 3D ResNet10 on lesion maps and scores",
        description="Train the paper's 3D ResNet10 (MedicalNet layout) to predict scores from "
        "lesion maps, with a seeded 60/20/20 split (or a repeated K-fold cross-validation with "
        "--folds K --repeats R). Writes RUN/config.json, checkpoints, "
        "metrics.json, predictions.csv and learning_curves.png. A killed run continues with "
        "'deeplsm train --resume --out RUN'.",
    )
    add_lesion_options(p)
    # With --resume everything comes from RUN, so --lesions is checked in run() instead.
    for action in p._actions:
        if action.dest == "lesions":
            action.required = False
    g = p.add_argument_group("scores and outputs")
    g.add_argument("--scores", metavar="CSV", help="score table: a subject column and one column per score")
    g.add_argument("--outputs", type=comma_list, metavar="LIST",
                   help="score columns to predict, in order (default: all). Each may be "
                   "NAME[:KIND[:K]][@WEIGHT] with KIND regression01 (sigmoid, scores in [0,1]), "
                   "regression (leaky ReLU, e.g. age), binary or multiclass; e.g. "
                   "'score_1,age:regression,sex:binary,group:multiclass:4'")
    t = p.add_argument_group("training")
    t.add_argument("--mode", choices=("multi", "single"), default="multi",
                   help="one network with a head per output, or one network per output (default: multi)")
    t.add_argument("--preset", choices=("fast", "readout", "paper", "gpu"), default="fast",
                   help="'fast': the paper's network with CPU-friendly AdamW + one-cycle; "
                   "'readout': the same optimiser with a spatial readout on the ResNet10's stem "
                   "(measured best on overlap-fraction scores; the demo's); 'paper': Adam 1e-5 → "
                   "1e-6 after epoch 100, batch 4; 'gpu': fast's recipe in bf16, batch 32, 30 epochs "
                   "(default: fast)")
    t.add_argument("--seed", type=seed_int, default=0, help="seed of the split, weights and batch order")
    t.add_argument("--epochs", type=hyperparameter("max_epochs"),
                   help="override the preset's number of epochs")
    t.add_argument("--batch-size", type=hyperparameter("batch_size"), help="override the preset's batch size")
    t.add_argument("--lr", type=hyperparameter("lr"), help="override the preset's (peak) learning rate")
    t.add_argument("--mixup", type=hyperparameter("mixup_alpha"), metavar="ALPHA",
                   help="mixup with Beta(ALPHA, ALPHA) weights (regression outputs only)")
    t.add_argument("--precision", choices=("32-true", "bf16-mixed", "16-mixed"),
                   help="override the preset's precision")
    t.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="channels_last_3d memory format")
    t.add_argument("--early-stopping", type=hyperparameter("early_stopping_patience"), metavar="PATIENCE",
                   help="stop when the validation loss has not improved for PATIENCE epochs")
    t.add_argument("--folds", type=positive_int, metavar="K",
                   help="seeded K-fold cross-validation (test = a fold, val = the next fold, train "
                   "= the others): every fold, each in RUN/repeat-<r>/fold-<f>, with per-fold test "
                   "metrics in RUN/folds.csv and their mean and SD in RUN/summary.json; with --fold "
                   "only that fold, as one run folder")
    t.add_argument("--fold", type=nonnegative_int, default=None,
                   help="train only this fold, 0..K-1 (with --folds), as one run folder")
    t.add_argument("--repeats", type=positive_int, metavar="R",
                   help="with --folds: repeat the K-fold cross-validation R times, repeat r with "
                   "the seed SEED + r (its own partition and initial weights) (default: 1)")
    t.add_argument("--weights", metavar="PTH", help="local MedicalNet resnet_10 checkpoint to start from")
    d = p.add_argument_group(
        "hardware and logging",
        "--device picks the one device that trains, predicts and evaluates. For several GPUs add "
        "--devices N (or a list such as 0,1) and --strategy ddp: Lightning then trains on those "
        "GPUs and --device (auto or cuda) evaluates. --accelerator is optional and must agree "
        "with --device.")
    add_device_option(d, default=None, extra=" (default: auto; with --resume: the run's own setting)")
    d.add_argument("--accelerator", default="auto",
                   help="Lightning accelerator; leave at auto, --device chooses (default: auto)")
    d.add_argument("--devices", default="auto",
                   help="Lightning devices for multi-GPU training, e.g. 4 or 0,1 (default: the "
                   "one --device)")
    d.add_argument("--strategy", default="auto", help="Lightning strategy, e.g. ddp (default: auto)")
    d.add_argument("--tensorboard", action="store_true", help="also log to TensorBoard under RUN/logs")
    d.add_argument("--threads", type=positive_int,
                   help="CPU threads for torch (default: one per core; 1 is faster when other "
                   "jobs keep the cores busy)")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    o = p.add_argument_group("output")
    o.add_argument("--out", required=True, metavar="RUN", help="run folder to create")
    o.add_argument("--resume", action="store_true",
                   help="continue the killed run in RUN from its last checkpoints (other options ignored)")
    o.add_argument("--overwrite", action="store_true",
                   help="replace an earlier deeplsm run in RUN (only deeplsm's own files)")
    p.set_defaults(func=run)


def _devices(text: str):
    return int(text) if text.isdigit() else text


def run(args: argparse.Namespace) -> int:
    from deeplsm._device import trainer_hardware
    from deeplsm._outputs import prepare_output
    from deeplsm.train import resume_run, train_run

    verbose = not args.quiet
    device = device_from_args(args) if args.device is not None or not args.resume else None
    if device is not None and not args.resume:
        trainer_hardware(device, accelerator=args.accelerator, devices=_devices(args.devices))
    if args.resume:
        from deeplsm.train import is_cv_dir, resume_cv

        out = prepare_output(args.out, resume=True)
        args.interrupt_hint = f"continue with: deeplsm train --resume --out {args.out}"
        if is_cv_dir(out):
            resume_cv(out, device=device, verbose=verbose)
            _cv_summary(out, args.out)
            return 0
        resume_run(out, device=device, verbose=verbose)
        _summary(out, args.out)
        return 0
    if args.folds is None and (args.fold is not None or args.repeats is not None):
        raise DeepLSMError(f"--{'fold' if args.fold is not None else 'repeats'} needs --folds K")
    if args.fold is not None and args.repeats is not None:
        raise DeepLSMError("--fold trains one fold of one split; drop --repeats, or drop --fold to "
                           "cross-validate every fold of every repeat")
    if not args.lesions:
        raise DeepLSMError("--lesions is required (unless --resume)")
    if not args.scores:
        raise DeepLSMError("--scores is required (unless --resume)")
    inputs = absolute_inputs(args, "lesions", "scores", "weights")
    from deeplsm.train._run import RESUME_HINT

    out = prepare_output(args.out, inputs=inputs, overwrite=args.overwrite, hint=RESUME_HINT)
    from deeplsm.cohort import load_scores

    cohort = load_lesions_from_args(args, verbose=verbose)
    names = None
    if args.outputs:
        from deeplsm.train._run import parse_output

        names = [parse_output(o)[0] for o in args.outputs]
    scores = load_scores(args.scores, cohort.subject_ids, columns=names)
    given = {
        "max_epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
        "mixup_alpha": args.mixup, "precision": args.precision, "channels_last": args.channels_last,
        "early_stopping_patience": args.early_stopping,
    }
    overrides = {k: v for k, v in given.items() if v is not None}  # options left out keep the preset
    args.interrupt_hint = f"continue with: deeplsm train --resume --out {args.out}"
    common = dict(
        outputs=args.outputs, mode=args.mode, preset=args.preset, seed=args.seed,
        overrides=overrides, weights=args.weights, device=args.device or "auto",
        accelerator=args.accelerator,
        devices=_devices(args.devices), strategy=args.strategy, tensorboard=args.tensorboard,
        threads=args.threads, overwrite=args.overwrite, verbose=verbose,
        sources={"lesions": args.lesions, "scores": args.scores},
    )
    if args.folds is not None and args.fold is None:
        from deeplsm.train import train_cv

        train_cv(out, cohort, scores, n_folds=args.folds, n_repeats=args.repeats or 1, **common)
        _cv_summary(out, args.out)
        return 0
    train_run(out, cohort, scores, n_folds=args.folds, fold=args.fold or 0, **common)
    _summary(out, args.out)
    return 0


def _cv_summary(out: Path, shown: str) -> None:
    import json

    from deeplsm.train._cv import cv_summary_line

    m = json.loads((out / "summary.json").read_text())
    print(f"deeplsm train: {m['n_folds']}-fold cross-validation x {m['n_repeats']} repeat(s), test "
          f"mean ± SD over {m['n_folds'] * m['n_repeats']} folds: {cv_summary_line(m['cv'])}; "
          f"folder {shown}", file=sys.stderr)


def _summary(out: Path, shown: str) -> None:
    import json

    m = json.loads((out / "metrics.json").read_text())
    parts = []
    for name, v in m["test"].items():
        if "r2_pearson" in v:
            r2 = v["r2_pearson"]
            parts.append(f"{name}: r²={r2:.3f}" if r2 is not None else f"{name}: r²=n/a")
        elif "balanced_accuracy" in v:
            parts.append(f"{name}: bal.acc={v['balanced_accuracy']:.3f}")
        else:
            parts.append(f"{name}: acc={v['accuracy']:.3f}")
    print(f"deeplsm train: test {', '.join(parts)}; run folder {shown}", file=sys.stderr)

"""``deeplsm faces``: the paper's 2D part (multi- vs single-output ResNet18 on UTKFace, any image
folder with a CSV of labels, or the offline synthetic set)."""

from __future__ import annotations

import argparse
import sys

from deeplsm.cli._common import (
    add_device_option,
    comma_list,
    device_from_args,
    nonnegative_int,
    positive_float,
    positive_int,
    seed_int,
)

#: ``--quick``: a tiny synthetic run for tests and a first look (about a minute on 2 CPU cores).
QUICK = {"n_images": 96, "image_size": 32, "epochs": 1, "n_explain": 1, "ig_steps": 8,
         "gs_samples": 2}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "faces", help="multi- vs single-output 2D ResNet18 with per-output explanations "
        "(UTKFace, an image folder + CSV, or a synthetic set)",
        description="Train a multi-output 2D ResNet18 (age: regression, sex: binary, ethnicity: "
        "multi-class) and/or one single-output network per label, report the Table III metrics, "
        "and explain every output with Integrated Gradients, GradientSHAP and Occlusion.")
    src = p.add_argument_group("data (one of)")
    g = src.add_mutually_exclusive_group(required=True)
    g.add_argument("--data", metavar="DIR",
                   help="UTKFace folder ([age]_[gender]_[race]_[datetime].jpg[.chip.jpg]), or with "
                   "--labels any image folder")
    g.add_argument("--synthetic", action="store_true",
                   help="the offline synthetic set whose labels live in known regions")
    src.add_argument("--labels", metavar="CSV",
                     help="with --data: a CSV with a file column and one column per label")
    src.add_argument("--outputs", type=comma_list, metavar="SPECS",
                     help="with --labels: name[:kind[:n_classes]] per label, comma-separated "
                     "(e.g. age:regression,sex:binary,ethnicity:multiclass:4)")
    src.add_argument("--keep-others", action="store_true",
                     help="UTKFace: keep race 4 'Others' as a fifth class (default: drop it, as the paper)")
    src.add_argument("--subset", type=positive_int, metavar="N",
                     help="use a seeded random subset of N images (the paper: 9000)")
    src.add_argument("--image-size", type=positive_int, metavar="PX",
                     help="resize images to PX × PX (default: 200 for --data, 64 for --synthetic)")
    src.add_argument("--n-images", type=positive_int, default=600, metavar="N",
                     help="--synthetic: number of images (default: 600)")
    p.add_argument("--mode", choices=("multi", "single", "both"), default="both",
                   help="multi-output network, one network per output, or both (default)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--epochs", type=positive_int, default=10, help="training epochs (default: 10)")
    p.add_argument("--lr", type=positive_float, default=1e-3, help="Adam learning rate (default: 1e-3)")
    p.add_argument("--batch-size", type=positive_int, default=16, help="batch size (default: 16, the paper)")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of every random step (default: 0)")
    p.add_argument("--weights", metavar="PATH",
                   help="local torchvision ImageNet resnet18 state dict (nothing is downloaded)")
    e = p.add_argument_group("explanations")
    e.add_argument("--methods", type=comma_list, default=["ig", "gradshap", "occlusion"],
                   help="comma-separated subset of ig,gradshap,occlusion (default: all)")
    e.add_argument("--image", metavar="ID", help="image to explain (default: the first test image)")
    e.add_argument("--n-explain", type=nonnegative_int, default=None, metavar="K",
                   help="test images to explain; localisation scores average over them "
                   "(default: 4 with --synthetic, else 1; 0 = none)")
    e.add_argument("--occlusion-window", type=positive_int, metavar="PX",
                   help="occlusion window (default: the paper's 15 px scaled from 200 px)")
    e.add_argument("--occlusion-stride", type=positive_int, metavar="PX",
                   help="occlusion stride (default: the paper's 8 px scaled from 200 px)")
    e.add_argument("--nt-samples", type=positive_int, default=10,
                   help="GradientSHAP NoiseTunnel samples (default: 10, the paper)")
    add_device_option(p)
    p.add_argument("--threads", type=positive_int, metavar="N",
                   help="torch CPU threads (default: torch's choice)")
    p.add_argument("--quick", action="store_true",
                   help="tiny synthetic run: 96 images of 32 px, 1 epoch, 1 explained image")
    p.add_argument("--overwrite", action="store_true",
                   help="replace earlier deeplsm output in the folder (only deeplsm's own files)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from deeplsm.exceptions import DeepLSMError
    from deeplsm.faces import load_image_folder, load_utkface, make_synthetic_faces, run_faces

    device = device_from_args(args)
    q = QUICK if args.quick else {}
    if args.quick and not args.synthetic:
        raise DeepLSMError("--quick runs the synthetic set; use it with --synthetic")
    if args.labels and not args.data:
        raise DeepLSMError("--labels needs --data (the image folder)")
    if args.outputs and not args.labels:
        raise DeepLSMError("--outputs applies to --data with --labels")
    from deeplsm._outputs import prepare_output
    from deeplsm.cli._common import absolute_inputs

    inputs = absolute_inputs(args, "data", "labels", "weights")
    out = prepare_output(args.out, inputs=inputs, overwrite=args.overwrite)
    if args.synthetic:
        size = args.image_size or q.get("image_size", 64)
        n = q.get("n_images", args.n_images)
        data = make_synthetic_faces(n, image_size=size, random_state=args.seed)
        n_explain = 4 if args.n_explain is None else args.n_explain
    elif args.labels:
        data = load_image_folder(args.data, args.labels, outputs=args.outputs,
                                 image_size=args.image_size or 200, subset=args.subset,
                                 random_state=args.seed)
        n_explain = 1 if args.n_explain is None else args.n_explain
    else:
        data = load_utkface(args.data, keep_others=args.keep_others, image_size=args.image_size or 200,
                            subset=args.subset, random_state=args.seed)
        n_explain = 1 if args.n_explain is None else args.n_explain
    if args.quick:
        n_explain = min(n_explain, q["n_explain"])
    run_faces(
        out, data, mode=args.mode, epochs=q.get("epochs", args.epochs), seed=args.seed, lr=args.lr,
        batch_size=args.batch_size, weights=args.weights, methods=args.methods, n_explain=n_explain,
        image=args.image, occlusion_window=args.occlusion_window,
        occlusion_stride=args.occlusion_stride, nt_samples=args.nt_samples,
        gs_samples=q.get("gs_samples", 5), ig_steps=q.get("ig_steps", 32), num_threads=args.threads,
        device=device,
        overwrite=args.overwrite, verbose=not args.quiet,
        extra_config={"command": ["deeplsm", *sys.argv[1:]] if sys.argv[0].endswith("deeplsm") else None},
    )
    print(f"deeplsm faces: wrote {args.out}/report.html, metrics.json and table3.md")
    return 0

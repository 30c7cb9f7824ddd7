"""Train, evaluate and explain multi- and single-output 2D ResNet18s on an :class:`ImageSet`.

The training reuses :class:`deeplsm.train.LSMModule` (``dims=2``, inputs scaled from uint8 to
[0, 1]) and :class:`deeplsm.train.ArrayDataModule`, with the Trainer, checkpoints and logs of
:func:`deeplsm.train.train_run`.

Output folder::

    OUT/config.json            settings, data provenance, split counts, package versions
    OUT/metrics.json           per model and split metrics, the Table III equivalent, timings,
                               localisation scores (when the data have masks); written last
    OUT/table3.csv, table3.md  the Table III equivalent (test split)
    OUT/predictions.csv        image, split, <output>_true, <model>_<output>_pred
    OUT/split.csv              image, split
    OUT/explanations.npz       image_<id>, <model>/<output>/<method>/<id> maps (H, W)
    OUT/localisation.csv       per map: PR-AUC, AP, cDC, best Dice, peak inside the region
    OUT/fig5_predictions.png   the explained image with predictions against the truth
    OUT/fig6_<model>.png       outputs × methods grid of |attribution| maps
    OUT/learning_curves.png
    OUT/report.html            everything above in one self-contained page
    OUT/checkpoints/, OUT/logs/
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from deeplsm._device import module_device, resolve_device
from deeplsm._outputs import check_output_dir
from deeplsm._utils import atomic_path, package_versions, write_json
from deeplsm.evaluate import prediction_metrics
from deeplsm.exceptions import DeepLSMError
from deeplsm.faces._dataset import ImageSet
from deeplsm.models import TaskSpec

log = logging.getLogger("deeplsm")

MODES = ("multi", "single", "both")
METHODS = ("ig", "gradshap", "occlusion")
#: What an output folder holds (its deeplsm marker owns these, so --overwrite replaces them only).
FACES_LAYOUT = ("config.json", "metrics.json", "table3.csv", "table3.md", "predictions.csv", "split.csv",
                "explanations.npz", "localisation.csv", "fig5_predictions.png", "fig6_*.png",
                "learning_curves.png", "report.html", "checkpoints", "logs")
METHOD_LABELS = {"ig": "Integrated Gradients", "gradshap": "GradientSHAP", "occlusion": "Occlusion"}
#: The Table III metric of each output kind.
TABLE_METRIC = {"regression": "mse", "regression01": "mse", "binary": "accuracy",
                "multiclass": "balanced_accuracy"}
#: The paper's occlusion window and stride on 200 × 200 images, as captum (channel, row, column).
PAPER_WINDOW, PAPER_STRIDE, PAPER_SIZE = 15, 8, 200


def default_hyperparameters(**overrides) -> dict:
    """The paper's Table II where it speaks (Adam, batch 16, [0, 1] inputs), the ``fast``
    preset's one-cycle schedule and clipping where it is silent."""
    from deeplsm.train import get_preset

    hp = get_preset("fast", {"optimizer": "adam", "weight_decay": 0.0, "batch_size": 16,
                             "max_epochs": 10, "lr": 1e-3, "mixup_alpha": 0.0})
    for k, v in overrides.items():
        if k not in hp:
            raise DeepLSMError(f"unknown hyperparameter {k!r}; known: {', '.join(hp)}")
        if v is not None:
            hp[k] = v
    return hp


def occlusion_geometry(image_size: int) -> tuple[int, int]:
    """The paper's (15, 15) window and (8, 8) stride scaled to ``image_size`` (at least 3 and 2).

    Examples
    --------
    >>> occlusion_geometry(200), occlusion_geometry(64), occlusion_geometry(32)
    ((15, 8), (5, 3), (3, 2))
    """
    w = max(3, round(PAPER_WINDOW * image_size / PAPER_SIZE))
    s = min(w, max(2, round(PAPER_STRIDE * image_size / PAPER_SIZE)))
    return int(w), int(s)


def model_keys(mode: str, task: TaskSpec) -> list[tuple[str, str, TaskSpec]]:
    """(model group, model key, task) for each network a mode trains."""
    modes = ("multi", "single") if mode == "both" else (mode,)
    out = []
    for m in modes:
        if m == "multi":
            out.append(("multi", "multi", task))
        else:
            out.extend(("single", f"single_{o.name}", TaskSpec([o])) for o in task)
    return out


@contextlib.contextmanager
def _threads(n: int | None):
    if not n:
        yield
        return
    was = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(was)


# --- training -------------------------------------------------------------------------------------
def fit_models(out: Path, data: ImageSet, split: np.ndarray, *, mode: str, hp: dict, seed: int,
               weights: str | None, verbose: bool,
               device: str | torch.device = "cpu") -> tuple[dict[str, dict[str, nn.Module]], dict]:
    """Train every network of ``mode`` on ``device``; return ``{group: {output or 'multi': net}}``
    (best validation weights, eval mode, on ``device``) and per-model fit information."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint

    from deeplsm.train import ArrayDataModule, LSMModule
    from deeplsm.train._module import flush_denormal
    from deeplsm.train._run import (
        _best_epoch,
        _load_net,
        _make_trainer,
        _quiet_lightning,
        _regression_scale,
        fit_interruptible,
        run_relative,
    )

    task = data.task
    y = data.labels[task.names].to_numpy(dtype=np.float32)
    scale = _regression_scale(task, y[split == "train"])
    device = resolve_device(device)
    trainer_cfg = {"hyperparameters": hp,
                   "trainer": {"device": str(device), "accelerator": "auto", "devices": 1,
                               "strategy": "auto"}}
    models: dict[str, dict[str, nn.Module]] = {}
    info: dict[str, dict] = {}
    with _quiet_lightning(verbose), flush_denormal():
        for group, key, sub in model_keys(mode, task):
            cols = [task.names.index(n) for n in sub.names]
            L.seed_everything(seed, workers=True, verbose=False)
            module = LSMModule(
                outputs=sub.to_list(), dims=2, n_input_channels=3, optimizer=hp["optimizer"],
                lr=hp["lr"], weight_decay=hp["weight_decay"], scheduler=hp["scheduler"],
                milestones=hp["milestones"], gamma=hp["gamma"], input_scale=1.0 / 255.0,
                channels_last=hp["channels_last"], regression_scale=[scale[c] for c in cols],
                weights=weights,
            )
            dm = ArrayDataModule(data.images, y[:, cols], split, hp["batch_size"], seed=seed)
            ckdir = out / "checkpoints" / key
            trainer, ckpt_cb = _make_trainer(out, trainer_cfg, key, ckdir, (), verbose)
            # No resume here: drop the per-epoch last.ckpt (weights + Adam state, ~1 s per save).
            trainer.callbacks[:] = [c for c in trainer.callbacks
                                    if not (isinstance(c, ModelCheckpoint) and c is not ckpt_cb)]
            t0 = time.perf_counter()
            fit_interruptible(trainer, module, datamodule=dm)
            best = Path(ckpt_cb.best_model_path) if ckpt_cb.best_model_path else ckdir / "last.ckpt"
            net = _load_net(best, sub, {"dims": 2, "n_input_channels": 3}, device)
            models.setdefault(group, {})[sub.names[0] if group == "single" else "multi"] = net
            score = ckpt_cb.best_model_score
            info[key] = {"best_checkpoint": run_relative(best, out),
                         "best_val_loss": float(score) if score is not None else None,
                         "best_epoch": _best_epoch(out, key),
                         "epochs": int(trainer.current_epoch),
                         "fit_seconds": round(time.perf_counter() - t0, 2),
                         "skipped_steps": int(module.n_skipped_steps)}
    return models, info


def predict_group(nets: dict[str, nn.Module], task: TaskSpec, images: np.ndarray,
                  batch_size: int = 64) -> np.ndarray:
    """Concatenated (N, task.total) outputs of a multi-output net or of the single-output nets."""
    from deeplsm.train import predict_array

    with torch.inference_mode():
        if "multi" in nets:
            return predict_array(nets["multi"], images, batch_size, input_scale=1 / 255).numpy()
        return np.concatenate([predict_array(nets[o.name], images, batch_size, input_scale=1 / 255)
                               .numpy() for o in task], axis=1)


def table3(task: TaskSpec, metrics: dict) -> pd.DataFrame:
    """The Table III equivalent: one row per output, one column per model group (test split)."""
    rows = []
    for spec in task:
        key = TABLE_METRIC[spec.kind]
        row = {"output": spec.name, "kind": spec.kind, "metric": key}
        for group in ("single", "multi"):
            if group in metrics:
                row[group] = metrics[group]["test"][spec.name].get(key)
        rows.append(row)
    return pd.DataFrame(rows)


# --- explanations ---------------------------------------------------------------------------------
class _ImageAsVolume(nn.Module):
    """Presents (N, 3, H, W) images as (N, 1, 3, H, W) volumes to the explain classes, so that a
    (3, w, w) occlusion window is captum's (channels, rows, columns) window, as in the paper."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x[:, 0])


def explain_images(nets: dict[str, nn.Module], task: TaskSpec, images: np.ndarray, *,
                   methods: Sequence[str] = METHODS, window: int, stride: int, nt_samples: int = 10,
                   gs_samples: int = 5, stdevs: float = 0.1, ig_steps: int = 32,
                   random_state: int = 0) -> dict[tuple[str, str], np.ndarray]:
    """Attribution maps of every output, for each image.

    Multi-class outputs are explained for the class the network predicts (its softmax column).
    A map is ``|Σ_channels attribution|``. Each network is explained on its own device; only the
    maps come back to the host.

    Returns
    -------
    dict of (output, method) -> ndarray of shape (n_images, H, W)
    """
    from deeplsm.explain import GradientShapMap, IntegratedGradientsMap, LesionAwareOcclusion

    x_host = torch.from_numpy(images.astype(np.float32) / 255.0)[:, None]  # (n, 1, 3, H, W)
    groups = ([("multi", task)] if "multi" in nets
              else [(o.name, TaskSpec([o])) for o in task])
    res: dict[tuple[str, str], list[np.ndarray]] = {}
    for key, sub in groups:
        model = _ImageAsVolume(nets[key]).eval()
        x = x_host.to(module_device(model))
        with torch.no_grad():
            raw = model(x).cpu().numpy()
        for i in range(len(x)):
            xi = x[i:i + 1]
            targets = []
            for spec in sub:
                col = sub.columns[spec.name]
                targets.append(col[int(np.argmax(raw[i, col]))] if spec.kind == "multiclass" else col[0])
            for method in methods:
                if method == "ig":
                    a = IntegratedGradientsMap(model).attribute_targets(
                        xi, targets=targets, n_steps=ig_steps, internal_batch_size=ig_steps)
                elif method == "gradshap":
                    a = GradientShapMap(model).attribute_targets(
                        xi, targets=targets, n_samples=gs_samples, nt_samples=nt_samples, stdevs=stdevs,
                        nt_type="smoothgrad_sq", batch_size=1, random_state=random_state + i)
                elif method == "occlusion":
                    a = LesionAwareOcclusion(model).attribute_targets(
                        xi, targets=targets, window=(3, window, window), stride=(3, stride, stride),
                        baseline=0.0, batch_size=64)
                else:
                    raise DeepLSMError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
                # (1, n_targets, 1, 3, H, W) -> per target |sum over channels|
                maps = a[0, :, 0].sum(1).abs().cpu().numpy()
                for t, spec in enumerate(sub):
                    res.setdefault((spec.name, method), []).append(maps[t])
    return {k: np.stack(v) for k, v in res.items()}


def localisation(maps: np.ndarray, mask: np.ndarray) -> dict:
    """Localisation of one 2D map against a region with :func:`deeplsm.evaluate.evaluate_map`
    (all pixels, identity grid, so distances are in pixels), plus whether the peak is inside."""
    import nibabel as nib

    from deeplsm.evaluate import evaluate_map

    v = np.asarray(maps, dtype=np.float64)
    m = np.asarray(mask, bool)
    r = evaluate_map(nib.Nifti1Image(v[..., None].astype(np.float32), np.eye(4)),
                     nib.Nifti1Image(m[..., None].astype(np.uint8), np.eye(4)), mask_img="none")
    peaks = np.argwhere(v == v.max())
    peak = np.round(peaks.mean(0)).astype(int)
    return {"pr_auc": r["pr_auc"], "average_precision": r["average_precision"],
            "prevalence": r["prevalence"], "cdc": r["cdc"], "dice_best": r["dice_best"],
            "peak_distance_px": r["peak_distance_mm"], "com_distance_px": r["com_distance_mm"],
            "peak_inside": bool(m[tuple(peak)]) and bool(v.max() > v.min()),
            "peak_row": int(peak[0]), "peak_col": int(peak[1])}


def pick_images(data: ImageSet, split: np.ndarray, n: int, image: str | None = None) -> list[int]:
    """Indices of the images to explain: ``image`` first (an ID), then test images.

    When the set has ground-truth masks (synthetic data), test images whose evidence stands out
    from the zero baseline come first: every binary output 1 (the shape is present) and every
    regression output at least its median (a bright object).
    """
    ids = data.ids
    chosen: list[int] = []
    if image is not None:
        if image not in ids:
            raise DeepLSMError(f"image {image!r} is not in the data set (IDs like {ids[0]!r})")
        chosen.append(ids.index(image))
    test = [i for i in np.flatnonzero(split == "test") if i not in chosen]
    if data.masks is not None:
        lab = data.labels
        binary = [o.name for o in data.task if o.kind == "binary"]
        reg = [o.name for o in data.task if o.kind in ("regression", "regression01")]
        ok_b = (lab[binary].to_numpy() == 1).all(axis=1)
        ok_r = (lab[reg].to_numpy() >= lab[reg].median().to_numpy()).all(axis=1)
        test = sorted(test, key=lambda i: (not ok_b[i], not ok_r[i]))
    chosen.extend(int(i) for i in test[: max(0, n - len(chosen))])
    return chosen


# --- the whole run --------------------------------------------------------------------------------
def run_faces(
    out: str | os.PathLike,
    data: ImageSet,
    *,
    mode: str = "both",
    epochs: int = 10,
    seed: int = 0,
    lr: float = 1e-3,
    batch_size: int = 16,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    weights: str | os.PathLike | None = None,
    methods: Sequence[str] = METHODS,
    n_explain: int = 1,
    image: str | None = None,
    occlusion_window: int | None = None,
    occlusion_stride: int | None = None,
    nt_samples: int = 10,
    gs_samples: int = 5,
    ig_steps: int = 32,
    num_threads: int | None = None,
    device: str | torch.device = "auto",
    overwrite: bool = False,
    verbose: bool = True,
    extra_config: dict | None = None,
) -> Path:
    """Train, evaluate, explain and report, as the paper's 2D part (sections 2.1 and 3.1).

    Parameters
    ----------
    out : path
        Output folder (see the module docstring); an existing non-empty one needs ``overwrite``.
    data : ImageSet
        From :func:`load_utkface`, :func:`load_image_folder` or :func:`make_synthetic_faces`.
    mode : {'multi', 'single', 'both'}, default='both'
        One network with a branch per output, one network per output, or both (compared in
        the Table III equivalent).
    epochs, lr, batch_size : training settings (Adam, one-cycle schedule; the paper: batch 16).
    seed : int, default=0
        Seeds the split, initial weights, batch order and GradientSHAP's noise.
    fractions : (train, val, test), default=(0.6, 0.2, 0.2)
    weights : path or None
        A local torchvision ImageNet ``resnet18`` state dict for the backbone.
    methods : subset of ('ig', 'gradshap', 'occlusion')
    n_explain : int, default=1
        Test images to explain; the figures show the first, localisation scores average over all.
    image : str or None
        ID of the image to explain first.
    occlusion_window, occlusion_stride : int or None
        In pixels; default: the paper's 15 and 8 scaled from 200 pixels to the image size.
    nt_samples : int, default=10
        NoiseTunnel samples for GradientSHAP (smoothgrad_sq, zero baseline).
    gs_samples : int, default=5
        GradientSHAP's own samples per noisy input.
    ig_steps : int, default=32
    num_threads : int or None
        torch CPU threads during the run (restored afterwards).
    device : {'auto', 'cpu', 'cuda', 'cuda:N', 'mps'} or torch.device, default='auto'
        Where the networks train, predict and are explained (checked before anything is written).
    overwrite : bool, default=False
    verbose : bool, default=True
    extra_config : dict or None
        Recorded in ``config.json`` (e.g. the command line).

    Returns
    -------
    Path
        ``out``.
    """
    from deeplsm.train import plot_learning_curves, split_subjects
    from deeplsm.train._run import _write_csv

    out = Path(out)
    dev = resolve_device(device)
    if mode not in MODES:
        raise DeepLSMError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise DeepLSMError(f"unknown method(s) {', '.join(bad) or '(none)'}; expected {', '.join(METHODS)}")
    if epochs < 1 or batch_size < 2 or not lr > 0 or n_explain < 0:
        raise DeepLSMError(f"need epochs >= 1, batch_size >= 2, lr > 0 and n_explain >= 0; got {epochs}, "
                           f"{batch_size}, {lr}, {n_explain}")
    check_output_dir(out, overwrite=overwrite)
    if weights is not None:
        from deeplsm.models import build_resnet18_2d

        build_resnet18_2d(3, weights)  # a missing or mismatched file fails before OUT is made
    from deeplsm.train import check_targets

    task = data.task
    y = check_targets(data.labels, task)
    split = np.array([v for v in split_subjects(data.ids, fractions, seed).values()])
    size = data.image_size[0]
    w0, s0 = occlusion_geometry(size)
    window = int(occlusion_window or w0)
    stride = int(occlusion_stride or min(s0, window))
    if window > min(data.image_size) or stride > window:
        raise DeepLSMError(f"occlusion window {window} and stride {stride} do not fit "
                           f"{data.image_size[0]}×{data.image_size[1]} images "
                           "(need stride <= window <= size)")
    hp = default_hyperparameters(max_epochs=int(epochs), lr=float(lr), batch_size=int(batch_size))
    n_steps = int(epochs) * -(-int((split == "train").sum()) // int(batch_size))
    if hp["scheduler"] == "onecycle" and n_steps < 10:
        # torch's OneCycleLR divides by zero for a handful of steps; a tiny run keeps lr constant.
        hp["scheduler"] = "none"
    explain_idx = pick_images(data, split, n_explain, image) if n_explain else []
    config = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": mode, "seed": int(seed), "task": task.to_list(), "class_names": data.class_names,
        "data": {**data.source, "n_images": len(data)},
        "split": {"fractions": [float(f) for f in fractions],
                  "counts": {s: int((split == s).sum()) for s in ("train", "val", "test")}},
        "hyperparameters": hp, "input_normalisation": "uint8 / 255 -> [0, 1]",
        "backbone": "MONAI ResNet18 (2D, torchvision layout)",
        "weights": str(weights) if weights else None,
        "explanations": {
            "methods": list(methods), "images": [data.ids[i] for i in explain_idx],
            "ig": {"n_steps": ig_steps, "baseline": 0.0},
            "gradshap": {"noise_tunnel": "smoothgrad_sq", "nt_samples": nt_samples,
                         "n_samples": gs_samples, "stdevs": 0.1, "baseline": 0.0},
            "occlusion": {"window": [3, window, window], "stride": [3, stride, stride], "baseline": 0.0},
            "map": "|sum over RGB channels of the attribution|; multiclass outputs explained for "
                   "the predicted class",
        },
        "num_threads": num_threads,
        "device": str(dev),
        **(extra_config or {}),
        "versions": package_versions(),
    }
    t_start = time.perf_counter()
    with atomic_path(out, owns=FACES_LAYOUT, command="faces") as tmp:
        tmp.mkdir()
        write_json(tmp / "config.json", config)
        _write_csv(tmp / "split.csv", pd.DataFrame({"image": data.ids, "split": split}))

    timing: dict[str, float] = {}
    with _threads(num_threads):
        t0 = time.perf_counter()
        models, fit_info = fit_models(out, data, split, mode=mode, hp=hp, seed=seed,
                                      weights=str(weights) if weights else None, verbose=verbose,
                                      device=dev)
        timing["train_seconds"] = round(time.perf_counter() - t0, 2)

        t0 = time.perf_counter()
        raw = {g: predict_group(nets, task, data.images) for g, nets in models.items()}
        metrics = {g: {s: prediction_metrics(task, y[split == s], r[split == s])
                       for s in ("test", "val", "train")} for g, r in raw.items()}
        timing["predict_seconds"] = round(time.perf_counter() - t0, 2)

        t0 = time.perf_counter()
        maps: dict[str, dict[tuple[str, str], np.ndarray]] = {}
        if explain_idx:
            for g, nets in models.items():
                maps[g] = explain_images(nets, task, data.images[explain_idx], methods=methods,
                                         window=window, stride=stride, nt_samples=nt_samples,
                                         gs_samples=gs_samples, ig_steps=ig_steps, random_state=seed)
        timing["explain_seconds"] = round(time.perf_counter() - t0, 2)

    loc_rows = []
    if data.masks is not None and maps:
        for g, gm in maps.items():
            for (name, method), arr in gm.items():
                if name not in data.masks:
                    continue
                for j, idx in enumerate(explain_idx):
                    loc_rows.append({"model": g, "output": name, "method": method,
                                     "image": data.ids[idx], **localisation(arr[j], data.masks[name])})
    loc = pd.DataFrame(loc_rows)

    preds = pd.DataFrame({"image": data.ids, "split": split})
    for i, spec in enumerate(task):
        preds[f"{spec.name}_true"] = y[:, i]
        for g, r in raw.items():
            p = r[:, task.columns[spec.name]]
            preds[f"{g}_{spec.name}_pred"] = p.argmax(1) if spec.kind == "multiclass" else p[:, 0]
    tab = table3(task, metrics)
    _write_csv(out / "predictions.csv", preds)
    _write_csv(out / "table3.csv", tab)
    with atomic_path(out / "table3.md") as tmp:
        tmp.write_text(table3_markdown(tab) + "\n")
    if len(loc):
        _write_csv(out / "localisation.csv", loc)
    if maps:
        arrays = {f"image_{data.ids[i]}": data.images[i] for i in explain_idx}
        for g, gm in maps.items():
            for (name, method), arr in gm.items():
                for j, i in enumerate(explain_idx):
                    arrays[f"{g}/{name}/{method}/{data.ids[i]}"] = arr[j].astype(np.float32)
        with atomic_path(out / "explanations.npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **arrays)

    from deeplsm.faces._figures import plot_explanation_grid, plot_prediction_example
    from deeplsm.faces._report import write_report

    figures: dict[str, Path] = {}
    keys = [k for _, k, _ in model_keys(mode, task)]
    figures["learning_curves"] = plot_learning_curves(out, keys)
    if explain_idx:
        i0 = explain_idx[0]
        img = data.images[i0].transpose(1, 2, 0)
        truth = {o.name: data.label_text(o.name, y[i0, k]) for k, o in enumerate(task)}
        predicted = {g: {o.name: _pred_text(data, o, r[i0]) for o in task} for g, r in raw.items()}
        figures["fig5"] = plot_prediction_example(out / "fig5_predictions.png", img, truth, predicted,
                                                  title=data.ids[i0])
        for g, gm in maps.items():
            grid = {o.name: {m: gm[(o.name, m)][0] for m in methods} for o in task}
            figures[f"fig6_{g}"] = plot_explanation_grid(
                out / f"fig6_{g}.png", img, grid, title=f"{g}-output model: {data.ids[i0]}",
                masks=data.masks, labels=METHOD_LABELS)
    timing["total_seconds"] = round(time.perf_counter() - t_start, 2)

    summary = {
        "mode": mode, "seed": int(seed),
        "n_images": {s: int((split == s).sum()) for s in ("train", "val", "test")},
        "table3": tab.to_dict(orient="records"), "models": metrics, "training": fit_info,
        "timing": timing, "num_threads": torch.get_num_threads() if not num_threads else num_threads,
    }
    if len(loc):
        summary["localisation"] = {
            "per_map": loc.to_dict(orient="records"),
            "mean": loc.groupby(["model", "output", "method"])[
                ["pr_auc", "average_precision", "cdc", "dice_best", "peak_inside"]]
            .mean().reset_index().to_dict(orient="records"),
        }
    write_report(out / "report.html", config=config, summary=summary, table=tab, loc=loc,
                 figures=figures)
    write_json(out / "metrics.json", summary)
    log.info("faces: wrote %s (%.0f s)", out, timing["total_seconds"])
    return out


def _pred_text(data: ImageSet, spec, row: np.ndarray) -> str:
    p = row[data.task.columns[spec.name]]
    if spec.kind == "multiclass":
        k = int(np.argmax(p))
        return f"{data.label_text(spec.name, k)} ({p[k]:.2f})"
    if spec.kind == "binary":
        return f"{data.label_text(spec.name, float(p[0] >= 0.5))} ({p[0]:.2f})"
    return f"{p[0]:.1f}"


def table3_markdown(tab: pd.DataFrame) -> str:
    """The Table III equivalent as a Markdown table."""
    groups = [g for g in ("single", "multi") if g in tab.columns]
    head = "| Output (metric) | " + " | ".join(f"{g}-output" for g in groups) + " |"
    lines = [head, "|" + "---|" * (len(groups) + 1)]
    for _, r in tab.iterrows():
        cells = [_fmt_metric(r["metric"], r[g]) for g in groups]
        lines.append(f"| {r['output']} ({r['metric'].replace('_', ' ')}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fmt_metric(metric: str, v) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "n/a"
    return f"{v:.2f}" if metric == "mse" else f"{100 * v:.2f}%"

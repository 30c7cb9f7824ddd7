"""High-level training API: ``train_run`` writes a self-contained run directory; ``load_trained``
reads it back.

Run directory (the contract that ``deeplsm explain --run RUN`` consumes)::

    RUN/config.json              everything needed to reproduce the run, plus package versions
    RUN/cohort.lesions.npz       the analysis-grid cohort (LesionCohort.save)
    RUN/scores.csv               the targets, aligned with the cohort (subject + one column per output)
    RUN/split.csv                subject, split in {train, val, test}
    RUN/checkpoints/             multi mode: best.ckpt, last.ckpt, complete.json
    RUN/checkpoints/<output>/    single mode: the same, per output
    RUN/logs/<model>/metrics.csv Lightning CSV log (<model> is 'multi' or the output name)
    RUN/metrics.json             test (and val/train) metrics per output; written last
    RUN/predictions.csv          subject, split, <output>_true, <output>_pred per output
    RUN/learning_curves.png

Bad input is rejected before ``RUN`` is created. Once training starts, ``RUN`` exists and holds
``config.json`` and ``last.ckpt`` checkpoints, so a killed run is resumable
(:func:`resume_run`); ``metrics.json`` appears only when the run is complete. Checkpoints are
written to a temporary file and renamed (:class:`AtomicCheckpointIO`), so a kill or a full disk
never leaves a truncated checkpoint in place; a damaged ``last.ckpt`` found on resume restarts
that model, with a warning.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import signal
import threading
import time
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch import nn

from deeplsm._device import resolve_device, trainer_hardware
from deeplsm._outputs import TMP_TAG, check_output_dir
from deeplsm._utils import atomic_path, package_versions, progress_disabled, write_json
from deeplsm.cohort import LesionCohort
from deeplsm.evaluate import prediction_metrics
from deeplsm.exceptions import DeepLSMError
from deeplsm.models import KINDS, REGRESSION_KINDS, MultiOutputNet, OutputSpec, TaskSpec, build_net
from deeplsm.train._data import SPLITS, ArrayDataModule, kfold_split, split_subjects
from deeplsm.train._module import LSMModule, flush_denormal, predict_array
from deeplsm.train._presets import get_preset

log = logging.getLogger("deeplsm")

CONFIG_FORMAT = 1
MODES = ("multi", "single")
RESUME_HINT = ("use --resume to continue the run there, or --overwrite to replace it (only deeplsm's own "
               "files are replaced)")
#: What a run folder holds (its marker owns these, so --overwrite replaces exactly them).
RUN_LAYOUT = ("config.json", "cohort.lesions.npz", "scores.csv", "split.csv", "checkpoints", "logs",
              "metrics.json", "predictions.csv", "learning_curves.png", "maps")


# --- targets ------------------------------------------------------------------------------------
def parse_output(text: str) -> tuple[str, str | None, int | None, float]:
    """``name[:kind[:k]][@weight]`` → (name, kind, n_classes, weight); e.g. ``group:multiclass:4``."""
    weight = 1.0
    if "@" in text:
        text, w = text.rsplit("@", 1)
        try:
            weight = float(w)
        except ValueError:
            raise DeepLSMError(f"output {text!r}: loss weight {w!r} is not a number") from None
    parts = text.split(":")
    name, kind, k = parts[0], None, None
    if len(parts) >= 2:
        kind = parts[1]
        if kind not in KINDS:
            raise DeepLSMError(f"output {name!r}: unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    if len(parts) == 3:
        try:
            k = int(parts[2])
        except ValueError:
            raise DeepLSMError(f"output {name!r}: number of classes {parts[2]!r} is not an integer") from None
    if len(parts) > 3:
        raise DeepLSMError(f"output {text!r}: expected name[:kind[:n_classes]][@weight]")
    return name, kind, k, weight


def resolve_outputs(scores: pd.DataFrame, outputs: Sequence[str | OutputSpec] | None) -> TaskSpec:
    """Turn user output specs into a :class:`TaskSpec`, inferring unspecified kinds from the data.

    A column with every value in [0, 1] is ``regression01`` (the paper's scores); any other is
    ``regression``. Classification kinds are never guessed: name them (``sex:binary``,
    ``group:multiclass``). A multiclass output with no class count gets ``max label + 1``.
    """
    if outputs is None:
        outputs = list(scores.columns)
    specs = []
    for o in outputs:
        if isinstance(o, OutputSpec):
            name, kind, k, w = o.name, o.kind, o.n_classes, o.weight
        else:
            name, kind, k, w = parse_output(str(o))
        if name not in scores.columns:
            raise DeepLSMError(
                f"missing score column {name!r}; available: {', '.join(map(str, scores.columns))}"
            )
        v = scores[name].to_numpy(dtype=float)
        if kind is None:
            kind = "regression01" if (v.min() >= 0 and v.max() <= 1) else "regression"
        if kind == "multiclass" and k is None:
            k = int(v.max()) + 1
        specs.append(OutputSpec(name, kind, k, w))
    return TaskSpec(specs)


def check_targets(scores: pd.DataFrame, task: TaskSpec) -> np.ndarray:
    """Validate the score columns against their kinds; return float32 (n_subjects, n_outputs)."""
    cols = []
    for spec in task:
        if spec.name not in scores.columns:
            raise DeepLSMError(f"missing score column {spec.name!r}")
        v = pd.to_numeric(scores[spec.name], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(v)
        if bad.any():
            raise DeepLSMError(
                f"score column {spec.name!r} has NaN or non-numeric values, e.g. subject "
                f"{scores.index[np.argmax(bad)]}"
            )
        if spec.kind == "regression01" and (v.min() < 0 or v.max() > 1):
            raise DeepLSMError(
                f"score column {spec.name!r} is outside [0, 1] (range {v.min():g} to {v.max():g}); "
                f"use kind 'regression' (e.g. --outputs {spec.name}:regression)"
            )
        if spec.kind == "regression" and v.min() < 0:
            warnings.warn(f"score column {spec.name!r} has negative values; the 'regression' "
                          "output's leaky ReLU favours non-negative targets", UserWarning, stacklevel=3)
        if spec.kind == "binary" and not np.isin(v, (0, 1)).all():
            raise DeepLSMError(f"score column {spec.name!r} must be 0/1 for a binary output")
        if spec.kind == "multiclass":
            k = spec.n_classes
            if not (np.all(v == np.round(v)) and v.min() >= 0 and v.max() < k):
                raise DeepLSMError(
                    f"score column {spec.name!r} must hold integer class labels 0..{k - 1} "
                    f"for a {k}-class output (range {v.min():g} to {v.max():g})"
                )
        cols.append(v)
    return np.stack(cols, axis=1).astype(np.float32)


# --- run directory ------------------------------------------------------------------------------
@dataclass
class TrainedRun:
    """A trained run read back from its directory by :func:`load_trained`.

    Attributes
    ----------
    run_dir : Path
    config : dict
        ``config.json``.
    task : TaskSpec
        All outputs, in column order of the multi-output model.
    models : dict of str to torch.nn.Module
        ``{'multi': net}`` in multi mode, ``{output_name: net}`` in single mode; eval mode,
        best-validation weights, on the device ``load_trained`` was given. Each net takes float32
        (N, 1, X, Y, Z) in {0, 1}.
    cohort : LesionCohort
        The analysis-grid cohort the run was trained on.
    split : dict of str to str
        Subject → ``'train'``, ``'val'`` or ``'test'``.
    scores : pandas.DataFrame
        The targets, indexed by subject.
    """

    run_dir: Path
    config: dict
    task: TaskSpec
    models: dict[str, nn.Module]
    cohort: LesionCohort
    split: dict[str, str]
    scores: pd.DataFrame = field(repr=False)

    def model_for(self, output_name: str) -> tuple[nn.Module, int | list[int]]:
        """The net that predicts ``output_name`` and the captum ``target`` column for it.

        The column is an int, or the list of class columns for a multiclass output.
        """
        spec = self.task.get(output_name)
        if "multi" in self.models:
            return self.models["multi"], self.task.column(spec.name)
        return self.models[spec.name], TaskSpec([spec]).column(spec.name)

    def subjects(self, split: str) -> list[str]:
        """Subject IDs of one split, in cohort order."""
        return [s for s in self.cohort.subject_ids if self.split[s] == split]

    def predict(self, subjects: Sequence[str] | None = None, batch_size: int = 16) -> pd.DataFrame:
        """Predictions (one column per output; multiclass: the arg-max class) for ``subjects``."""
        ids = list(self.cohort.subject_ids if subjects is None else subjects)
        x = self.cohort.subset(ids).data[:, None]
        return _predict_frame(self.models, self.task, x, ids, batch_size)[0]


def load_trained(run_dir: str | os.PathLike, *,
                 map_location: str | torch.device = "cpu") -> TrainedRun:
    """Read a run directory written by :func:`train_run` (best-validation weights, eval mode).

    Parameters
    ----------
    run_dir : path
    map_location : {'cpu', 'auto', 'cuda', 'cuda:N', 'mps'} or torch.device, default='cpu'
        The device the nets are built on and loaded onto (checked first; see
        :func:`deeplsm._device.resolve_device`).
    """
    device = resolve_device(map_location, what="map_location")
    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.json"
    if not cfg_path.is_file():
        raise DeepLSMError(f"not a deeplsm training run (no config.json): {run_dir}")
    config = _read_json(cfg_path, "run configuration")
    task = TaskSpec(config["outputs"])
    cohort = LesionCohort.load(run_dir / "cohort.lesions.npz")
    split = _read_split(run_dir / "split.csv")
    scores = _read_table(run_dir / "scores.csv").set_index("subject")
    models = {}
    for key, sub_task in _model_tasks(config["mode"], task):
        ckpt = _ckpt_dir(run_dir, config["mode"], key) / "best.ckpt"
        if not ckpt.is_file():
            raise DeepLSMError(f"run {run_dir} has no trained model {key!r} ({ckpt} is missing); "
                               "is it complete? Resume it with --resume")
        models[key] = _load_net(ckpt, sub_task, config, device)
    return TrainedRun(run_dir, config, task, models, cohort, split, scores)


def _load_net(ckpt: Path, task: TaskSpec, config: dict,
              device: str | torch.device) -> MultiOutputNet:
    """The best-validation net of ``ckpt`` on ``device`` (a resolved device), in eval mode."""
    device = torch.device(device)
    try:
        state = torch.load(ckpt, map_location=device, weights_only=True)["state_dict"]
    except Exception as err:  # a damaged file raises many types
        raise DeepLSMError(f"{ckpt}: cannot read checkpoint ({type(err).__name__}: {err})") from None
    net = build_net(task, dims=config.get("dims", 3), n_input_channels=config.get("n_input_channels"),
                    **net_options(config))
    net = net.to(device)  # the weights are copied on the device, not into a net on the CPU
    net.load_state_dict({k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")})
    return net.eval()


def net_options(config: dict) -> dict:
    """The head options of :func:`deeplsm.models.build_net` recorded in a run's ``config.json``.

    Runs written before the heads existed (no such keys) get the paper's MLP head.
    """
    hp = config.get("hyperparameters", {})
    opts = {"head": hp.get("head", "mlp"), "head_stage": int(hp.get("head_stage", 4)),
            "output01": hp.get("output01", "sigmoid"), "readout_l1": float(hp.get("readout_l1", 0.0)),
            "readout_positive": bool(hp.get("readout_positive", False)),
            "no_max_pool": bool(hp.get("no_max_pool", False)),
            "subtract_empty": bool(hp.get("subtract_empty", False))}
    if opts["head"] != "mlp":
        opts["input_shape"] = tuple(config["lesions"]["grid"]["shape"])
    return opts


def _model_tasks(mode: str, task: TaskSpec) -> list[tuple[str, TaskSpec]]:
    if mode == "multi":
        return [("multi", task)]
    return [(o.name, TaskSpec([o])) for o in task]


def _ckpt_dir(run_dir: Path, mode: str, key: str) -> Path:
    return run_dir / "checkpoints" if mode == "multi" else run_dir / "checkpoints" / key


def _read_split(path: Path) -> dict[str, str]:
    df = _read_table(path)
    if not {"subject", "split"} <= set(df.columns):
        raise DeepLSMError(f"{path}: damaged split table (needs subject and split columns)")
    return dict(zip(df["subject"].astype(str), df["split"].astype(str)))


# --- training -----------------------------------------------------------------------------------
def train_run(
    out: str | os.PathLike,
    lesions: LesionCohort,
    scores: pd.DataFrame,
    *,
    outputs: Sequence[str | OutputSpec] | None = None,
    mode: str = "multi",
    preset: str = "fast",
    seed: int = 0,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    n_folds: int | None = None,
    fold: int = 0,
    overrides: dict | None = None,
    weights: str | os.PathLike | None = None,
    device: str | torch.device = "auto",
    accelerator: str = "auto",
    devices: str | int | list[int] = "auto",
    strategy: str = "auto",
    tensorboard: bool = False,
    threads: int | None = None,
    overwrite: bool = False,
    verbose: bool = True,
    sources: dict | None = None,
    callbacks: Sequence = (),
) -> Path:
    """Train a multi-output model or one model per output and write a run directory.

    Parameters
    ----------
    out : path
        Run directory to create (see the module docstring for its layout).
    lesions : LesionCohort
        Lesion maps on the analysis grid.
    scores : pandas.DataFrame
        Targets indexed by subject ID (as :func:`deeplsm.cohort.load_scores` returns); every
        lesion subject needs a row.
    outputs : sequence of str or OutputSpec, default=None
        Output columns, in order; strings may be ``name[:kind[:n_classes]][@weight]``. Default:
        every score column, kind inferred (see :func:`resolve_outputs`).
    mode : {'multi', 'single'}, default='multi'
        One network with a branch per output, or one network per output.
    preset : {'fast', 'paper', 'gpu'}, default='fast'
    seed : int, default=0
        Seeds the split, the initial weights and the batch order.
    fractions : (train, val, test), default=(0.6, 0.2, 0.2)
    n_folds : int or None, default=None
        If given, use fold ``fold`` of a seeded k-fold split instead of ``fractions``.
    fold : int, default=0
    overrides : dict or None
        Hyperparameters replacing the preset's (``max_epochs``, ``lr``, ``batch_size``,
        ``precision``, ``channels_last``, ``mixup_alpha``, ``early_stopping_patience``, ...).
    weights : path or None
        Local MedicalNet checkpoint to initialise the backbone.
    device : {'auto', 'cpu', 'cuda', 'cuda:N', 'mps'} or torch.device, default='auto'
        Where to train, predict and evaluate (checked before anything is written; see
        :func:`deeplsm._device.resolve_device`). It becomes Lightning's accelerator and devices.
    accelerator, devices, strategy : Lightning Trainer arguments
        For several GPUs give ``devices`` (a count or GPU indices) and ``strategy='ddp'``; they
        then train on GPUs and ``device`` is where the finished run is evaluated. An
        ``accelerator`` other than ``'auto'`` must agree with ``device``.
    tensorboard : bool, default=False
        Also log to TensorBoard under ``RUN/logs``.
    threads : int or None, default=None
        CPU threads for torch (default: torch's choice, one per core). On a machine whose
        cores are busy with other jobs, 1 thread was ~3x faster than 2 (OpenMP threads
        waiting on each other).
    overwrite : bool, default=False
        Replace an existing ``out``. Otherwise an existing ``out`` is an error.
    verbose : bool, default=True
        Progress bar (hidden when ``CI`` is set).
    sources : dict or None
        Provenance recorded in config.json (e.g. ``{'lesions': path, 'scores': path}``).
    callbacks : sequence
        Extra Lightning callbacks.

    Returns
    -------
    Path
        The run directory.
    """
    out = Path(out)
    dev = resolve_device(device)
    trainer_hardware(dev, accelerator=accelerator, devices=devices)  # conflicts fail at the door
    if tensorboard and not _tensorboard_available():
        raise DeepLSMError("--tensorboard needs the tensorboard package: pip install 'deeplsm[tensorboard]'")
    if mode not in MODES:
        raise DeepLSMError(f"mode must be 'multi' or 'single', got {mode!r}")
    hp = get_preset(preset, overrides)
    check_output_dir(out, overwrite=overwrite, hint=RESUME_HINT)
    ids = lesions.subject_ids
    missing = [s for s in ids if s not in scores.index]
    if missing:
        raise DeepLSMError(f"{len(missing)} of {len(ids)} lesion subjects have no score, "
                           f"e.g. {', '.join(missing[:3])}")
    scores = scores.loc[ids]
    task = resolve_outputs(scores, outputs)
    y = check_targets(scores, task)
    if hp["mixup_alpha"] and any(o.kind not in REGRESSION_KINDS for o in task):
        if (overrides or {}).get("mixup_alpha"):
            raise DeepLSMError("mixup only applies when every output is a regression; "
                               "drop --mixup or the classification outputs")
        hp["mixup_alpha"] = 0.0  # the preset's mixup does not apply to class labels
    if n_folds:
        split = kfold_split(ids, n_folds, fold, seed)
    else:
        split = split_subjects(ids, fractions, seed)
    split_arr = np.array([split[s] for s in ids])
    scale = _regression_scale(task, y[split_arr == "train"])

    config = {
        "format": CONFIG_FORMAT,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": mode,
        "preset": preset,
        "dims": 3,
        "n_input_channels": 1,
        "outputs": task.to_list(),
        "lesions": {
            "source": str((sources or {}).get("lesions", "")) or None,
            "n_subjects": lesions.n_subjects,
            "grid": lesions.grid.to_dict(),
        },
        "scores": {"source": str((sources or {}).get("scores", "")) or None},
        "seed": int(seed),
        "split": {
            "fractions": None if n_folds else [float(f) for f in fractions],
            "n_folds": n_folds, "fold": fold if n_folds else None,
            "counts": {s: int((split_arr == s).sum()) for s in SPLITS},
        },
        "hyperparameters": hp,
        "regression_scale": scale,
        "weights": str(weights) if weights else None,
        "trainer": {"device": str(device) if isinstance(device, torch.device) else device,
                    "device_used": str(dev), "accelerator": accelerator, "devices": devices,
                    "strategy": strategy, "tensorboard": bool(tensorboard), "threads": threads},
        "versions": package_versions(),
    }
    # Stage the inputs of the run and move them into place at once, so a failure here leaves
    # nothing behind; training itself then works in `out` so that it can be resumed.
    with atomic_path(out, owns=RUN_LAYOUT, command="train") as tmp:
        tmp.mkdir()
        write_json(tmp / "config.json", config)
        lesions.save(tmp / "cohort.lesions.npz")
        _write_csv(tmp / "scores.csv", pd.DataFrame(y, columns=task.names).assign(subject=ids)
                   [["subject", *task.names]])
        _write_csv(tmp / "split.csv", pd.DataFrame({"subject": ids, "split": split_arr}))
    return _execute(out, config, lesions.data[:, None], y, ids, split_arr, verbose=verbose,
                    callbacks=callbacks)


def resume_run(out: str | os.PathLike, *, device: str | torch.device | None = None,
               verbose: bool = True, callbacks: Sequence = ()) -> Path:
    """Continue a killed :func:`train_run` from its last checkpoints, with its saved settings.

    ``device`` (default: the run's own ``device`` setting, e.g. ``'auto'``) lets a run started
    on one machine finish on another.
    """
    out = Path(out)
    cfg_path = out / "config.json"
    if not cfg_path.is_file():
        raise DeepLSMError(f"cannot resume: {out} is not a deeplsm training run (no config.json)")
    config = _read_json(cfg_path, "run configuration")
    tr = config.setdefault("trainer", {})
    if device is not None:
        tr["device"] = str(device) if isinstance(device, torch.device) else device
    dev = resolve_device(tr.get("device", "auto"))
    trainer_hardware(dev, accelerator=tr.get("accelerator"), devices=tr.get("devices"))
    cohort = LesionCohort.load(out / "cohort.lesions.npz")
    scores = _read_table(out / "scores.csv").set_index("subject")
    task = TaskSpec(config["outputs"])
    split = _read_split(out / "split.csv")
    ids = cohort.subject_ids
    y = scores.loc[ids, task.names].to_numpy(dtype=np.float32)
    split_arr = np.array([split[s] for s in ids])
    return _execute(out, config, cohort.data[:, None], y, ids, split_arr, verbose=verbose,
                    callbacks=callbacks, resume=True)


def _regression_scale(task: TaskSpec, y_train: np.ndarray) -> list[float]:
    # 'regression' targets are learned on a unit scale: the RMS of the training targets.
    out = []
    for i, spec in enumerate(task):
        rms = float(np.sqrt(np.mean(np.square(y_train[:, i])))) if spec.kind == "regression" else 1.0
        out.append(rms if rms > 0 else 1.0)
    return out


def _execute(out: Path, config: dict, x: np.ndarray, y: np.ndarray, ids: list[str],
             split: np.ndarray, *, verbose: bool, callbacks: Sequence = (), resume: bool = False) -> Path:
    """Fit every model of the run (skipping finished ones), then predict and evaluate."""
    import lightning as L

    task = TaskSpec(config["outputs"])
    hp = config["hyperparameters"]
    t0 = time.perf_counter()
    fit_info = {}
    is_zero = True
    with _quiet_lightning(verbose), flush_denormal(), _torch_threads(config["trainer"].get("threads")):
        for key, sub_task in _model_tasks(config["mode"], task):
            ckdir = _ckpt_dir(out, config["mode"], key)
            done = ckdir / "complete.json"
            if done.is_file():
                try:
                    fit_info[key] = json.loads(done.read_text())
                    continue
                except ValueError:
                    warnings.warn(f"{done} is damaged; checking model {key!r} again from its last "
                                  "checkpoint", UserWarning, stacklevel=2)
                    done.unlink()
            _drop_damaged_checkpoints(out, ckdir, key)
            cols = [task.names.index(n) for n in sub_task.names]
            L.seed_everything(config["seed"], workers=True, verbose=False)
            module = LSMModule(
                outputs=sub_task.to_list(), dims=config.get("dims", 3),
                n_input_channels=config.get("n_input_channels"),
                optimizer=hp["optimizer"], lr=hp["lr"], weight_decay=hp["weight_decay"],
                scheduler=hp["scheduler"], milestones=hp["milestones"], gamma=hp["gamma"],
                mixup_alpha=hp["mixup_alpha"], channels_last=hp["channels_last"],
                regression_scale=[config["regression_scale"][c] for c in cols],
                weights=config.get("weights"), **net_options(config),
                target_means=(np.nanmean(y[split == "train"][:, cols], axis=0).tolist()
                              if hp.get("bias_init", "zero") == "mean" else None),
            )
            dm = ArrayDataModule(x, y[:, cols], split, hp["batch_size"], seed=config["seed"])
            trainer, ckpt_cb = _make_trainer(out, config, key, ckdir, callbacks, verbose)
            last = ckdir / "last.ckpt"
            # Lightning's CSVLogger starts a fresh metrics.csv on resume; keep the earlier epochs.
            log_csv = out / "logs" / key / "metrics.csv"
            earlier = _read_log(log_csv) if last.is_file() else None
            t_fit = time.perf_counter()
            fit_interruptible(trainer, module, datamodule=dm, ckpt_path=str(last) if last.is_file() else None)
            if earlier is not None and log_csv.is_file():
                new = pd.read_csv(log_csv)
                first = new["epoch"].min() if len(new) else np.inf
                merged = pd.concat([earlier[earlier["epoch"] < first], new], ignore_index=True)
                _write_csv(log_csv, merged)
            is_zero = trainer.is_global_zero
            if is_zero:
                best_score = ckpt_cb.best_model_score
                fit_info[key] = {
                    "best_checkpoint": run_relative(ckpt_cb.best_model_path, out)
                    if ckpt_cb.best_model_path else None,
                    "best_val_loss": float(best_score) if best_score is not None else None,
                    "best_epoch": _best_epoch(out, key),
                    "epochs": int(trainer.current_epoch),
                    "fit_seconds": round(time.perf_counter() - t_fit, 2),
                    "skipped_steps": int(module.n_skipped_steps),
                    "resumed": bool(resume and last.is_file()),
                }
                write_json(done, fit_info[key])
    if not is_zero:  # under DDP only rank 0 evaluates and writes
        return out
    run = load_trained(out, map_location=resolve_device(config["trainer"].get("device", "auto")))
    preds, raw = _predict_frame(run.models, task, x, ids, hp["batch_size"])
    metrics = {"mode": config["mode"], "preset": config["preset"], "seed": config["seed"],
               "n_subjects": {s: int((split == s).sum()) for s in SPLITS}}
    for s in ("test", "val", "train"):
        m = split == s
        metrics[s] = prediction_metrics(task, y[m], raw[m])
    metrics["training"] = fit_info
    metrics["total_seconds_this_session"] = round(time.perf_counter() - t0, 2)
    preds.insert(1, "split", split)
    for i, name in enumerate(task.names):
        preds.insert(preds.columns.get_loc(f"{name}_pred"), f"{name}_true", y[:, i])
    _write_csv(out / "predictions.csv", preds)
    plot_learning_curves(out, [k for k, _ in _model_tasks(config["mode"], task)])
    write_json(out / "metrics.json", metrics)
    return out


def _predict_frame(models: dict[str, nn.Module], task: TaskSpec, x: np.ndarray, ids: Sequence[str],
                   batch_size: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Prediction table (subject, <output>_pred [, <output>_p<k>]) and the raw (n, total) outputs."""
    if "multi" in models:
        raw = predict_array(models["multi"], x, batch_size).numpy()
    else:
        raw = np.concatenate([predict_array(models[o.name], x, batch_size).numpy() for o in task], axis=1)
    df = pd.DataFrame({"subject": list(ids)})
    for spec in task:
        if spec.kind == "regression01":  # a linear output is clamped to the valid range here
            raw[:, task.columns[spec.name]] = np.clip(raw[:, task.columns[spec.name]], 0.0, 1.0)
        p = raw[:, task.columns[spec.name]]
        if spec.kind == "multiclass":
            df[f"{spec.name}_pred"] = p.argmax(axis=1)
            for k in range(p.shape[1]):
                df[f"{spec.name}_p{k}"] = p[:, k]
        else:
            df[f"{spec.name}_pred"] = p[:, 0]
    return df, raw


def _make_trainer(out: Path, config: dict, key: str, ckdir: Path, extra: Sequence, verbose: bool):
    import lightning as L
    from lightning.pytorch.callbacks import EarlyStopping, EMAWeightAveraging, ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    hp = config["hyperparameters"]
    tr = config["trainer"]
    accelerator, devices = trainer_hardware(resolve_device(tr.get("device", "auto")),
                                            accelerator=tr.get("accelerator", "auto"),
                                            devices=tr.get("devices", "auto"))
    # best.ckpt holds only the weights (what load_trained needs); last.ckpt holds the optimiser,
    # scheduler and loop state too, for --resume. Saving both in full tripled the I/O per epoch.
    ckpt_cb = ModelCheckpoint(dirpath=ckdir, filename="best", monitor="val_loss", mode="min",
                              save_top_k=1, save_weights_only=True, enable_version_counter=False)
    last_cb = ModelCheckpoint(dirpath=ckdir, filename="last", monitor=None, save_top_k=1,
                              enable_version_counter=False)
    callbacks = [ckpt_cb, last_cb, *extra]
    if hp.get("ema_decay"):  # validation and checkpoints then hold the averaged weights
        callbacks.append(EMAWeightAveraging(decay=float(hp["ema_decay"])))
    if hp.get("early_stopping_patience"):
        callbacks.append(EarlyStopping(monitor="val_loss", mode="min",
                                       patience=int(hp["early_stopping_patience"])))
    loggers = [CSVLogger(save_dir=out, name="logs", version=key)]
    if tr.get("tensorboard"):
        loggers.append(TensorBoardLogger(save_dir=out / "logs", name="tensorboard", version=key))
    trainer = L.Trainer(
        max_epochs=int(hp["max_epochs"]),
        accelerator=accelerator,
        devices=devices,
        strategy=tr.get("strategy", "auto"),
        precision=hp["precision"],
        gradient_clip_val=hp.get("gradient_clip_val"),
        callbacks=callbacks,
        logger=loggers,
        enable_progress_bar=not progress_disabled(verbose),
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
        default_root_dir=out,
        plugins=[AtomicCheckpointIO()],
    )
    return trainer, ckpt_cb


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO, except that a checkpoint is written in full to a temporary file
    beside its target and then renamed onto it: a kill or a full disk never leaves a truncated
    checkpoint in place (the previous one stays)."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError("storage_options is not supported by AtomicCheckpointIO")
        save_atomic(checkpoint, path)


def save_atomic(obj, path: str | os.PathLike) -> None:
    """``torch.save(obj, path)`` through a temporary sibling file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(obj, buf)
    tmp = path.parent / f".{path.name}{TMP_TAG}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        with open(tmp, "wb") as fh:
            fh.write(buf.getbuffer())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def fit_interruptible(trainer, module, **kwargs) -> None:
    """``trainer.fit``, but an interrupted fit raises :class:`KeyboardInterrupt`.

    Lightning catches Ctrl-C itself, ignores SIGINT from then on and calls ``sys.exit(1)``; this
    restores the SIGINT handler and turns that exit back into an interruption, which the CLI
    reports as ``deeplsm: interrupted`` with exit code 130 (143 for SIGTERM).
    """
    main = threading.current_thread() is threading.main_thread()
    before = signal.getsignal(signal.SIGINT) if main else None
    try:
        trainer.fit(module, **kwargs)
    except SystemExit:
        if trainer.interrupted:
            raise KeyboardInterrupt from None
        raise
    finally:
        if main and before is not None:
            signal.signal(signal.SIGINT, before)
    if trainer.interrupted:
        raise KeyboardInterrupt


def run_relative(path: str | os.PathLike, run_dir: str | os.PathLike) -> str:
    """``path`` relative to ``run_dir``; Lightning reports absolute, symlink-resolved paths while
    ``run_dir`` may be relative or pass through a symlink, so both are resolved first."""
    return os.path.relpath(os.path.realpath(path), os.path.realpath(run_dir))


def _checkpoint_readable(path: Path) -> bool:
    try:
        ck = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception:  # a damaged file raises many types
        return False
    return isinstance(ck, dict) and "state_dict" in ck


def _drop_damaged_checkpoints(out: Path, ckdir: Path, key: str) -> None:
    """A damaged ``last.ckpt`` or ``best.ckpt`` (from a kill or a full disk before checkpoints were
    written atomically, or damage since) restarts that model from scratch, with a warning."""
    files = (ckdir / "last.ckpt", ckdir / "best.ckpt")
    damaged = [p for p in files if p.is_file() and not _checkpoint_readable(p)]
    if not damaged:
        return
    warnings.warn(f"{damaged[0]} is damaged (truncated or unreadable); restarting model {key!r} from "
                  "the beginning", UserWarning, stacklevel=3)
    for p in files:
        p.unlink(missing_ok=True)
    shutil.rmtree(out / "logs" / key, ignore_errors=True)


def _read_json(path: Path, what: str) -> dict:
    try:
        body = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise DeepLSMError(f"{path}: damaged {what} ({err})") from None
    if not isinstance(body, dict):
        raise DeepLSMError(f"{path}: damaged {what} (not a JSON object)")
    return body


def _read_log(path: Path) -> pd.DataFrame | None:
    try:
        return pd.read_csv(path) if path.is_file() else None
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError):
        warnings.warn(f"{path} is damaged; the learning curves restart at the resumed epoch",
                      UserWarning, stacklevel=3)
        return None


def _read_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DeepLSMError(f"{path} is missing; the run folder is incomplete")
    try:
        return pd.read_csv(path, dtype={"subject": str})
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise DeepLSMError(f"{path}: cannot read table, it is damaged ({err})") from None


def _tensorboard_available() -> bool:
    import importlib.util

    return any(importlib.util.find_spec(m) is not None for m in ("tensorboard", "tensorboardX"))


@contextlib.contextmanager
def _torch_threads(n: int | None):
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def _quiet_lightning(verbose: bool):
    """Silence Lightning's start-up chatter and its hints that don't apply to in-memory data."""
    names = ("lightning.pytorch", "lightning.fabric", "lightning",
             "lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")
    levels = {n: logging.getLogger(n).level for n in names}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=r".*number of training batches.*")
        warnings.filterwarnings("ignore", message=r".*Checkpoint directory .* exists and is not empty.*")
        warnings.filterwarnings("ignore", message=r".*Experiment logs directory .* exists and is not empty.*")
        warnings.filterwarnings("ignore", message=r".*`isinstance\(treespec, LeafSpec\)` is deprecated.*")
        for n in names:
            logging.getLogger(n).setLevel(logging.INFO if verbose else logging.WARNING)
        try:
            yield
        finally:
            for n, lv in levels.items():
                logging.getLogger(n).setLevel(lv)


def _write_csv(path: Path, df: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.8g")


def read_learning_curves(run_dir: str | os.PathLike, key: str) -> pd.DataFrame:
    """Per-epoch ``train_loss`` and ``val_loss`` from ``RUN/logs/<key>/metrics.csv``."""
    path = Path(run_dir) / "logs" / key / "metrics.csv"
    if not path.is_file():
        return pd.DataFrame(columns=["epoch", "train_loss", "val_loss"])
    df = pd.read_csv(path)
    cols = [c for c in ("train_loss", "val_loss") if c in df.columns]
    return df.groupby("epoch")[cols].last().reset_index()


def _best_epoch(run_dir: Path, key: str) -> int | None:
    df = read_learning_curves(run_dir, key)
    if "val_loss" not in df.columns or df["val_loss"].isna().all():
        return None
    return int(df.loc[df["val_loss"].idxmin(), "epoch"])


def plot_learning_curves(run_dir: str | os.PathLike, keys: Sequence[str]) -> Path:
    """Write ``RUN/learning_curves.png``: training and validation loss per epoch, one panel per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    fig, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.5), squeeze=False)
    for ax, key in zip(axes[0], keys):
        df = read_learning_curves(run_dir, key)
        for col, style in (("train_loss", "-"), ("val_loss", "--")):
            if col in df.columns:
                d = df[["epoch", col]].dropna()
                ax.plot(d["epoch"] + 1, d[col], style, marker=".", label=col.replace("_", " "))
        ax.set_title(key)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.set_yscale("log")
        ax.legend()
    fig.tight_layout()
    path = run_dir / "learning_curves.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path


def remove_run(path: Path) -> None:
    """Delete a run folder that deeplsm wrote (its own files only)."""
    from deeplsm._outputs import remove_output

    remove_output(path)

"""Repeated k-fold cross-validation of the CNN: one run folder per (repeat, fold) and a summary.

Folder written by :func:`train_cv` (``deeplsm train --folds K --repeats R --out DIR``)::

    DIR/cv.json                     the settings (folds, repeats, seed, training options), versions
    DIR/cohort.lesions.npz          the analysis-grid cohort, once
    DIR/scores.csv                  the targets (subject + one column per output)
    DIR/splits.csv                  subject, repeat, fold: the test fold of each subject per repeat
    DIR/repeat-<r>/fold-<f>/        a run folder of :func:`deeplsm.train.train_run` (split.csv,
                                    metrics.json, predictions.csv, checkpoints/best.ckpt, ...)
    DIR/folds.csv                   tidy: repeat, fold, method, score, metric, value, n_train, n_test
    DIR/summary.json                ``cv.<mode>.<score>.{r2_mean, r2_sd, R2_mean, R2_sd, ...}``

Repeat ``r`` uses the seed ``seed + r`` for its partition and for the network's initial weights
and batch order (:func:`deeplsm.train.repeated_kfold_splits`). A killed CV continues with
:func:`resume_cv` (``deeplsm train --resume --out DIR``): finished folds are kept, an interrupted
one resumes from its last checkpoint. Once a fold is finished its ``last.ckpt`` (only needed to
resume it) is deleted; ``best.ckpt`` stays, so every fold folder loads with
:func:`deeplsm.train.load_trained`.
"""

from __future__ import annotations

import gc
import json
import logging
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from deeplsm._device import resolve_device, trainer_hardware
from deeplsm._outputs import check_output_dir, is_deeplsm_dir, remove_output
from deeplsm._utils import atomic_path, package_versions, write_json
from deeplsm.cohort import LesionCohort
from deeplsm.exceptions import DeepLSMError
from deeplsm.models import OutputSpec
from deeplsm.train._data import repeated_kfold_splits
from deeplsm.train._presets import get_preset
from deeplsm.train._run import (
    MODES,
    RESUME_HINT,
    _read_json,
    _read_table,
    _write_csv,
    check_targets,
    resolve_outputs,
    resume_run,
    train_run,
)

log = logging.getLogger("deeplsm")

CV_FORMAT = 1
#: What a CV folder holds (its marker owns these).
CV_LAYOUT = ("cv.json", "cohort.lesions.npz", "scores.csv", "splits.csv", "repeat-*", "folds.csv",
             "summary.json")
#: Columns of the tidy per-fold table (``folds.csv``), in order.
FOLD_COLUMNS = ("repeat", "fold", "method", "score", "metric", "value", "n_train", "n_test")
#: Per-output test metrics of a run's ``metrics.json`` -> the ``metric`` names of ``folds.csv``:
#: ``r2`` is the squared Pearson r (the paper's), ``R2`` scikit-learn's ``r2_score``.
METRIC_NAMES = {"r2_pearson": "r2", "r2_score": "R2", "mse": "mse", "accuracy": "accuracy",
                "balanced_accuracy": "balanced_accuracy"}


def fold_dir(out: str | os.PathLike, repeat: int, fold: int) -> Path:
    """The folder of fold ``fold`` of repeat ``repeat`` under a CV folder."""
    return Path(out) / f"repeat-{repeat}" / f"fold-{fold}"


def splits_table(subject_ids: Sequence[str], n_folds: int, n_repeats: int, seed: int) -> pd.DataFrame:
    """``subject, repeat, fold``: the fold in which each subject is tested, per repeat."""
    rows = [(s, r, f) for r, f, split in repeated_kfold_splits(subject_ids, n_folds, n_repeats, seed)
            for s in subject_ids if split[s] == "test"]
    return pd.DataFrame(rows, columns=["subject", "repeat", "fold"]).sort_values(
        ["repeat", "fold", "subject"], kind="stable").reset_index(drop=True)


def train_cv(
    out: str | os.PathLike,
    lesions: LesionCohort,
    scores: pd.DataFrame,
    *,
    n_folds: int,
    n_repeats: int = 1,
    outputs: Sequence[str | OutputSpec] | None = None,
    mode: str = "multi",
    preset: str = "fast",
    seed: int = 0,
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
    """Repeated k-fold cross-validation: train one run per (repeat, fold); summarise the test folds.

    Each fold's run is :func:`deeplsm.train.train_run` with ``n_folds``, ``fold`` and the seed
    ``seed + repeat``: its test set is that fold, its validation set the next fold (which picks
    the best checkpoint), and it trains on the others. Every subject is tested once per repeat.

    Parameters
    ----------
    out : path
        CV folder to create (see the module docstring for its layout).
    lesions, scores, outputs, mode, preset, overrides, weights, device, accelerator, devices,
    strategy, tensorboard, threads, sources, callbacks
        As for :func:`deeplsm.train.train_run`.
    n_folds : int
        K, at least 3.
    n_repeats : int, default=1
        R; repeat ``r`` partitions the subjects with the seed ``seed + r``.
    seed : int, default=0
    overwrite : bool, default=False
        Replace earlier deeplsm output in ``out`` (only deeplsm's own files).
    verbose : bool, default=True

    Returns
    -------
    Path
        ``out``; ``out/summary.json`` holds the mean and SD of every test metric over the folds.
    """
    out = Path(out)
    dev = resolve_device(device)
    trainer_hardware(dev, accelerator=accelerator, devices=devices)
    if mode not in MODES:
        raise DeepLSMError(f"mode must be 'multi' or 'single', got {mode!r}")
    get_preset(preset, overrides)  # a bad override fails here, before anything is written
    check_output_dir(out, overwrite=overwrite, hint=RESUME_HINT)
    ids = lesions.subject_ids
    missing = [s for s in ids if s not in scores.index]
    if missing:
        raise DeepLSMError(f"{len(missing)} of {len(ids)} lesion subjects have no score, "
                           f"e.g. {', '.join(missing[:3])}")
    scores = scores.loc[ids]
    task = resolve_outputs(scores, outputs)
    y = check_targets(scores, task)
    splits = splits_table(ids, n_folds, n_repeats, seed)  # too few subjects fails here
    config = {
        "format": CV_FORMAT,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "n_folds": int(n_folds), "n_repeats": int(n_repeats), "seed": int(seed),
        "mode": mode, "preset": preset, "outputs": task.to_list(),
        "overrides": dict(overrides or {}),
        "weights": str(weights) if weights else None,
        "trainer": {"device": str(device) if isinstance(device, torch.device) else device,
                    "accelerator": accelerator, "devices": devices, "strategy": strategy,
                    "tensorboard": bool(tensorboard), "threads": threads},
        "sources": {k: str(v) for k, v in (sources or {}).items()},
        "versions": package_versions(),
    }
    with atomic_path(out, owns=CV_LAYOUT, command="train") as tmp:
        tmp.mkdir()
        write_json(tmp / "cv.json", config)
        lesions.save(tmp / "cohort.lesions.npz")
        _write_csv(tmp / "scores.csv", pd.DataFrame(y, columns=task.names).assign(subject=ids)
                   [["subject", *task.names]])
        _write_csv(tmp / "splits.csv", splits)
    return _run_folds(out, config, verbose=verbose, callbacks=callbacks)


def resume_cv(out: str | os.PathLike, *, device: str | torch.device | None = None,
              verbose: bool = True, callbacks: Sequence = ()) -> Path:
    """Continue a killed :func:`train_cv`: finished folds are kept, the others (re)start or resume."""
    out = Path(out)
    if not (out / "cv.json").is_file():
        raise DeepLSMError(f"cannot resume: {out} is not a deeplsm cross-validation folder (no cv.json)")
    config = _read_json(out / "cv.json", "cross-validation settings")
    if device is not None:
        config["trainer"]["device"] = str(device) if isinstance(device, torch.device) else device
    dev = resolve_device(config["trainer"].get("device", "auto"))
    trainer_hardware(dev, accelerator=config["trainer"].get("accelerator", "auto"),
                     devices=config["trainer"].get("devices", "auto"))
    return _run_folds(out, config, verbose=verbose, callbacks=callbacks)


def is_cv_dir(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a CV folder written by :func:`train_cv`."""
    return (Path(path) / "cv.json").is_file()


def _run_folds(out: Path, config: dict, *, verbose: bool, callbacks: Sequence) -> Path:
    cohort = LesionCohort.load(out / "cohort.lesions.npz")
    scores = _read_table(out / "scores.csv").set_index("subject")
    outputs = [OutputSpec.from_dict(d) for d in config["outputs"]]
    tr = config["trainer"]
    k, n_rep = config["n_folds"], config["n_repeats"]
    for r in range(n_rep):
        for f in range(k):
            run = fold_dir(out, r, f)
            if (run / "metrics.json").is_file():
                continue
            if is_deeplsm_dir(run) and any(run.rglob("last.ckpt")):
                log.info("cv repeat %d fold %d: resuming from its last checkpoint", r, f)
                resume_run(run, device=tr.get("device"), verbose=verbose, callbacks=callbacks)
            else:
                if run.exists():
                    remove_output(run)
                log.info("cv repeat %d of %d, fold %d of %d: training", r + 1, n_rep, f + 1, k)
                train_run(run, cohort, scores, outputs=outputs, mode=config["mode"],
                          preset=config["preset"], seed=config["seed"] + r, n_folds=k, fold=f,
                          overrides=config["overrides"] or None, weights=config["weights"],
                          device=tr.get("device", "auto"), accelerator=tr.get("accelerator", "auto"),
                          devices=tr.get("devices", "auto"), strategy=tr.get("strategy", "auto"),
                          tensorboard=tr.get("tensorboard", False), threads=tr.get("threads"),
                          verbose=verbose, sources=config.get("sources"), callbacks=callbacks)
            prune_resume_checkpoints(run)
            # Lightning's trainer and module form reference cycles that hold the fold's tensors;
            # without a collection here memory grew by ~170 MB per fold (120 subjects at 6 mm)
            gc.collect()
    table = pd.DataFrame([row for r in range(n_rep) for f in range(k)
                          for row in run_fold_rows(fold_dir(out, r, f), r, f, config["mode"])],
                         columns=list(FOLD_COLUMNS))
    _write_csv(out / "folds.csv", table)
    write_json(out / "summary.json", {
        "n_folds": k, "n_repeats": n_rep, "seed": config["seed"], "mode": config["mode"],
        "cv": summarise_folds(table), "versions": package_versions()})
    return out


def prune_resume_checkpoints(run: Path) -> int:
    """Delete the ``last.ckpt`` files of a finished run (resume-only); return the bytes freed."""
    freed = 0
    for ckpt in run.rglob("last.ckpt"):
        freed += ckpt.stat().st_size
        ckpt.unlink()
    return freed


def run_fold_rows(run: str | os.PathLike, repeat: int, fold: int, method: str) -> list[dict]:
    """Rows of ``folds.csv`` for one finished fold run: its test metrics per output.

    ``n_train`` counts the subjects the network was fitted on (its training folds; the
    validation fold chose the checkpoint), ``n_test`` the test fold.
    """
    m = json.loads((Path(run) / "metrics.json").read_text())
    n = m["n_subjects"]
    return fold_rows(m["test"], repeat, fold, method, n_train=n["train"], n_test=n["test"])


def fold_rows(test: dict[str, dict], repeat: int, fold: int, method: str, *, n_train: int,
              n_test: int) -> list[dict]:
    """Tidy rows (:data:`FOLD_COLUMNS`) of one method's test metrics ``{score: {metric: value}}``."""
    rows = []
    for score, per in test.items():
        for key, metric in METRIC_NAMES.items():
            if key in per:
                rows.append({"repeat": int(repeat), "fold": int(fold), "method": method,
                             "score": score, "metric": metric, "value": per[key],
                             "n_train": int(n_train), "n_test": int(n_test)})
    return rows


def summarise_folds(table: pd.DataFrame) -> dict[str, dict[str, dict]]:
    """``{method: {score: {<metric>_mean, <metric>_sd, n_folds, ...}}}`` from a ``folds.csv`` table.

    The SD is the sample SD (``ddof=1``) over every (repeat, fold) value; ``None`` with one value.
    A fold where a metric is undefined (r² of a constant prediction) is left out of that
    metric's mean and SD and counted in ``<metric>_undefined``. ``n_folds`` counts every fold.
    """
    out: dict[str, dict[str, dict]] = {}
    if table.empty:
        return out
    for (method, score), grp in table.groupby(["method", "score"], sort=False):
        entry: dict = {}
        for metric, sub in grp.groupby("metric", sort=False):
            v = pd.to_numeric(sub["value"], errors="coerce").to_numpy(dtype=float)
            ok = v[np.isfinite(v)]
            entry[f"{metric}_mean"] = float(ok.mean()) if ok.size else None
            entry[f"{metric}_sd"] = float(ok.std(ddof=1)) if ok.size > 1 else None
            entry[f"{metric}_undefined"] = int(v.size - ok.size)
        entry["n_folds"] = int(grp[["repeat", "fold"]].drop_duplicates().shape[0])
        out.setdefault(str(method), {})[str(score)] = entry
    return out


def cv_summary_line(summary: dict) -> str:
    """``score_a r² 0.81 ± 0.05 (R² 0.74 ± 0.08), ...`` for each method of a ``cv`` summary."""
    parts = []
    for method, per in summary.items():
        for score, m in per.items():
            if m.get("r2_mean") is not None:
                parts.append(f"{method} {score}: r² {m['r2_mean']:.3f} ± {_sd(m.get('r2_sd'))}"
                             f" (R² {_num(m.get('R2_mean'))} ± {_sd(m.get('R2_sd'))})")
            elif m.get("balanced_accuracy_mean") is not None:
                parts.append(f"{method} {score}: bal.acc {m['balanced_accuracy_mean']:.3f} ± "
                             f"{_sd(m.get('balanced_accuracy_sd'))}")
            elif m.get("accuracy_mean") is not None:
                parts.append(f"{method} {score}: acc {m['accuracy_mean']:.3f} ± {_sd(m.get('accuracy_sd'))}")
    return "; ".join(parts)


def _num(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _sd(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"

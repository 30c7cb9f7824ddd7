"""Explain a cohort (any models) or a trained run: per-output group maps for several methods."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from deeplsm._device import accumulation_dtype, module_device, resolve_device
from deeplsm._direction import resolve_directions
from deeplsm._utils import progress_disabled
from deeplsm.exceptions import DeepLSMError
from deeplsm.explain._group import POSITIVE_BY_DEFAULT, read_manifest, save_group_maps
from deeplsm.explain._methods import (
    GradientShapMap,
    IntegratedGradientsMap,
    LesionAwareOcclusion,
    OcclusionMap,
    mm_to_voxels,
)

__all__ = ["METHODS", "SUBJECTS", "explain_cohort", "explain_run"]

log = logging.getLogger("deeplsm")

#: CLI method name -> attribution class. ``occlusion`` is the exact lesion-aware variant;
#: ``occlusion_captum`` runs captum's full sweep (same numbers, much slower).
METHODS = {
    "ig": IntegratedGradientsMap,
    "gradshap": GradientShapMap,
    "occlusion": LesionAwareOcclusion,
    "occlusion_captum": OcclusionMap,
}

#: Which subjects of a run ``explain_run`` sums over.
SUBJECTS = ("test", "trainval", "all")


def _method_kwargs(method: str, params: Mapping) -> dict:
    if method == "ig":
        return {"n_steps": params.get("n_steps", 32),
                "internal_batch_size": params.get("internal_batch_size", 8)}
    if method == "gradshap":
        return {"n_samples": params.get("n_samples", 8), "nt_samples": params.get("nt_samples"),
                "stdevs": params.get("stdevs", 0.1), "random_state": params.get("random_state")}
    return {"window": params.get("window", 8), "stride": params.get("stride", 4),
            "batch_size": params.get("occlusion_batch_size")}


def explain_cohort(
    outputs: Mapping[str, tuple[torch.nn.Module, int]],
    volumes: np.ndarray,
    *,
    methods: Sequence[str] = ("ig", "gradshap", "occlusion"),
    subject_batch: int = 4,
    verbose: bool = True,
    **params,
) -> tuple[dict[tuple[str, str], np.ndarray], dict[str, float]]:
    """Sum per-subject attribution maps over subjects, for each method and output.

    Each network is explained on its own device (move it there first, e.g. with
    ``load_trained(run, map_location='cuda')``): the lesion maps go there batch by batch as
    uint8, attributions are summed there (float64; float32 on Apple MPS) and only the final sums
    come back to the host.

    Parameters
    ----------
    outputs : mapping of output name -> (model, column)
        The network that predicts each output and the column of its output holding it (what
        ``TrainedRun.model_for`` returns). Outputs that share one network are explained together,
        so lesion-aware occlusion needs one sweep per network, not per output.
    volumes : ndarray of shape (N, X, Y, Z) or (N, 1, X, Y, Z)
        Lesion maps (uint8 or float); converted to float32 per batch.
    methods : sequence of {'ig', 'gradshap', 'occlusion', 'occlusion_captum'}
    subject_batch : int, default=4
        Subjects per attribution call (bounds memory).
    verbose : bool, default=True
    **params
        ``n_steps``, ``internal_batch_size`` (IG); ``n_samples``, ``nt_samples``, ``stdevs``,
        ``random_state`` (GradientSHAP); ``window``, ``stride`` (voxels) and
        ``occlusion_batch_size`` (occlusion; default: chosen from the device, see
        :class:`~deeplsm.explain.LesionAwareOcclusion`).

    Returns
    -------
    sums : dict of (method, output) -> ndarray of shape (X, Y, Z), float64
        Sum over subjects (and channels) of the attributions.
    seconds : dict of method -> wall time in seconds
    """
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise DeepLSMError(f"unknown method {bad[0]!r}; choose from {', '.join(METHODS)}")
    if not outputs:
        raise DeepLSMError("no outputs to explain")
    vol = np.asarray(volumes)
    if vol.ndim == 4:
        vol = vol[:, None]
    if vol.ndim != 5 or vol.shape[0] == 0:
        raise DeepLSMError(f"volumes must have shape (N, X, Y, Z) with N >= 1, got {np.shape(volumes)}")
    # group outputs by network
    groups: dict[int, tuple[torch.nn.Module, list[str], list[int]]] = {}
    for name, (model, col) in outputs.items():
        g = groups.setdefault(id(model), (model, [], []))
        g[1].append(name)
        g[2].append(int(col))
    sums = {(m, o): np.zeros(vol.shape[2:], dtype=np.float64) for m in methods for o in outputs}
    seconds: dict[str, float] = {}
    for method in methods:
        t0 = time.perf_counter()
        kwargs = _method_kwargs(method, params)
        for model, names, cols in groups.values():
            explainer = METHODS[method](model)
            device = module_device(model)
            total = torch.zeros((len(names), *vol.shape[2:]), dtype=accumulation_dtype(device),
                                device=device)
            for i in tqdm(range(0, vol.shape[0], subject_batch), desc=f"{method}",
                          disable=progress_disabled(verbose), unit="batch"):
                chunk = np.ascontiguousarray(vol[i:i + subject_batch])
                if chunk.dtype.kind == "f" and chunk.dtype != np.float32:
                    chunk = chunk.astype(np.float32)  # no float64 on the device (MPS has none)
                xb = torch.from_numpy(chunk).to(device)  # uint8 maps travel as bytes
                kw = dict(kwargs)
                if kw.get("random_state") is not None:  # a different, reproducible draw per batch
                    kw["random_state"] = int(kw["random_state"]) + i
                att = explainer.attribute_targets(xb.float(), targets=cols, **kw)  # (B, T, C, X, Y, Z)
                total += att.to(total.dtype).sum(dim=(0, 2))
            host = total.cpu().numpy()
            for k, name in enumerate(names):
                sums[(method, name)] += host[k]
        seconds[method] = time.perf_counter() - t0
        log.info("%s: %d subject(s) in %.1f s", method, vol.shape[0], seconds[method])
    return sums, seconds


def _output_names(task) -> list[str]:
    for attr in ("names", "output_names"):
        names = getattr(task, attr, None)
        if names is not None:
            return list(names() if callable(names) else names)
    return [getattr(o, "name", str(o)) for o in task]


def _parse_size(value, voxel_size) -> tuple[int, int, int]:
    """An int (voxels) or a string ``'8'`` / ``'12mm'``."""
    if isinstance(value, str):
        v = value.strip().lower()
        if v.endswith("mm"):
            try:
                return mm_to_voxels(float(v[:-2]), voxel_size)
            except ValueError:
                raise DeepLSMError(f"cannot read size {value!r}; expected e.g. 8 or 12mm") from None
        try:
            value = int(v)
        except ValueError:
            raise DeepLSMError(f"cannot read size {value!r}; expected e.g. 8 or 12mm") from None
    if isinstance(value, int | np.integer):
        return (int(value),) * 3
    return tuple(int(v) for v in value)


def explain_run(
    run_dir: str | os.PathLike,
    *,
    methods: Sequence[str] = ("ig", "gradshap", "occlusion"),
    subjects: str = "test",
    outputs: Sequence[str] | None = None,
    window: int | str = 8,
    stride: int | str = 4,
    occlusion_positive: bool = False,
    direction: str | Mapping[str, str] | None = None,
    out_dir: str | os.PathLike | None = None,
    max_subjects: int | None = None,
    device: str | torch.device = "auto",
    verbose: bool = True,
    atlas=None,
    **params,
) -> dict[str, dict[str, Path]]:
    """Group maps for every output of a trained run, saved under ``RUN/maps``.

    Parameters
    ----------
    run_dir : path
        A run folder written by ``deeplsm train`` (read with ``deeplsm.train.load_trained``).
    methods : sequence of str, default=('ig', 'gradshap', 'occlusion')
    subjects : {'test', 'trainval', 'all'}, default='test'
        Which subjects of the run's split to explain: the held-out test subjects, the training
        and validation subjects (the ones the network and the classical methods learned
        from), or every subject. A group map describes the trained model, so it may use every
        subject; more subjects give a less noisy map.
    outputs : sequence of str or None
        Output names to explain; default all. A multiclass output is explained per class column,
        as ``{output}_class{k}``.
    window, stride : int or str, default=8, 4
        Occlusion window and stride in voxels, or in mm as ``'12mm'`` (rounded per axis).
    occlusion_positive : bool, default=False
        Keep only the positive part of occlusion group maps (always done for IG and GS).
    direction : str, mapping of output -> str, or None
        Which sign of the attributions is the deficit, for every output or per output (outputs
        not named, and all with ``None``: ``'higher_is_worse'``): ``'higher_is_worse'`` keeps
        the maps as they are, ``'lower_is_worse'`` negates them (damage that lowers the output
        gives negative IG, GradientSHAP and occlusion values), ``'two_sided'`` takes their
        absolute value; then the positive part and normalisation follow. The class columns of
        a multiclass output take its direction. Naming an output the run does not have is an
        error. Recorded per map in ``maps.json``; the raw sums stay unturned.
    out_dir : path or None
        Default ``RUN/maps``.
    max_subjects : int or None
        Explain only the first ``max_subjects`` selected subjects (quick looks).
    device : {'auto', 'cpu', 'cuda', 'cuda:N', 'mps'} or torch.device, default='auto'
        Where the networks are loaded and explained (see :func:`deeplsm._device.resolve_device`);
        checked before anything is read.
    atlas : deeplsm.evaluate.Atlas or None
        Label the cluster tables written next to the maps.
    **params
        Passed to :func:`explain_cohort`.

    Returns
    -------
    dict of method -> output -> path of the normalised map
    """
    try:
        from deeplsm.train import load_trained
    except ImportError as err:  # pragma: no cover - depends on the training stage being installed
        raise DeepLSMError(f"explaining a run needs deeplsm.train.load_trained ({err})") from None
    dev = resolve_device(device)
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DeepLSMError(f"run folder does not exist: {run_dir}")
    run = load_trained(run_dir, map_location=dev)
    read_manifest(Path(out_dir) if out_dir else run_dir / "maps")  # fail before the slow part
    if subjects not in SUBJECTS:
        raise DeepLSMError(f"subjects must be one of {', '.join(SUBJECTS)}, got {subjects!r}")
    cohort = run.cohort
    if subjects != "all":
        wanted = ("test",) if subjects == "test" else ("train", "val")
        ids = [s for s in cohort.subject_ids if run.split.get(s) in wanted]
        if not ids:
            raise DeepLSMError(f"{run_dir}: the split has no {subjects} subjects; use --subjects all")
        cohort = cohort.subset(ids)
    if max_subjects is not None:
        cohort = cohort.subset(list(range(min(max_subjects, cohort.n_subjects))))
    names = _output_names(run.task)
    dirs = resolve_directions(direction, names)  # every output the run has may be named
    if outputs is not None:
        unknown = [o for o in outputs if o not in names]
        if unknown:
            raise DeepLSMError(f"unknown output {unknown[0]!r}; the run has {', '.join(names)}")
        names = list(outputs)
    models = {}
    directions = {}
    for n in names:
        model, col = run.model_for(n)
        if isinstance(col, list | tuple):  # multiclass: one map per class column
            models.update({f"{n}_class{k}": (model, int(c)) for k, c in enumerate(col)})
            directions.update({f"{n}_class{k}": dirs[n] for k in range(len(col))})
        else:
            models[n] = (model, int(col))
            directions[n] = dirs[n]
    w = _parse_size(window, cohort.voxel_size)
    s = _parse_size(stride, cohort.voxel_size)
    sums, seconds = explain_cohort(models, cohort.data, methods=methods, verbose=verbose,
                                   window=w, stride=s, **params)
    positive = dict(POSITIVE_BY_DEFAULT)
    positive["occlusion"] = positive["occlusion_captum"] = bool(occlusion_positive)
    meta = {
        "run": str(run_dir),
        "subjects": subjects,
        "subject_ids": list(cohort.subject_ids),
        "parameters": {"window": list(w), "stride": list(s), **{k: v for k, v in params.items()}},
        "device": str(dev),
        "seconds": seconds,
    }
    return save_group_maps(sums, cohort.affine, Path(out_dir) if out_dir else run_dir / "maps",
                           n_subjects=cohort.n_subjects, positive=positive, directions=directions,
                           metadata=meta, atlas=atlas)

"""Study configuration: one TOML file describing every stage, with defaults and validation."""

from __future__ import annotations

import copy
import os
import tomllib
from pathlib import Path
from typing import Any

from deeplsm.exceptions import DeepLSMError

#: Every key a study understands, with its default. A TOML file overrides any subset.
DEFAULTS: dict[str, dict[str, Any]] = {
    "cohort": {
        "source": "synthetic",  # "synthetic" or a lesion path (folder, glob, table, cache)
        "n_subjects": 822,  # synthetic only
        "voxel_size": 3.3,  # analysis grid (MNI brain box); None with grid="native" keeps it
        "grid": None,  # "paper", "mni", "native" or None
        "threshold": None,
        "seed": 0,
    },
    "scores": {
        "source": "simulate",  # "simulate" or a CSV/TSV path
        "columns": None,  # CSV only: which score columns
        "truth": None,  # CSV only: a ROI label image (label k <-> k-th score) to score maps
        "n_rois": 3,
        "roi_size": 4,  # voxels of the analysis grid (13.2 mm at 3.3 mm, the paper's 8 x 1.67)
        "roi_size_mm": None,
        "min_patients": 10,
        "noise": 0.0,
        "weights": None,  # n_scores x n_rois matrix
        "volume_weight": 0.0,
        "seed": 0,
    },
    "models": {
        "modes": ["multi", "single"],
        "preset": "fast",
        "seed": 0,
        "overrides": {},  # hyperparameters for every model
        "single_overrides": {},  # extra hyperparameters for single-output models
        "weights": None,  # a local MedicalNet checkpoint
        "devices": "auto",
        "strategy": "auto",
        "threads": None,  # torch CPU threads (None: one per core)
    },
    "explain": {
        "methods": ["ig", "gradshap", "occlusion"],
        "subjects": "test",
        "max_subjects": None,  # explain only this many test subjects (time budget)
        "n_steps": 32,  # IG
        "internal_batch_size": 8,
        "n_samples": 8,  # GradientSHAP
        "nt_samples": None,  # NoiseTunnel smoothgrad_sq samples (None: no tunnel)
        "stdevs": 0.1,
        "window": 4,  # occlusion, voxels (or "13mm")
        "stride": 2,
        "occlusion_positive": True,  # positive part, as for IG/GS (zero stays zero)
        "seed": 0,
    },
    "classical": {
        "methods": ["vlsm", "svr"],
        "subjects": "trainval",  # the subjects the CNN learned from (fair), or "all"
        "vlsm_test": "t",
        "volume_correction": "none",
        "svr_volume_correction": "dtlvc",
        "min_subjects": 10,
        "permutations": 1000,
        "svr_permutations": 0,
        "C": 30.0,
        "gamma": 5.0,
        "seed": 0,
    },
}


def _merge(base: dict, override: dict, where: str) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if key not in base:
            raise DeepLSMError(
                f"unknown setting {where}.{key}; known: {', '.join(sorted(base))}"
            )
        out[key] = value
    return out


def make_config(overrides: dict | None = None) -> dict:
    """Defaults with ``overrides`` (a dict shaped like the TOML file) applied and checked."""
    overrides = overrides or {}
    unknown = sorted(set(overrides) - set(DEFAULTS))
    if unknown:
        raise DeepLSMError(f"unknown section [{unknown[0]}]; known: {', '.join(DEFAULTS)}")
    cfg = {sec: _merge(DEFAULTS[sec], overrides.get(sec, {}) or {}, sec) for sec in DEFAULTS}
    _check(cfg)
    return cfg


def load_config(path: str | os.PathLike) -> dict:
    """Read a study TOML file (see ``examples/study.toml``)."""
    p = Path(path)
    if not p.is_file():
        raise DeepLSMError(f"config file does not exist: {p}")
    try:
        raw = tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise DeepLSMError(f"{p}: not valid TOML ({err})") from None
    cfg = make_config(raw)
    # Relative paths in the file are relative to the file.
    for sec, key in (("cohort", "source"), ("scores", "source"), ("scores", "truth"),
                     ("models", "weights")):
        v = cfg[sec][key]
        if isinstance(v, str) and v not in ("synthetic", "simulate") and not Path(v).is_absolute():
            cfg[sec][key] = str((p.parent / v).resolve())
    return cfg


def _check(cfg: dict) -> None:
    modes = cfg["models"]["modes"]
    if isinstance(modes, str):
        cfg["models"]["modes"] = modes = [modes]
    bad = [m for m in modes if m not in ("multi", "single")]
    if bad:
        raise DeepLSMError(f"models.modes: unknown mode {bad[0]!r}; use 'multi' and/or 'single'")
    bad = [m for m in cfg["explain"]["methods"] if m not in ("ig", "gradshap", "occlusion")]
    if bad:
        raise DeepLSMError(f"explain.methods: unknown method {bad[0]!r}; use ig, gradshap, occlusion")
    bad = [m for m in cfg["classical"]["methods"] if m not in ("vlsm", "svr")]
    if bad:
        raise DeepLSMError(f"classical.methods: unknown method {bad[0]!r}; use vlsm, svr")
    if cfg["classical"]["subjects"] not in ("trainval", "all"):
        raise DeepLSMError("classical.subjects must be 'trainval' or 'all'")
    if cfg["explain"]["subjects"] not in ("test", "trainval", "all"):
        raise DeepLSMError("explain.subjects must be 'test', 'trainval' or 'all'")
    if cfg["cohort"]["source"] == "synthetic" and int(cfg["cohort"]["n_subjects"]) < 10:
        raise DeepLSMError("cohort.n_subjects must be at least 10")


def demo_config(*, quick: bool = False, preset: str = "fast") -> dict:
    """The built-in ``deeplsm demo`` configuration.

    The default is tuned to finish within 15 minutes on a 2-core CPU (10.5 min measured; see the
    README for the stage times); ``quick`` is a tiny version for tests; ``preset='paper'`` is the
    paper's scale (1.667 mm grid, 8-voxel ROIs, window 8 / stride 4 occlusion; meant for a GPU).
    """
    if preset == "paper":
        return make_config({
            "cohort": {"grid": "paper", "voxel_size": None},
            "scores": {"roi_size": 8},
            "models": {"preset": "paper"},
            "explain": {"window": 8, "stride": 4, "nt_samples": 10},
        })
    if quick:
        return make_config({
            "cohort": {"n_subjects": 120, "voxel_size": 6.0},
            "scores": {"roi_size": 2, "min_patients": 5},
            "models": {"preset": "readout", "overrides": {"max_epochs": 1, "batch_size": 16}},
            "explain": {"subjects": "trainval", "max_subjects": 4, "n_steps": 4, "n_samples": 2,
                        "window": 2, "stride": 2},
            "classical": {"permutations": 50, "svr_permutations": 0},
        })
    return make_config(DEMO_OVERRIDES)


#: Tuned by measurement for the <= 15 min CPU demo (see README "Measured performance" and the
#: ablation in docs/train.md): a 4 mm grid (37x46x39) with 3-voxel (12 mm) ROIs; the `readout`
#: preset (ResNet10 stem + sparse spatial readout), 24 epochs for the multi-output model (best
#: validation epoch 21 of 24 on the demo's split) and 12 for each single-output model; group
#: maps summed over the first 64 training + validation subjects (the subjects VLSM and SVR-LSM
#: see), with IG at 8 steps.
DEMO_OVERRIDES: dict = {
    "cohort": {"voxel_size": 4.0},
    "scores": {"roi_size": 3},
    "models": {"preset": "readout", "overrides": {"max_epochs": 24}, "single_overrides": {"max_epochs": 12}},
    "explain": {"subjects": "trainval", "max_subjects": 64, "n_steps": 8, "n_samples": 8,
                "window": 3, "stride": 2},
    "classical": {"permutations": 1000, "svr_permutations": 0},
}

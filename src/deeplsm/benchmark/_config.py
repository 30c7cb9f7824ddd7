"""Benchmark configuration: the grid of cells, the lesion sources and the study every cell runs.

A benchmark TOML file has five sections, every key optional (see ``examples/bench.toml``):

``[grid]``     scenarios, n, sources, seeds, noise, volume_weight: the cells are their product.
``[sources]``  label = "synthetic" or a lesion folder / glob / table / ``*.lesions.npz``.
``[pool]``     how each source becomes one analysis-grid pool that cells draw subjects from.
``[cells]``    per-cell rules: ``min_patients`` as a share of N, torch threads per cell.
``[study]``    the study settings every cell shares (sections and keys of ``study.toml``).
"""

from __future__ import annotations

import copy
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deeplsm.exceptions import DeepLSMError
from deeplsm.simulate._scenarios import SCENARIOS
from deeplsm.study import make_config

log = logging.getLogger("deeplsm")

#: The 131 LESYMAP stroke masks, next to the repository (used when present).
LESYMAP_RELATIVE = Path("..") / "shared" / "data" / "lesymap-lesions"

#: Study settings the benchmark sets per cell; a ``[study]`` section must not set them.
CELL_KEYS = {"cohort": None, "scores": ("source", "scenario", "noise", "volume_weight", "seed"),
             "models": ("seed",), "explain": ("seed",), "classical": ("seed",)}

#: The default (CPU) study of every cell, sized so the default grid takes 1-1.5 hours on 2 cores
#: (README "deeplsm benchmark"): 2 scores; the CNNs with the demo's `readout` preset (24 epochs
#: multi-output, 12 per single-output model); IG (the headline attribution: the first method)
#: and occlusion maps summed over the training + validation subjects (the subjects the classical
#: methods are fitted on), as in the demo.
#: ``examples/bench_paper_head.toml`` runs the same grid with the paper's network (`fast`).
DEFAULT_STUDY: dict[str, dict[str, Any]] = {
    "scores": {"n_rois": 2, "roi_size": 2},  # 12 mm cubes on the 6 mm grid
    "models": {"modes": ["multi", "single"], "preset": "readout",
               "overrides": {"max_epochs": 24}, "single_overrides": {"max_epochs": 12}},
    "explain": {"methods": ["ig", "occlusion"], "subjects": "trainval", "max_subjects": None,
                "n_steps": 16, "window": 2, "stride": 2},
    "classical": {"methods": ["vlsm", "svr", "ridge"], "subjects": "trainval", "permutations": 200,
                  "svr_permutations": 0},
}

DEFAULTS: dict[str, dict[str, Any]] = {
    "grid": {
        "scenarios": list(SCENARIOS),
        "n": [100, 200, 400],
        "sources": ["synthetic", "lesymap"],
        "seeds": [0],
        "noise": [0.0],
        "volume_weight": [0.0],
    },
    "sources": {"synthetic": "synthetic", "lesymap": "default"},
    "pool": {
        "voxel_size": 6.0,  # analysis grid of every source: the MNI brain box at this size (mm)
        "grid": None,  # None/"mni" (voxel_size), "paper" (1.667 mm; voxel_size ignored), "native"
        "threshold": None,  # binarise probabilistic masks
        "synthetic_n": None,  # synthetic pool size (None: the largest n of the grid)
        "synthetic_seed": 0,
    },
    "cells": {
        # scores.min_patients (and classical.min_subjects) = max(floor, round(fraction * N)); 0: study's
        "min_patients_fraction": 0.025,
        "min_patients_floor": 3,
        "threads": None,  # torch threads per cell (None: cores // jobs)
    },
    "study": DEFAULT_STUDY,
}


def quick_overrides() -> dict:
    """``--quick``: 4 scenarios at N = 100 on the synthetic source, 1 epoch; minutes on a CPU."""
    return {
        "grid": {"scenarios": ["linear", "and", "or", "tract"], "n": [100], "sources": ["synthetic"],
                 "seeds": [0]},
        "study": {
            "scores": {"n_rois": 2, "roi_size": 2},
            "models": {"overrides": {"max_epochs": 1, "batch_size": 16},
                       "single_overrides": {"max_epochs": 1}},
            "explain": {"methods": ["occlusion"], "max_subjects": 4, "window": 3, "stride": 3},
            "classical": {"methods": ["vlsm", "svr", "ridge"], "permutations": 50, "svr_permutations": 0},
        },
    }


@dataclass(frozen=True)
class Cell:
    """One grid point: a study on ``n`` subjects of ``source`` under ``scenario``."""

    scenario: str
    n: int
    source: str
    seed: int
    noise: float
    volume_weight: float

    @property
    def id(self) -> str:
        return (f"{self.scenario}-n{self.n}-{self.source}-noise{self.noise:g}"
                f"-vol{self.volume_weight:g}-seed{self.seed}")

    def to_dict(self) -> dict:
        return {"scenario": self.scenario, "n": self.n, "source": self.source, "seed": self.seed,
                "noise": self.noise, "volume_weight": self.volume_weight}


def _merge_study(base: dict, override: dict) -> dict:
    """Section by section, key by key; a value (a table such as ``models.overrides`` too) replaces."""
    out = copy.deepcopy(base)
    for sec, values in override.items():
        out[sec] = {**out.get(sec, {}), **copy.deepcopy(values)} if isinstance(values, dict) else values
    return out


def default_lesymap() -> Path | None:
    """``../shared/data/lesymap-lesions`` from the working directory or the source tree, if present."""
    for base in (Path.cwd(), Path(__file__).resolve().parents[3]):
        p = (base / LESYMAP_RELATIVE).resolve()
        if p.is_dir():
            return p
    return None


def make_bench_config(overrides: dict | None = None, *, base: Path | None = None) -> dict:
    """Defaults with ``overrides`` (shaped like the TOML file) applied and checked.

    ``base`` is the folder relative source paths are resolved against (the TOML file's folder).
    """
    overrides = copy.deepcopy(overrides or {})
    unknown = sorted(set(overrides) - set(DEFAULTS))
    if unknown:
        raise DeepLSMError(f"unknown section [{unknown[0]}]; known: {', '.join(DEFAULTS)}")
    cfg: dict[str, Any] = {}
    for sec in ("grid", "pool", "cells"):
        sec_over = overrides.get(sec) or {}
        bad = sorted(set(sec_over) - set(DEFAULTS[sec]))
        if bad:
            raise DeepLSMError(f"unknown setting {sec}.{bad[0]}; known: {', '.join(DEFAULTS[sec])}")
        cfg[sec] = {**copy.deepcopy(DEFAULTS[sec]), **sec_over}
    cfg["sources"] = {**DEFAULTS["sources"], **(overrides.get("sources") or {})}
    for sec, keys in CELL_KEYS.items():
        given = (overrides.get("study") or {}).get(sec) or {}
        clash = sorted(given) if keys is None else sorted(set(given) & set(keys))
        if clash:
            where = "[pool]" if sec == "cohort" else "[grid]"
            raise DeepLSMError(f"study.{sec}.{clash[0]} is set per cell by the benchmark; use {where}")
    cfg["study"] = _merge_study(DEFAULT_STUDY, overrides.get("study") or {})
    _check(cfg, base or Path.cwd())
    return cfg


def _as_list(cfg: dict, key: str) -> list:
    v = cfg["grid"][key]
    v = v if isinstance(v, list) else [v]
    if not v:
        raise DeepLSMError(f"grid.{key} is empty")
    if len(set(map(str, v))) != len(v):
        raise DeepLSMError(f"grid.{key} repeats a value: {v}")
    cfg["grid"][key] = v
    return v


def _check(cfg: dict, base: Path) -> None:
    for s in _as_list(cfg, "scenarios"):
        if s not in SCENARIOS:
            raise DeepLSMError(f"grid.scenarios: unknown scenario {s!r}; use {', '.join(SCENARIOS)}")
    for n in _as_list(cfg, "n"):
        if not isinstance(n, int) or isinstance(n, bool) or n < 20:
            raise DeepLSMError(f"grid.n: every N must be an integer >= 20, got {n!r}")
    for s in _as_list(cfg, "seeds"):
        if not isinstance(s, int) or isinstance(s, bool) or s < 0:
            raise DeepLSMError(f"grid.seeds: every seed must be an integer >= 0, got {s!r}")
    for key in ("noise", "volume_weight"):
        for v in _as_list(cfg, key):
            if not isinstance(v, int | float) or isinstance(v, bool) or (key == "noise" and v < 0):
                raise DeepLSMError(f"grid.{key}: expected numbers{' >= 0' if key == 'noise' else ''}, "
                                   f"got {v!r}")
    sources = _as_list(cfg, "sources")
    resolved: dict[str, str] = {}
    for label in sources:
        if label not in cfg["sources"]:
            raise DeepLSMError(f"grid.sources: {label!r} is not defined in [sources] "
                               f"(defined: {', '.join(cfg['sources'])})")
        if not all(ch.isalnum() or ch in "_." for ch in label):
            raise DeepLSMError(f"source label {label!r}: use letters, digits, '_' and '.' only")
        spec = cfg["sources"][label]
        if not isinstance(spec, str):
            raise DeepLSMError(f"sources.{label}: expected 'synthetic' or a lesion path, got {spec!r}")
        if spec == "synthetic":
            resolved[label] = spec
            continue
        if spec == "default":
            p = default_lesymap()
            if p is None:
                log.warning("benchmark: %s not found; the %r source is left out", LESYMAP_RELATIVE, label)
                continue
            resolved[label] = str(p)
            continue
        p = Path(spec) if Path(spec).is_absolute() else (base / spec)
        if not any(ch in spec for ch in "*?[") and not p.exists():
            raise DeepLSMError(f"sources.{label}: lesion path does not exist: {p}")
        resolved[label] = str(p.resolve()) if p.exists() else str(p)
    if not resolved:
        raise DeepLSMError("grid.sources: no lesion source is available")
    cfg["grid"]["sources"] = [s for s in sources if s in resolved]
    cfg["sources"] = resolved
    pool = cfg["pool"]
    if pool["grid"] not in (None, "paper", "mni", "native"):
        raise DeepLSMError(f"pool.grid must be 'paper', 'mni' or 'native', got {pool['grid']!r}")
    vs = pool["voxel_size"]
    if vs is not None and (isinstance(vs, bool) or not isinstance(vs, int | float) or vs <= 0):
        raise DeepLSMError(f"pool.voxel_size must be a positive number of mm, got {vs!r}")
    if vs is None and pool["grid"] in (None, "mni") and "synthetic" in resolved.values():
        raise DeepLSMError("the synthetic source needs pool.voxel_size or pool.grid = 'paper'")
    c = cfg["cells"]
    if not 0 <= float(c["min_patients_fraction"]) < 1:
        raise DeepLSMError("cells.min_patients_fraction must lie in [0, 1)")
    if int(c["min_patients_floor"]) < 1:
        raise DeepLSMError("cells.min_patients_floor must be at least 1")
    if c["threads"] is not None and int(c["threads"]) < 1:
        raise DeepLSMError("cells.threads must be at least 1")
    if cfg["pool"]["synthetic_n"] is not None and int(cfg["pool"]["synthetic_n"]) < max(cfg["grid"]["n"]):
        raise DeepLSMError("pool.synthetic_n must be at least the largest N of the grid")
    # The shared study settings must make a valid study (checked once, at the door).
    study_config(cfg, Cell(cfg["grid"]["scenarios"][0], cfg["grid"]["n"][0], cfg["grid"]["sources"][0],
                           0, 0.0, 0.0), "subjects.lesions.npz")


def load_bench_config(path: str | os.PathLike) -> dict:
    """Read a benchmark TOML file (see ``examples/bench.toml``); relative paths are relative to it."""
    from deeplsm._utils import read_toml

    return make_bench_config(read_toml(path), base=Path(path).resolve().parent)


def quick_config() -> dict:
    """The built-in ``--quick`` benchmark."""
    return make_bench_config(quick_overrides())


def cells(cfg: dict) -> list[Cell]:
    """Every cell of the grid, in a stable order (scenario, source, N, noise, volume, seed)."""
    g = cfg["grid"]
    return [Cell(sc, int(n), src, int(seed), float(noise), float(vw))
            for sc in g["scenarios"] for src in g["sources"] for n in g["n"]
            for noise in g["noise"] for vw in g["volume_weight"] for seed in g["seeds"]]


def min_patients(cfg: dict, n: int) -> int | None:
    """The cell's ``scores.min_patients``: a share of N with a floor (None: the study's own)."""
    frac = float(cfg["cells"]["min_patients_fraction"])
    if frac == 0:
        return None
    return max(int(cfg["cells"]["min_patients_floor"]), round(frac * n))


def study_config(cfg: dict, cell: Cell, cohort_path: str | os.PathLike, threads: int | None = None) -> dict:
    """The full study configuration of ``cell`` (checked by :func:`deeplsm.study.make_config`)."""
    study = copy.deepcopy(cfg["study"])
    study["cohort"] = {"source": str(cohort_path), "grid": None, "voxel_size": None}
    scores = study.setdefault("scores", {})
    scores.update(scenario=cell.scenario, noise=cell.noise, volume_weight=cell.volume_weight,
                  seed=cell.seed)
    mp = min_patients(cfg, cell.n)
    if mp is not None:
        scores["min_patients"] = mp
        # VLSM and SVR-LSM test voxels lesioned in this many subjects, unless [study] says otherwise.
        study.setdefault("classical", {}).setdefault("min_subjects", mp)
    study.setdefault("models", {})["seed"] = cell.seed
    if threads is not None and study["models"].get("threads") is None:
        study["models"]["threads"] = threads
    study.setdefault("explain", {})["seed"] = cell.seed
    study.setdefault("classical", {})["seed"] = cell.seed
    return make_config(study)

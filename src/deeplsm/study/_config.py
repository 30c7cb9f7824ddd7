"""Study configuration: one TOML file describing every stage, checked against one typed schema.

Adding a setting
----------------
Every setting is ONE line in its section class below, ``name: Type = default  # comment``; for
example ``scenario: Literal["roi", "network"] = "roi"`` in :class:`ScoresSettings`. The type is
the check (``PositiveInt``, ``Int(ge=10)``, ``Float(gt=0)``, ``Literal[...]``, ``X | None``, from
``deeplsm._schema``), :data:`DEFAULTS` and the error messages are derived from it, and the
rest of the code keeps reading plain dicts, ``cfg["section"]["key"]``. A new name in a set of
methods is one more string in that ``Literal``. Checks between settings of one section go in its
``_check`` method (raise ``SettingError``); checks that need the analysis grid go in
:func:`check_grid`.

Every bad value is one line naming the key, the value and the allowed range, e.g.
``models.overrides.max_epochs = -1: must be an integer >= 1``, raised by :func:`make_config`
(and again by ``run_study``, which re-checks the dict it is given) before any stage runs.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_serializer, model_validator

from deeplsm._direction import Direction, spelling
from deeplsm._schema import (
    AnyFloat,
    Describe,
    Int,
    MinSubjects,
    NonEmptyStr,
    NonNegativeFloat,
    NonNegativeInt,
    OneOrMore,
    PathStr,
    PositiveFloat,
    PositiveInt,
    Seed,
    SettingError,
    StrictBool,
    UnitFloat,
    VoxelsOrMm,
    check_model,
)
from deeplsm.classical._common import VOLUME_CORRECTIONS
from deeplsm.classical.vlsm import TESTS as VLSM_TESTS
from deeplsm.cohort import Grid
from deeplsm.exceptions import DeepLSMError
from deeplsm.simulate._scenarios import SCENARIOS
from deeplsm.study._truth import TruthLabels
from deeplsm.train._presets import PRESETS, HyperparameterOverrides


def vlsm_params(c: dict) -> dict:
    """``MassUnivariateLSM`` parameters from the ``classical`` section (seed aside)."""
    return {"test": c["vlsm_test"], "volume_correction": c["volume_correction"],
            "min_subjects": c["min_subjects"], "n_permutations": c["permutations"],
            "correction": "fwe" if c["permutations"] else "fdr"}


def ridge_params(c: dict) -> dict:
    """``RidgeLSM`` parameters from the ``classical`` section (seed aside)."""
    return {"volume_correction": c["volume_correction"], "min_subjects": c["min_subjects"],
            "n_permutations": c["ridge_permutations"]}


def svr_params(c: dict) -> dict:
    """``SVRLSM`` parameters from the ``classical`` section (seed aside)."""
    return {"C": c["C"], "gamma": c["gamma"], "volume_correction": c["svr_volume_correction"],
            "min_subjects": c["min_subjects"], "n_permutations": c["svr_permutations"]}


def _volume_spelling(value: Any) -> Any:
    """svrlsmgui's labels as typed ("Regress on Both"): case, spaces and hyphens are ignored."""
    return re.sub(r"[\s-]+", "_", value.strip().lower()) if isinstance(value, str) else value


#: A lesion-volume control, as LESYMAP or svrlsmgui name it (see ``deeplsm.classical``).
VolumeCorrection = Annotated[Literal[VOLUME_CORRECTIONS], BeforeValidator(_volume_spelling)]
_OneDirection = Annotated[Direction, BeforeValidator(spelling)]
#: A score direction for every score, or a table of them per score (see ``deeplsm._direction``).
DirectionSetting = Annotated[
    _OneDirection | dict[NonEmptyStr, _OneDirection],
    Describe("one of 'higher_is_worse', 'lower_is_worse', 'two_sided', or a table "
             "{score = direction} of them"),
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def _check(self) -> None:
        """Checks between this section's settings (raise ``SettingError``)."""

    @model_validator(mode="after")
    def _run_check(self):
        self._check()
        return self


class CohortSettings(_Section):
    source: PathStr = "synthetic"  # "synthetic" or a lesion path (folder, glob, table, cache)
    n_subjects: Int(ge=10) = 822  # synthetic only
    voxel_size: PositiveFloat | None = 3.3  # mm, MNI brain box; unset with grid "paper"/"native": None
    grid: Literal["paper", "mni", "native"] | None = None  # "native": the lesions' own grid
    threshold: UnitFloat | None = None  # binarise probabilistic maps at >= threshold
    seed: Seed = 0

    @model_validator(mode="before")
    @classmethod
    def _grid_voxel_size(cls, data: Any) -> Any:
        # grid = "paper" alone means the paper's 1.667 mm and "native" the lesions' own voxels,
        # not the default 3.3 mm; an explicit voxel_size still rescales either.
        if isinstance(data, dict) and data.get("grid") in ("paper", "native") and "voxel_size" not in data:
            data = {**data, "voxel_size": None}
        return data

    def _check(self) -> None:
        if self.source == "synthetic" and self.grid == "native":
            raise SettingError("grid", self.grid, "a synthetic cohort has no native grid; use "
                               "'paper', or 'mni' with a voxel_size")
        if self.grid == "mni" and self.voxel_size is None:
            raise SettingError("voxel_size", None, "grid 'mni' needs a voxel size in mm")


class ScoresSettings(_Section):
    source: PathStr = "simulate"  # "simulate" or a CSV/TSV path
    scenario: Literal[SCENARIOS] = "linear"  # linear, mixture, and, or, threshold, tract
    columns: OneOrMore(NonEmptyStr) | None = None  # CSV only: which score columns
    truth: PathStr | None = None  # CSV only: a ROI label image to score maps against
    truth_labels: TruthLabels | None = None  # CSV with truth: {score: label or [labels]}, by name
    n_rois: PositiveInt = 3
    roi_size: PositiveInt = 4  # voxels, smaller than the grid (13.2 mm at 3.3 mm, the paper's 8 x 1.67)
    roi_size_mm: PositiveFloat | None = None
    min_patients: PositiveInt = 10
    noise: NonNegativeFloat = 0.0
    weights: list[list[NonNegativeFloat]] | None = None  # n_scores x n_rois matrix
    volume_weight: AnyFloat = 0.0
    seed: Seed = 0
    direction: DirectionSetting = "higher_is_worse"  # or {score = ...}: which sign of a map is the deficit

    def _check(self) -> None:
        w = self.weights
        if w is not None and (not w or any(len(r) != self.n_rois or sum(r) <= 0 for r in w)):
            raise SettingError("weights", w, f"must be one row per score, each of n_rois = "
                               f"{self.n_rois} numbers >= 0 with a positive sum")


class ModelsSettings(_Section):
    modes: OneOrMore(Literal["multi", "single"]) = ["multi", "single"]
    preset: Literal[tuple(PRESETS)] = "fast"
    seed: Seed = 0
    overrides: HyperparameterOverrides = Field(default_factory=HyperparameterOverrides)  # every model
    single_overrides: HyperparameterOverrides = Field(default_factory=HyperparameterOverrides)
    weights: PathStr | None = None  # a local MedicalNet checkpoint
    device: NonEmptyStr = "auto"  # auto, cpu, cuda, cuda:N or mps: where the CNNs train
    devices: PositiveInt | list[NonNegativeInt] | NonEmptyStr = "auto"
    strategy: NonEmptyStr = "auto"
    threads: PositiveInt | None = None  # torch CPU threads (None: one per core)
    folds: Int(ge=3) | None = None  # repeated k-fold CV of the CNNs, ridge and SVR (None: none)
    repeats: PositiveInt = 1  # with folds: k-fold partitions, repeat r seeded with seed + r
    cv_checkpoints: StrictBool = False  # keep each CV fold's best.ckpt (about 57 MB per network)

    @field_serializer("overrides", "single_overrides")
    def _given(self, value: BaseModel) -> dict:
        return value.model_dump(exclude_unset=True)

    def _check(self) -> None:
        if self.repeats > 1 and self.folds is None:
            raise SettingError("repeats", self.repeats, "repeats the k-fold cross-validation; set "
                               "models.folds too")


class ExplainSettings(_Section):
    methods: OneOrMore(Literal["ig", "gradshap", "occlusion"]) = ["ig", "gradshap", "occlusion"]
    subjects: Literal["test", "trainval", "all"] = "test"
    max_subjects: PositiveInt | None = None  # explain only this many test subjects (time budget)
    n_steps: PositiveInt = 32  # IG
    internal_batch_size: PositiveInt = 8
    n_samples: PositiveInt = 8  # GradientSHAP
    nt_samples: PositiveInt | None = None  # NoiseTunnel smoothgrad_sq samples (None: no tunnel)
    stdevs: NonNegativeFloat = 0.1
    window: VoxelsOrMm = 4  # occlusion, voxels (or "13mm"); at most the grid (checked on it)
    stride: VoxelsOrMm = 2
    occlusion_positive: StrictBool = True  # positive part, as for IG/GS (zero stays zero)
    seed: Seed = 0
    device: NonEmptyStr = "auto"  # auto, cpu, cuda, cuda:N or mps: where the CNNs are explained


class ClassicalSettings(_Section):
    methods: OneOrMore(Literal["vlsm", "svr", "ridge"]) = ["vlsm", "svr", "ridge"]
    subjects: Literal["trainval", "all"] = "trainval"  # the subjects the CNN learned from (fair)
    vlsm_test: Literal[VLSM_TESTS] = "t"
    volume_correction: VolumeCorrection = "none"  # VLSM and ridge
    svr_volume_correction: VolumeCorrection = "dtlvc"
    min_subjects: MinSubjects = 10  # a count, or a fraction of the subjects
    permutations: NonNegativeInt = 1000
    svr_permutations: NonNegativeInt = 0
    ridge_permutations: NonNegativeInt = 0  # the study scores ridge's coefficient map, not its p-values
    C: PositiveFloat = 30.0
    gamma: PositiveFloat = 5.0
    seed: Seed = 0
    tail: Literal["two-sided", "one-sided"] = "two-sided"  # one-sided: towards each score's deficit

    def _check(self) -> None:
        # The estimators' own checks between parameters (e.g. DTLVC needs the regression test).
        from deeplsm.classical import SVRLSM, MassUnivariateLSM, RidgeLSM

        try:
            if "vlsm" in self.methods:
                MassUnivariateLSM(**vlsm_params(self.model_dump()))._check_params(False, True)
            if "svr" in self.methods:
                SVRLSM(**svr_params(self.model_dump()))._check_params()
            if "ridge" in self.methods:
                RidgeLSM(**ridge_params(self.model_dump()))._check_params()
        except DeepLSMError as err:
            raise SettingError("", None, str(err)) from None


class ReportSettings(_Section):
    atlas: PathStr | None = None  # label image (MNI) naming the peaks and regions of the cluster tables
    atlas_labels: PathStr | None = None  # its label table: TSV or CSV with columns index,name

    def _check(self) -> None:
        if (self.atlas is None) != (self.atlas_labels is None):
            raise SettingError("atlas", self.atlas, "report.atlas and report.atlas_labels go together")


class StudySettings(BaseModel):
    """Every section of a study; see each section's class for its settings."""

    model_config = ConfigDict(extra="forbid")

    cohort: CohortSettings = Field(default_factory=CohortSettings)
    scores: ScoresSettings = Field(default_factory=ScoresSettings)
    models: ModelsSettings = Field(default_factory=ModelsSettings)
    explain: ExplainSettings = Field(default_factory=ExplainSettings)
    classical: ClassicalSettings = Field(default_factory=ClassicalSettings)
    report: ReportSettings = Field(default_factory=ReportSettings)


#: Every key a study understands, with its default (derived from :class:`StudySettings`).
DEFAULTS: dict[str, dict[str, Any]] = StudySettings().model_dump()


def make_config(overrides: dict | None = None) -> dict:
    """Defaults with ``overrides`` (a dict shaped like the TOML file) applied and checked.

    Raises :class:`DeepLSMError` with one line naming the first bad key, its value and the
    allowed range. A full configuration (as returned here) passes through unchanged.
    """
    overrides = {} if overrides is None else overrides
    if not isinstance(overrides, dict):
        raise DeepLSMError(f"config must be a dict of sections, got {type(overrides).__name__}")
    unknown = sorted(set(overrides) - set(StudySettings.model_fields))
    if unknown:
        raise DeepLSMError(f"unknown section [{unknown[0]}]; known: {', '.join(DEFAULTS)}")
    raw = {sec: ({} if value is None else value) for sec, value in overrides.items()}
    return check_model(StudySettings, raw).model_dump()


def load_config(path: str | os.PathLike) -> dict:
    """Read a study TOML file (see ``examples/study.toml``)."""
    from deeplsm._utils import read_toml

    p = Path(path)
    cfg = make_config(read_toml(p))
    # Relative paths in the file are relative to the file.
    for sec, key in (("cohort", "source"), ("scores", "source"), ("scores", "truth"),
                     ("models", "weights"), ("report", "atlas"), ("report", "atlas_labels")):
        v = cfg[sec][key]
        if isinstance(v, str) and v not in ("synthetic", "simulate") and not Path(v).is_absolute():
            cfg[sec][key] = str((p.parent / v).resolve())
    return cfg


def analysis_grid(cohort: dict) -> Grid | None:
    """The analysis grid that the ``cohort`` settings fix, or None when it is the lesions' own.

    A synthetic cohort lives on the MNI152 brain box: at ``voxel_size`` mm, or the paper's
    1.667 mm without one (``grid = "paper"`` alone clears the default voxel size).
    """
    from deeplsm.cohort import PAPER_VOXEL_SIZE, mni_brain_grid, resolve_grid

    if cohort["source"] == "synthetic":
        return mni_brain_grid(cohort["voxel_size"] or PAPER_VOXEL_SIZE)
    return resolve_grid(cohort["grid"], cohort["voxel_size"], None)


def check_grid(cfg: dict, grid: Grid) -> None:
    """Checks of settings against the analysis grid: the ROI cube and the occlusion window."""
    s = cfg["scores"]
    if s["source"] == "simulate":
        from deeplsm.simulate import roi_side_voxels

        roi_side_voxels(grid.shape, grid.voxel_size, roi_size=s["roi_size"],
                        roi_size_mm=s["roi_size_mm"], prefix="scores.")
    e = cfg["explain"]
    if cfg["models"]["modes"] and "occlusion" in e["methods"]:
        from deeplsm.explain import mm_to_voxels, occlusion_windows

        sizes = [mm_to_voxels(float(v[:-2]), grid.voxel_size) if isinstance(v, str) else (v,) * 3
                 for v in (e["window"], e["stride"])]
        try:
            occlusion_windows(grid.shape, *sizes)
        except DeepLSMError as err:
            raise DeepLSMError(f"explain.window = {e['window']!r}, explain.stride = {e['stride']!r}: "
                               f"{err} of the {'x'.join(map(str, grid.shape))} analysis grid") from None


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

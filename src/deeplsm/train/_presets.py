"""Training presets: ``paper`` (the paper's settings), ``fast`` (CPU), ``readout`` (the CPU
preset with a spatial readout head, for scores that depend on where the damage is; the demo's) and
``gpu`` (one GPU).

:class:`Hyperparameters` is the one definition of every hyperparameter's type and range: the
presets, ``train_run(overrides=...)``, the study's ``models.overrides`` and the ``deeplsm train``
options are all checked against it. A new hyperparameter is one line there plus its value in
each preset (or in :data:`ARCHITECTURE`, which every preset has unless it sets the key).
"""

from __future__ import annotations

import copy
from typing import Literal

from pydantic import BaseModel, ConfigDict

from deeplsm._schema import (
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    StrictBool,
    check_model,
    partial_model,
)
from deeplsm.exceptions import DeepLSMError

#: Hyperparameters every preset has unless it sets them: the network's head (see
#: :func:`deeplsm.models.build_net`; by default the paper's MLP on pooled features with sigmoid
#: outputs) and an optional exponential moving average of the weights (``ema_decay``, e.g. 0.99;
#: validation, checkpoints and the final model then use the averaged weights).
ARCHITECTURE: dict = {
    "head": "mlp",
    "head_stage": 4,
    "output01": "sigmoid",
    "readout_l1": 0.0,
    "readout_positive": False,
    "no_max_pool": False,
    "subtract_empty": False,
    "ema_decay": None,
    # "mean": spatial/flat heads with a linear output start each [0, 1] score at its training
    # mean instead of 0 (scores near 1 for most subjects, e.g. lower-is-worse accuracies)
    "bias_init": "zero",
}


#: Lightning precisions the training loop is written for (layer4 stays fp32 under 16-bit).
PRECISIONS = ("32-true", "bf16-mixed", "16-mixed")


class Hyperparameters(BaseModel):
    """Types and ranges of the training hyperparameters; every preset sets all of them."""

    model_config = ConfigDict(extra="forbid")

    optimizer: Literal["adam", "adamw", "sgd"]
    lr: PositiveFloat  # peak learning rate for 'onecycle'
    weight_decay: NonNegativeFloat
    scheduler: Literal["onecycle", "step", "cosine", "none"]
    milestones: list[NonNegativeInt]  # epochs at which 'step' multiplies lr by gamma
    gamma: PositiveFloat
    batch_size: PositiveInt
    max_epochs: PositiveInt
    mixup_alpha: NonNegativeFloat  # 0: no mixup
    precision: Literal[PRECISIONS]
    channels_last: StrictBool
    gradient_clip_val: PositiveFloat | None  # None: no clipping
    early_stopping_patience: PositiveInt | None  # None: no early stopping
    # the network (deeplsm.models.build_net) and weight averaging; see ARCHITECTURE
    head: Literal["mlp", "spatial", "flat"]
    head_stage: Literal[0, 1, 2, 3, 4]
    output01: Literal["sigmoid", "linear"]
    readout_l1: NonNegativeFloat
    readout_positive: StrictBool
    no_max_pool: StrictBool
    subtract_empty: StrictBool
    ema_decay: NonNegativeFloat | None  # None: no weight averaging
    bias_init: Literal["zero", "mean"]


#: The overrides a caller may give: any subset of :class:`Hyperparameters`, each checked.
HyperparameterOverrides = partial_model(Hyperparameters, "HyperparameterOverrides")

#: Hyperparameters of each preset. Every key can be overridden (``train_run(..., overrides=)``).
PRESETS: dict[str, dict] = {
    # Section 2.2.2 of the paper: Adam, lr 1e-5 for 100 epochs then 1e-6, batch 4, MSE
    # (the regression01 loss), best validation loss kept. The paper gives no epoch count.
    "paper": {
        "optimizer": "adam",
        "lr": 1e-5,
        "weight_decay": 0.0,
        "scheduler": "step",
        "milestones": [100],
        "gamma": 0.1,
        "batch_size": 4,
        "max_epochs": 200,
        "mixup_alpha": 0.0,
        "precision": "32-true",
        "channels_last": False,
        "gradient_clip_val": None,
        "early_stopping_patience": None,
    },
    # Chosen by measurement on a 2-core CPU (see docs/train.md and benchmarks/bench_train.py):
    # AdamW with a one-cycle schedule reaches the validation plateau in ~10-20 epochs, where the
    # paper's lr of 1e-5 is still far from it after 100.
    "fast": {
        "optimizer": "adamw",
        "lr": 1e-3,
        "weight_decay": 1e-4,
        "scheduler": "onecycle",
        "milestones": [],
        "gamma": 0.1,
        "batch_size": 16,
        "max_epochs": 16,
        # Mixup is exact for the paper's scores, which are linear in the lesion map; it is
        # switched off automatically when an output is binary or multiclass.
        "mixup_alpha": 0.4,
        "precision": "32-true",
        "channels_last": False,
        "gradient_clip_val": 1.0,
        "early_stopping_patience": None,
    },
    # One GPU. NOT measured by this project's sessions (none had a GPU): based on the H100 figures
    # in PITFALLS.md, where the `fast` recipe in bf16 trained the multi-output model at the
    # paper grid (822 subjects) for 30 epochs in 67 s, test r2 0.83 / 0.89 / 0.86, validation
    # loss flat after epoch ~19. The batch of 32 (fast: 16) is an unmeasured guess that keeps a
    # GPU busier; the learning rate stays at fast's 1e-3. layer4 stays fp32 under bf16 and
    # non-finite steps are skipped (LSMModule). `benchmarks/bench_gpu.py` is where to check it.
    "gpu": {
        "optimizer": "adamw",
        "lr": 1e-3,
        "weight_decay": 1e-4,
        "scheduler": "onecycle",
        "milestones": [],
        "gamma": 0.1,
        "batch_size": 32,
        "max_epochs": 30,
        "mixup_alpha": 0.4,
        "precision": "bf16-mixed",
        "channels_last": False,
        "gradient_clip_val": 1.0,
        "early_stopping_patience": None,
    },
    # The `fast` optimiser with a head that knows where the damage is, chosen by the ablation in
    # docs/train.md (benchmarks/bench_ablation.py, the demo's cohort and split): the ResNet10's
    # stem (conv1 + batch norm + ReLU, no max-pool: a 2x coarser grid) read out by a sparse
    # non-negative spatial mask per output times a channel vector, features taken relative to
    # an empty map, and an identity output for [0, 1] scores (clamped only when predicting).
    # Deeper stages (layer1/layer2) and the paper's pooled MLP head were measured and lost.
    "readout": {
        "optimizer": "adamw",
        "lr": 3e-3,
        "weight_decay": 1e-4,
        "scheduler": "onecycle",
        "milestones": [],
        "gamma": 0.1,
        "batch_size": 16,
        "max_epochs": 24,
        "mixup_alpha": 0.4,
        "precision": "32-true",
        "channels_last": False,
        "gradient_clip_val": 1.0,
        "early_stopping_patience": None,
        "head": "spatial",
        "head_stage": 0,
        "output01": "linear",
        "readout_l1": 1e-2,
        "readout_positive": True,
        "no_max_pool": True,
        "subtract_empty": True,
    },
}


def check_overrides(overrides: dict | None, prefix: str = "") -> dict:
    """``overrides`` checked against :class:`Hyperparameters`: known keys, types and ranges.

    ``None`` is a value like any other: it is accepted where the hyperparameter allows it
    (``gradient_clip_val=None`` switches clipping off) and an error elsewhere.
    """
    if overrides is None:
        return {}
    if not isinstance(overrides, dict):
        raise DeepLSMError(f"{prefix or 'overrides'} must be a dict of hyperparameters, got "
                           f"{type(overrides).__name__}")
    model = check_model(HyperparameterOverrides, overrides, prefix=prefix, unknown="hyperparameter")
    return model.model_dump(exclude_unset=True)


def get_preset(name: str, overrides: dict | None = None) -> dict:
    """The hyperparameters of preset ``name`` with ``overrides`` applied (see :func:`check_overrides`).

    Examples
    --------
    >>> get_preset("fast", {"max_epochs": 3, "gradient_clip_val": None})["gradient_clip_val"] is None
    True
    """
    if name not in PRESETS:
        raise DeepLSMError(f"unknown preset {name!r}; expected one of {', '.join(PRESETS)}")
    return {**copy.deepcopy(ARCHITECTURE), **copy.deepcopy(PRESETS[name]), **check_overrides(overrides)}

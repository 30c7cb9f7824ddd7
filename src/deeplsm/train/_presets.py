"""Training presets: ``paper`` (the paper's settings, for GPU-scale runs), ``fast`` (CPU) and
``readout`` (the CPU preset with a spatial readout head, for scores that depend on where the
damage is)."""

from __future__ import annotations

import copy

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
}

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


def get_preset(name: str, overrides: dict | None = None) -> dict:
    """The hyperparameters of preset ``name`` with ``overrides`` applied."""
    if name not in PRESETS:
        raise DeepLSMError(f"unknown preset {name!r}; expected one of {', '.join(PRESETS)}")
    hp = copy.deepcopy({**ARCHITECTURE, **PRESETS[name]})
    for k, v in (overrides or {}).items():
        if k not in hp:
            raise DeepLSMError(f"unknown hyperparameter {k!r}; known: {', '.join(hp)}")
        if v is not None:
            hp[k] = v
    return hp

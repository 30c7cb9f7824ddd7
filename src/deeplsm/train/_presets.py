"""Training presets: ``paper`` (the paper's settings, for GPU-scale runs) and ``fast`` (CPU)."""

from __future__ import annotations

import copy

from deeplsm.exceptions import DeepLSMError

#: The network's head, shared by every preset unless the preset sets it (see
#: :func:`deeplsm.models.build_net`): the paper's MLP on pooled features with sigmoid outputs.
ARCHITECTURE: dict = {
    "head": "mlp",
    "head_stage": 4,
    "output01": "sigmoid",
    "readout_l1": 0.0,
    "no_max_pool": False,
    "subtract_empty": False,
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

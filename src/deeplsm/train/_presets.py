"""Training presets: ``paper`` (the paper's settings), ``fast`` (CPU) and ``gpu`` (one GPU)."""

from __future__ import annotations

import copy

from deeplsm.exceptions import DeepLSMError

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
}


def get_preset(name: str, overrides: dict | None = None) -> dict:
    """The hyperparameters of preset ``name`` with ``overrides`` applied."""
    if name not in PRESETS:
        raise DeepLSMError(f"unknown preset {name!r}; expected one of {', '.join(PRESETS)}")
    hp = copy.deepcopy(PRESETS[name])
    for k, v in (overrides or {}).items():
        if k not in hp:
            raise DeepLSMError(f"unknown hyperparameter {k!r}; known: {', '.join(hp)}")
        if v is not None:
            hp[k] = v
    return hp

"""Training with PyTorch Lightning (the only subpackage that imports lightning).

- :func:`train_run` writes a self-contained run directory; :func:`resume_run` continues a
  killed one; :func:`load_trained` reads it back as a :class:`TrainedRun`.
- :class:`LSMModule`, :class:`ArrayDataModule`: the Lightning pieces, input-agnostic (3D lesion
  maps or 2D images as (N, C, ...) arrays).
"""

from deeplsm.train._data import ArrayDataModule, kfold_split, split_subjects
from deeplsm.train._module import LSMModule, predict_array
from deeplsm.train._presets import PRESETS, get_preset
from deeplsm.train._run import (
    TrainedRun,
    check_targets,
    load_trained,
    plot_learning_curves,
    resolve_outputs,
    resume_run,
    train_run,
)

__all__ = [
    "PRESETS",
    "ArrayDataModule",
    "LSMModule",
    "TrainedRun",
    "check_targets",
    "get_preset",
    "kfold_split",
    "load_trained",
    "plot_learning_curves",
    "predict_array",
    "resolve_outputs",
    "resume_run",
    "split_subjects",
    "train_run",
]

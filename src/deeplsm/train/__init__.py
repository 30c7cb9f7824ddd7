"""Training with PyTorch Lightning (the only subpackage that imports lightning).

- :func:`train_run` writes a self-contained run directory; :func:`resume_run` continues a
  killed one; :func:`load_trained` reads it back as a :class:`TrainedRun`.
- :func:`train_cv` runs a repeated k-fold cross-validation (one run folder per repeat and fold)
  and summarises the test folds; :func:`resume_cv` continues a killed one.
- :class:`LSMModule`, :class:`ArrayDataModule`: the Lightning pieces, input-agnostic (3D lesion
  maps or 2D images as (N, C, ...) arrays).
"""

from deeplsm.train._cv import (
    FOLD_COLUMNS,
    fold_rows,
    is_cv_dir,
    resume_cv,
    summarise_folds,
    train_cv,
)
from deeplsm.train._data import ArrayDataModule, kfold_split, repeated_kfold_splits, split_subjects
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
    "FOLD_COLUMNS",
    "PRESETS",
    "ArrayDataModule",
    "LSMModule",
    "TrainedRun",
    "check_targets",
    "fold_rows",
    "get_preset",
    "is_cv_dir",
    "kfold_split",
    "load_trained",
    "plot_learning_curves",
    "predict_array",
    "repeated_kfold_splits",
    "resolve_outputs",
    "resume_cv",
    "resume_run",
    "split_subjects",
    "summarise_folds",
    "train_cv",
    "train_run",
]

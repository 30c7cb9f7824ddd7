"""The in-memory 2D image set every loader returns, and the paper's face task."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from deeplsm.exceptions import DeepLSMError
from deeplsm.models import OutputSpec, TaskSpec

SEX_NAMES = ("male", "female")
#: UTKFace race codes 0..4.
RACE_NAMES = ("White", "Black", "Asian", "Indian", "Others")


def face_task(n_ethnicities: int = 4) -> TaskSpec:
    """The paper's Table I: age (regression, leaky ReLU, MSE), sex (binary, sigmoid, BCE),
    ethnicity (multi-class, softmax, CE).

    Examples
    --------
    >>> face_task().columns
    {'age': [0], 'sex': [1], 'ethnicity': [2, 3, 4, 5]}
    """
    return TaskSpec([OutputSpec("age", "regression"), OutputSpec("sex", "binary"),
                     OutputSpec("ethnicity", "multiclass", n_classes=n_ethnicities)])


@dataclass
class ImageSet:
    """2D images with one label column per output.

    Attributes
    ----------
    images : ndarray of uint8, shape (n_images, 3, height, width)
        RGB in 0..255; the networks see ``images / 255`` (the paper's [0, 1] normalisation).
    labels : pandas.DataFrame
        Indexed by image ID (unique strings), one numeric column per output of ``task``
        (class numbers for classification outputs), in image order.
    task : TaskSpec
        The outputs to predict.
    class_names : dict of str to list of str
        Names of the classes of each classification output.
    masks : dict of str to ndarray of bool, shape (height, width), or None
        Ground-truth region of each output (synthetic sets only).
    source : dict
        Provenance: loader, path, how many files were found and skipped.
    """

    images: np.ndarray
    labels: pd.DataFrame
    task: TaskSpec
    class_names: dict[str, list[str]] = field(default_factory=dict)
    masks: dict[str, np.ndarray] | None = None
    source: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        x = self.images
        if not isinstance(x, np.ndarray) or x.ndim != 4 or x.shape[1] != 3 or x.dtype != np.uint8:
            raise DeepLSMError(
                "images must be a uint8 array of shape (n, 3, height, width), got "
                f"{getattr(x, 'dtype', type(x).__name__)} {getattr(x, 'shape', '')}"
            )
        if len(self.labels) != len(x):
            raise DeepLSMError(f"{len(x)} images but {len(self.labels)} label rows")
        if not self.labels.index.is_unique:
            raise DeepLSMError("image IDs must be unique")
        missing = [n for n in self.task.names if n not in self.labels.columns]
        if missing:
            raise DeepLSMError(f"labels lack the output column(s) {', '.join(missing)}")
        if self.masks is not None:
            for name, m in self.masks.items():
                if m.shape != x.shape[2:]:
                    raise DeepLSMError(f"mask {name!r} has shape {m.shape}, images are {x.shape[2:]}")

    @property
    def ids(self) -> list[str]:
        return [str(i) for i in self.labels.index]

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.images.shape[2]), int(self.images.shape[3])

    def __len__(self) -> int:
        return len(self.images)

    def label_text(self, name: str, value: float) -> str:
        """A label value as text: the class name, or the number."""
        names = self.class_names.get(name)
        if names is not None:
            k = round(float(value))
            return names[k] if 0 <= k < len(names) else str(k)
        return f"{float(value):.1f}"

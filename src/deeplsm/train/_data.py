"""In-memory data: seeded splits, a uint8 dataset and a Lightning DataModule.

The lesion stack stays uint8 in memory (822 subjects at the paper grid are ~0.7 GB) and becomes
float32 per batch inside the LightningModule. Nothing here knows whether the inputs are 3D
lesion maps or 2D images: inputs are arrays of shape (N, C, ...).
"""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from deeplsm._utils import check_random_state
from deeplsm.exceptions import DeepLSMError

SPLITS = ("train", "val", "test")
#: Minimum subjects per split: Pearson's r needs 2 points and BatchNorm needs batches of 2.
MIN_PER_SPLIT = 2


def split_subjects(
    subject_ids: Sequence[str],
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    random_state: int | np.random.Generator | None = None,
) -> dict[str, str]:
    """Randomly assign subjects to train/val/test, as the paper's 60/20/20 split.

    Parameters
    ----------
    subject_ids : sequence of str
    fractions : (train, val, test), default=(0.6, 0.2, 0.2)
        Must sum to 1. Validation and test sizes are rounded; train gets the rest.
    random_state : int, Generator or None
        The same seed gives the same split.

    Returns
    -------
    dict
        Subject → ``'train'``, ``'val'`` or ``'test'``, in the order of ``subject_ids``.

    Examples
    --------
    >>> s = split_subjects([f"s{i}" for i in range(10)], random_state=0)
    >>> sorted(s.values()).count("train")
    6
    """
    ids = [str(s) for s in subject_ids]
    n_train, n_val, _ = split_sizes(len(ids), fractions)
    perm = check_random_state(random_state).permutation(len(ids))
    labels = np.empty(len(ids), dtype=object)
    labels[perm[:n_train]] = "train"
    labels[perm[n_train:n_train + n_val]] = "val"
    labels[perm[n_train + n_val:]] = "test"
    return dict(zip(ids, labels.tolist()))


def split_sizes(n: int, fractions: Sequence[float]) -> tuple[int, int, int]:
    fr = [float(f) for f in fractions]
    if len(fr) != 3 or any(f < 0 for f in fr) or abs(sum(fr) - 1) > 1e-6:
        raise DeepLSMError(f"split fractions must be three non-negative numbers summing to 1, got {fr}")
    n_val, n_test = round(n * fr[1]), round(n * fr[2])
    n_train = n - n_val - n_test
    if min(n_train, n_val, n_test) < MIN_PER_SPLIT:
        raise DeepLSMError(
            f"too few subjects to split: {n} subjects give {n_train}/{n_val}/{n_test} "
            f"train/val/test; each split needs at least {MIN_PER_SPLIT}"
        )
    return n_train, n_val, n_test


def kfold_split(
    subject_ids: Sequence[str],
    n_folds: int,
    fold: int,
    random_state: int | np.random.Generator | None = None,
) -> dict[str, str]:
    """Fold ``fold`` of a seeded k-fold split: that fold is the test set, the next fold (cyclically)
    is the validation set and the other folds train.

    All folds of one seed partition the subjects, so every subject is tested exactly once.
    """
    ids = [str(s) for s in subject_ids]
    if n_folds < 3:
        raise DeepLSMError(f"k-fold needs at least 3 folds (train, val, test), got {n_folds}")
    if not 0 <= fold < n_folds:
        raise DeepLSMError(f"fold must be in 0..{n_folds - 1}, got {fold}")
    if len(ids) < n_folds * MIN_PER_SPLIT:
        raise DeepLSMError(
            f"too few subjects to split: {len(ids)} subjects for {n_folds} folds; "
            f"need at least {n_folds * MIN_PER_SPLIT}"
        )
    perm = check_random_state(random_state).permutation(len(ids))
    folds = np.array_split(perm, n_folds)
    labels = np.full(len(ids), "train", dtype=object)
    labels[folds[fold]] = "test"
    labels[folds[(fold + 1) % n_folds]] = "val"
    return dict(zip(ids, labels.tolist()))


def repeated_kfold_splits(
    subject_ids: Sequence[str],
    n_folds: int,
    n_repeats: int = 1,
    random_state: int = 0,
) -> list[tuple[int, int, dict[str, str]]]:
    """Every split of a seeded, repeated k-fold cross-validation.

    Repeat ``r`` partitions the subjects with the seed ``random_state + r``; within it, fold
    ``f`` is :func:`kfold_split` ``(subject_ids, n_folds, f, random_state + r)``: that fold is
    the test set, the next fold (cyclically) the validation set, the others train. So every
    subject is tested exactly once per repeat, and ``deeplsm train --folds K --fold I --seed S``
    trains exactly fold ``I`` of repeat 0.

    Parameters
    ----------
    subject_ids : sequence of str
    n_folds : int
        At least 3 (train, validation and test folds).
    n_repeats : int, default=1
    random_state : int, default=0
        Seed of repeat 0.

    Returns
    -------
    list of (repeat, fold, split)
        ``split`` maps subject -> ``'train'``, ``'val'`` or ``'test'``, in the order of
        ``subject_ids``; repeats then folds, in order.

    Examples
    --------
    >>> ids = [f"s{i}" for i in range(9)]
    >>> folds = repeated_kfold_splits(ids, 3, n_repeats=2, random_state=0)
    >>> len(folds), sorted(sum(v == "test" for v in s.values()) for _, _, s in folds)
    (6, [3, 3, 3, 3, 3, 3])
    """
    if isinstance(n_repeats, bool) or not isinstance(n_repeats, int | np.integer) or n_repeats < 1:
        raise DeepLSMError(f"repeats must be an integer >= 1, got {n_repeats!r}")
    if isinstance(random_state, bool) or not isinstance(random_state, int | np.integer) or random_state < 0:
        raise DeepLSMError(f"the seed of a repeated k-fold split must be an integer >= 0, "
                           f"got {random_state!r}")
    return [(r, f, kfold_split(subject_ids, n_folds, f, int(random_state) + r))
            for r in range(int(n_repeats)) for f in range(int(n_folds))]


class ArrayDataset(Dataset):
    """Items ``(x[i], y[i])`` as tensors; ``x`` keeps its dtype (uint8), so no copy is made."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        if len(x) != len(y):
            raise DeepLSMError(f"{len(x)} inputs but {len(y)} targets")
        self.x = x
        self.y = np.asarray(y, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(np.ascontiguousarray(self.x[i])), torch.from_numpy(self.y[i])


class ArrayDataModule(L.LightningDataModule):
    """Train/val/test loaders over in-memory arrays.

    Parameters
    ----------
    x : ndarray of shape (N, C, ...)
        Inputs, usually uint8; converted to float per batch by the LightningModule.
    y : ndarray of shape (N, n_targets)
        One column per output (class labels as numbers for classification outputs).
    split : sequence of str of length N
        ``'train'``, ``'val'`` or ``'test'`` per row.
    batch_size : int
    seed : int
        Seeds the training shuffle.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, split: Sequence[str], batch_size: int,
                 seed: int = 0) -> None:
        super().__init__()
        split = np.asarray(split)
        self.index = {s: np.flatnonzero(split == s) for s in SPLITS}
        self.x, self.y = x, np.asarray(y, dtype=np.float32)
        self.batch_size = int(batch_size)
        self.seed = int(seed)

    def _loader(self, which: str, shuffle: bool) -> DataLoader:
        idx = self.index[which]
        ds = ArrayDataset(_Take(self.x, idx), self.y[idx])
        # A training batch of one sample breaks BatchNorm; drop it when the remainder is 1.
        drop_last = shuffle and len(idx) % self.batch_size == 1
        gen = torch.Generator().manual_seed(self.seed) if shuffle else None
        # num_workers=0: the data are in memory and every core is busy with the convolutions.
        return DataLoader(ds, batch_size=self.batch_size, shuffle=shuffle, drop_last=drop_last,
                          generator=gen, num_workers=0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)


class _Take:
    """A lazy row selection ``x[idx]`` that does not copy the whole subset."""

    def __init__(self, x: np.ndarray, idx: np.ndarray) -> None:
        self.x, self.idx = x, idx

    def __len__(self) -> int:
        return len(self.idx)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.x[self.idx[i]]

"""Is a map in MNI space? Headers, orientations and the MNI152 brain mask's coverage."""

from __future__ import annotations

import functools
import zlib
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np

from deeplsm.exceptions import DeepLSMError

#: A map is taken to lie in MNI space when its field of view holds at least this fraction of
#: the MNI152 brain mask.
MIN_MNI_COVERAGE = 0.5


@functools.lru_cache(maxsize=1)
def _mni_brain_points() -> np.ndarray:
    """World coordinates (mm) of every second voxel of nilearn's 1 mm MNI152 brain mask, (4, N)."""
    from nilearn.datasets import load_mni152_brain_mask

    mask = load_mni152_brain_mask(resolution=1)
    idx = np.argwhere(np.asarray(mask.dataobj)[::2, ::2, ::2] > 0) * 2
    return mask.affine @ np.c_[idx, np.ones(len(idx))].T


def mni_coverage(shape: Sequence[int], affine: np.ndarray) -> float:
    """Fraction of the MNI152 brain mask that lies inside the field of view of ``(shape, affine)``.

    A voxel grid in MNI space covers (nearly) all of it; one in another space, or cropped to a
    small box, covers little. Exact for oblique and flipped affines.
    """
    try:
        inv = np.linalg.inv(np.asarray(affine, dtype=np.float64))
    except np.linalg.LinAlgError:
        return 0.0
    ijk = (inv @ _mni_brain_points())[:3]
    hi = np.asarray(shape[:3], dtype=np.float64)[:, None] - 0.5
    inside = np.all((ijk >= -0.5) & (ijk <= hi), axis=0)
    return float(inside.mean())


def read_header(path: Path) -> tuple[tuple[int, ...], np.ndarray] | None:
    """``(3D shape, affine)`` from a NIfTI header without reading the data; None if unreadable
    (the full read reports why, naming the file)."""
    try:
        img = nib.load(str(path))
        shape = tuple(int(s) for s in img.shape)
        affine = np.asarray(img.affine, dtype=np.float64)
    except (nib.filebasedimages.ImageFileError, OSError, EOFError, zlib.error, ValueError):
        return None
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    return (shape, affine) if len(shape) == 3 else None


def orientation(affine: np.ndarray) -> str:
    """Axis codes of an affine, e.g. ``'RAS'`` or ``'LAS'``."""
    return "".join(str(c) for c in nib.aff2axcodes(affine))


def check_mni_space(names: Sequence[str], headers: Sequence[tuple | None]) -> None:
    """Raise, naming the odd maps, unless every readable header lies in MNI space.

    Each distinct header is tested once with :func:`mni_coverage`.
    """
    cache: dict[tuple, float] = {}
    odd = []
    for name, header in zip(names, headers):
        if header is None:
            continue
        shape, affine = header
        key = (tuple(shape), tuple(np.round(affine, 3).ravel()))
        if key not in cache:
            cache[key] = mni_coverage(shape, affine)
        if cache[key] < MIN_MNI_COVERAGE:
            odd.append(f"{name}: {100 * cache[key]:.0f}%")
    if odd:
        raise DeepLSMError(
            f"{len(odd)} of {len(names)} lesion maps do not lie in MNI space: their field of view "
            f"holds under {100 * MIN_MNI_COVERAGE:.0f}% of the MNI152 brain mask ("
            + "; ".join(odd[:5]) + (" ..." if len(odd) > 5 else "")
            + "). Every map is resampled to the MNI grid through its own header, so each must "
            "be normalised to MNI space first"
        )

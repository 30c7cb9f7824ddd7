"""Validation at the door: every check raises :class:`DeepLSMError` naming the file or subject."""

from __future__ import annotations

import errno
import gzip
import os
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np

from deeplsm.exceptions import DeepLSMError

# Affines that differ by less than this (in mm) are the same space. LESYMAP users hit spurious
# "mismatch" errors from float noise at 1e-8, so the tolerance is generous but still far below
# a voxel.
AFFINE_TOLERANCE_MM = 1e-3

_LOAD_ERRORS = (
    nib.filebasedimages.ImageFileError,
    OSError,
    EOFError,
    zlib.error,
    gzip.BadGzipFile,
    ValueError,
)


def check_path_exists(path: str | os.PathLike, what: str = "path") -> Path:
    """Return ``path`` as a :class:`Path`; raise if it does not exist.

    A symlink loop and a broken symlink are named as such, not as a missing file.
    """
    p = Path(path)
    if not str(path).strip():
        raise DeepLSMError(f"{what} is empty")
    try:
        os.stat(p)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise DeepLSMError(f"{what} {p}: symlink loop") from None
        if p.is_symlink():
            raise DeepLSMError(f"{what} {p} is a broken symlink (it points to {os.readlink(p)}, "
                               "which does not exist)") from None
        if err.errno in (errno.EACCES, errno.EPERM):
            raise DeepLSMError(f"{what} {p}: permission denied") from None
        if err.errno == errno.ENOTDIR:
            raise DeepLSMError(f"{what} does not exist: {p} (a part of the path is a file)") from None
        raise DeepLSMError(f"{what} does not exist: {p}") from None
    return p


def check_readable(path: Path, what: str = "file") -> None:
    """Raise a clear error when the file at ``path`` cannot be opened for reading."""
    try:
        with open(path, "rb"):
            pass
    except IsADirectoryError:
        raise DeepLSMError(f"{what} {path} is a folder, not a file") from None
    except PermissionError:
        raise DeepLSMError(f"cannot read {what} {path}: permission denied") from None
    except OSError as err:
        raise DeepLSMError(f"cannot read {what} {path}: {err.strerror or err}") from None


def load_nifti(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a 3D NIfTI image fully; return ``(data as float32, affine)``.

    A trailing singleton 4th dimension is dropped. Reading the whole array here means that a
    truncated ``.nii.gz`` fails now, with the file named, not later in the pipeline.
    """
    p = check_path_exists(path, "lesion file")
    name = p.name.lower()
    if not (name.endswith(".nii") or name.endswith(".nii.gz")):
        raise DeepLSMError(f"{p}: not a NIfTI file (expected .nii or .nii.gz)")
    check_readable(p, "lesion file")  # unreadable is not "corrupt"
    try:
        img = nib.load(str(p))
        if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
            raise DeepLSMError(f"{p}: not a NIfTI image ({type(img).__name__})")
        data = np.asarray(img.dataobj, dtype=np.float32)
    except DeepLSMError:
        raise
    except _LOAD_ERRORS as err:
        raise DeepLSMError(f"{p}: cannot read NIfTI file, it is corrupt or truncated ({err})") from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise DeepLSMError(f"{p}: expected a 3D lesion map, got a {data.ndim}D image of shape {data.shape}")
    return data, np.asarray(img.affine, dtype=np.float64)


def check_binary(data: np.ndarray, name: str, threshold: float | None = None) -> np.ndarray:
    """Return ``data`` as a uint8 {0,1} array, or raise naming ``name``.

    {0,1} and {0,255} are read as binary. Any other values in [0,1] (probabilistic maps) are an
    error unless ``threshold`` is given, in which case voxels ``>= threshold`` are lesioned.
    NaN/Inf and values outside [0,1] (other than 255 in {0,255} maps) are always errors.
    """
    if not np.isfinite(data).all():
        n_nan = int(np.isnan(data).sum())
        n_inf = int(np.isinf(data).sum())
        found = [f"{n_nan} NaN" if n_nan else "", f"{n_inf} infinite" if n_inf else ""]
        raise DeepLSMError(f"{name}: contains {' and '.join(f for f in found if f)} value(s)")
    is0 = data == 0
    if np.all(is0 | (data == 1)):
        return (~is0).astype(np.uint8)
    if np.all(is0 | (data == 255)):
        return (~is0).astype(np.uint8)
    lo, hi = float(data.min()), float(data.max())
    if lo < 0 or hi > 1:
        raise DeepLSMError(
            f"{name}: values must be binary (0/1 or 0/255), found range [{lo:g}, {hi:g}]"
        )
    if threshold is None:
        raise DeepLSMError(
            f"{name}: looks probabilistic (values in [{lo:g}, {hi:g}], not only 0/1); "
            "pass --threshold to binarise it"
        )
    return (data >= threshold).astype(np.uint8)


def check_same_space(
    name: str,
    shape: tuple[int, ...],
    affine: np.ndarray,
    ref_name: str,
    ref_shape: tuple[int, ...],
    ref_affine: np.ndarray,
    tol: float = AFFINE_TOLERANCE_MM,
) -> None:
    """Raise unless ``(shape, affine)`` matches the reference within ``tol`` mm."""
    if tuple(shape) != tuple(ref_shape):
        raise DeepLSMError(
            f"{name}: shape {tuple(shape)} differs from {ref_name} {tuple(ref_shape)}; "
            "all lesion maps must be on one grid"
        )
    diff = float(np.max(np.abs(np.asarray(affine) - np.asarray(ref_affine))))
    if diff > tol:
        raise DeepLSMError(
            f"{name}: affine differs from {ref_name} by {diff:.4g} mm (tolerance {tol:g} mm); "
            "all lesion maps must be in one space"
        )


def check_threshold(threshold: float | None) -> float | None:
    if threshold is None:
        return None
    if not 0 < threshold <= 1:
        raise DeepLSMError(f"threshold must be in (0, 1], got {threshold}")
    return float(threshold)

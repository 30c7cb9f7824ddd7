"""Shared fixtures: tiny in-memory images whose axes cannot be swapped unnoticed."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

SHAPE = (7, 8, 9)
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
LESYMAP_DIR = SHARED / "data" / "lesymap-lesions"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(42)


@pytest.fixture
def affine() -> np.ndarray:
    return np.eye(4)


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> Path:
    nib.save(nib.Nifti1Image(np.asarray(data), np.eye(4) if affine is None else affine), path)
    return path


@pytest.fixture
def lesion_folder(tmp_path: Path, rng: np.random.Generator) -> Path:
    """Six binary maps of shape (7, 8, 9) as sub-XXXX_lesion.nii.gz."""
    folder = tmp_path / "lesions"
    folder.mkdir()
    for i in range(6):
        data = (rng.random(SHAPE) < 0.3).astype(np.float32)
        write_nifti(folder / f"sub-{i + 1:02d}_lesion.nii.gz", data)
    return folder

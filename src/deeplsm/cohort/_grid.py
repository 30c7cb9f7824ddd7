"""Analysis grids: a shape plus an affine, usually the MNI152 brain bounding box at some voxel size."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from deeplsm.exceptions import DeepLSMError

#: The paper's grid: 1 mm MNI scaled by 0.6, i.e. 1/0.6 = 1.667 mm voxels, cropped to the brain.
PAPER_VOXEL_SIZE = 1.0 / 0.6


@dataclass(frozen=True)
class Grid:
    """A voxel grid in world (MNI) space.

    Attributes
    ----------
    shape : tuple of int
        Number of voxels along x, y, z.
    affine : ndarray of shape (4, 4)
        Voxel-to-world transform, in mm.
    """

    shape: tuple[int, int, int]
    affine: np.ndarray

    @property
    def voxel_size(self) -> tuple[float, float, float]:
        return tuple(float(v) for v in np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0)))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Grid)
            and self.shape == other.shape
            and np.allclose(self.affine, other.affine, atol=1e-3)
        )

    def __hash__(self) -> int:
        return hash((self.shape, tuple(np.round(self.affine, 3).ravel())))

    def to_dict(self) -> dict:
        return {"shape": list(self.shape), "affine": self.affine.tolist(),
                "voxel_size": list(self.voxel_size)}


@functools.lru_cache(maxsize=1)
def _mni_brain_bbox_mm() -> tuple[np.ndarray, np.ndarray]:
    """World-space corners of the MNI152 brain mask's bounding box (nilearn's bundled template)."""
    from nilearn.datasets import load_mni152_brain_mask

    mask = load_mni152_brain_mask(resolution=1)
    idx = np.argwhere(np.asarray(mask.dataobj) > 0)
    lo = mask.affine @ np.r_[idx.min(0), 1]
    hi = mask.affine @ np.r_[idx.max(0), 1]
    return lo[:3], hi[:3]


def mni_brain_grid(voxel_size: float) -> Grid:
    """The MNI152 brain bounding box sampled at isotropic ``voxel_size`` mm (RAS orientation).

    At the paper's 1.667 mm this gives 87×109×93 voxels (the paper's own crop of its 0.6-scaled
    volumes was 91×107×86).
    """
    voxel_size = float(voxel_size)
    if not voxel_size > 0:
        raise DeepLSMError(f"voxel size must be positive, got {voxel_size}")
    lo, hi = _mni_brain_bbox_mm()
    shape = tuple(int(np.floor((h - l) / voxel_size)) + 1 for l, h in zip(lo, hi))
    affine = np.diag([voxel_size] * 3 + [1.0])
    affine[:3, 3] = lo
    return Grid(shape, affine)


def rescaled_grid(shape: tuple[int, ...], affine: np.ndarray, voxel_size: float) -> Grid:
    """The field of view of ``(shape, affine)`` sampled at isotropic ``voxel_size`` mm."""
    voxel_size = float(voxel_size)
    if not voxel_size > 0:
        raise DeepLSMError(f"voxel size must be positive, got {voxel_size}")
    old = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    extent = (np.asarray(shape[:3]) - 1) * old
    new_shape = tuple(int(np.floor(e / voxel_size)) + 1 for e in extent)
    new_affine = affine.copy()
    new_affine[:3, :3] = affine[:3, :3] / old * voxel_size
    return Grid(new_shape, new_affine)


def resolve_grid(
    grid: str | Grid | None,
    voxel_size: float | None,
    native: Grid,
) -> Grid:
    """Pick the analysis grid from CLI-style options.

    ``grid='paper'`` is the paper's grid; ``grid='mni'`` (or any ``voxel_size`` with no grid) is
    the MNI brain bounding box at ``voxel_size`` (``grid='mni'`` alone: at the native grid's
    smallest voxel size); ``grid='native'`` (or neither option) keeps the lesions' own grid.
    """
    if isinstance(grid, Grid):
        return grid
    if grid == "paper":
        return mni_brain_grid(voxel_size or PAPER_VOXEL_SIZE)
    if grid in (None, "mni") and voxel_size is not None:
        return mni_brain_grid(voxel_size)
    if grid == "mni":
        return mni_brain_grid(round(min(native.voxel_size), 3))
    if grid in (None, "native"):
        if voxel_size is not None:
            return rescaled_grid(native.shape, native.affine, voxel_size)
        return native
    raise DeepLSMError(f"unknown grid {grid!r}; expected 'paper', 'mni' or 'native'")

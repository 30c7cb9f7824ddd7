"""A realistic synthetic white-matter-hyperintensity (WMH) cohort on any MNI grid.

Each subject's lesion map is the top-K voxels of a random field inside white matter:

    field = 1.2 · w_pv · periventricular prior + 0.45 · confluent noise + 0.1 · punctate noise · WM

* The periventricular prior decays with distance from the lateral ventricles, so small burdens
  are caps and bands along the ventricles and large burdens grow into confluent lesions.
* Confluent (σ = 6 mm) and punctate (σ = 2 mm) smoothed Gaussian noise give deep lesions.
  Both are drawn independently everywhere, so maps are roughly left-right symmetric (the prior
  is) but never mirror images.
* K is set by a log-normal lesion burden (median 5 mL, σ_log 1.4): about a quarter of subjects
  have under 2 mL and ~5 % over 50 mL, like a memory clinic.

Everything comes from nilearn's bundled MNI152 templates, so it runs offline.
"""

from __future__ import annotations

import functools
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage
from tqdm.auto import tqdm

from deeplsm._docs import fill_doc
from deeplsm._utils import atomic_path, check_random_state, progress_disabled
from deeplsm.cohort import PAPER_VOXEL_SIZE, Grid, LesionCohort, mni_brain_grid
from deeplsm.exceptions import DeepLSMError

PV_DECAY_MM = 15.0
CONFLUENT_SIGMA_MM = 6.0
PUNCTATE_SIGMA_MM = 2.0


@dataclass(frozen=True)
class WMHPriors:
    """Spatial priors on one grid (computed once per grid and cached)."""

    grid: Grid
    candidate: np.ndarray  # bool (X, Y, Z): where lesions may appear
    periventricular: np.ndarray  # float32 in [0, 1]
    white_matter: np.ndarray  # float32 WM probability
    bbox: tuple[slice, slice, slice]  # bounding box of ``candidate``


def _resample_template(img: nib.Nifti1Image, grid: Grid, interpolation: str) -> np.ndarray:
    from nilearn.image import resample_img

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # linear on masks is intended here
        out = resample_img(img, target_affine=grid.affine, target_shape=grid.shape,
                           interpolation=interpolation, force_resample=True, copy_header=True)
    return np.asarray(out.dataobj, dtype=np.float32)


@functools.lru_cache(maxsize=4)
def wmh_priors(grid: Grid) -> WMHPriors:
    """Periventricular and white-matter priors on ``grid``, from nilearn's MNI152 templates.

    The lateral ventricles are the large CSF components (brain mask, GM < 0.15, WM < 0.15)
    of the 1 mm template near the midline; distances are computed there in mm.
    """
    from nilearn.datasets import (
        load_mni152_brain_mask,
        load_mni152_gm_template,
        load_mni152_wm_template,
    )

    brain = load_mni152_brain_mask(resolution=1)
    gm = np.asarray(load_mni152_gm_template(resolution=1).dataobj, dtype=np.float32)
    wm_img = load_mni152_wm_template(resolution=1)
    wm = np.asarray(wm_img.dataobj, dtype=np.float32)
    csf = (np.asarray(brain.dataobj) > 0) & (gm < 0.15) & (wm < 0.15)
    ijk = np.indices(csf.shape).reshape(3, -1).T
    xyz = (ijk @ brain.affine[:3, :3].T + brain.affine[:3, 3]).reshape(*csf.shape, 3)
    central = (np.abs(xyz[..., 0]) < 30) & (xyz[..., 1] > -45) & (xyz[..., 1] < 30) \
        & (xyz[..., 2] > -5) & (xyz[..., 2] < 35)
    labels, n = ndimage.label(csf & central)
    sizes = ndimage.sum_labels(np.ones_like(labels), labels, index=np.arange(1, n + 1))
    ventricles = np.isin(labels, 1 + np.flatnonzero(sizes >= 1000))  # >= 1 mL components
    dist = ndimage.distance_transform_edt(~ventricles).astype(np.float32)  # 1 mm voxels
    pv = np.exp(-dist / PV_DECAY_MM).astype(np.float32)
    pv_img = nib.Nifti1Image(pv, brain.affine)
    vent_img = nib.Nifti1Image(ventricles.astype(np.float32), brain.affine)

    pv_g = _resample_template(pv_img, grid, "linear")
    wm_g = np.clip(_resample_template(wm_img, grid, "linear"), 0, 1)
    vent_g = _resample_template(vent_img, grid, "linear") >= 0.5
    # Lesions live in white matter, or in the periventricular rim just outside the ventricles.
    candidate = ((wm_g > 0.35) | ((pv_g > 0.45) & (wm_g > 0.1))) & ~vent_g
    if not candidate.any():
        raise DeepLSMError(
            f"the grid {grid.shape} does not overlap MNI152 white matter; synthetic lesions need "
            "an MNI-space grid"
        )
    idx = np.argwhere(candidate)
    lo, hi = idx.min(0), idx.max(0) + 1
    bbox = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    return WMHPriors(grid, candidate, pv_g, wm_g, bbox)


def _noise_pair(rng: np.random.Generator, shape: tuple[int, ...],
                vox: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Punctate (σ 2 mm) and confluent (σ 6 mm) noise from one white-noise draw.

    The confluent field smooths the punctate one further (Gaussians compose: σ² adds), which
    saves a second draw and a second wide filter.
    """
    z = rng.standard_normal(shape, dtype=np.float32)
    punctate = ndimage.gaussian_filter(z, PUNCTATE_SIGMA_MM / vox, mode="nearest", truncate=3.0)
    extra = np.sqrt(CONFLUENT_SIGMA_MM**2 - PUNCTATE_SIGMA_MM**2) / vox
    confluent = ndimage.gaussian_filter(punctate, extra, mode="nearest", truncate=3.0)
    return punctate / (punctate.std() + 1e-12), confluent / (confluent.std() + 1e-12)


@fill_doc
def make_wmh_cohort(
    n_subjects: int,
    *,
    grid: Grid | None = None,
    voxel_size: float | None = None,
    median_volume_ml: float = 5.0,
    sigma_log: float = 1.4,
    max_volume_ml: float = 150.0,
    random_state: int | np.random.Generator | None = None,
    n_jobs: int = 2,
    verbose: bool = True,
) -> LesionCohort:
    """Generate a synthetic WMH cohort on an MNI grid.

    Parameters
    ----------
    n_subjects : int
        Number of subjects.
    grid : Grid or None, default=None
        Target grid. Default: the MNI152 brain box at ``voxel_size``.
    voxel_size : float or None, default=None
        Isotropic voxel size in mm when ``grid`` is None; default the paper's 1.667 mm.
    median_volume_ml, sigma_log : float, default=5.0, 1.4
        Log-normal lesion burden: median in mL and SD of its natural log.
    max_volume_ml : float, default=150.0
        Burdens are capped here (and at the size of the candidate white-matter region).
    %(random_state)s
    n_jobs : int, default=2
        Threads (scipy's filters release the GIL). Each subject has its own seed spawned from
        ``random_state``, so the result does not depend on ``n_jobs``.
    %(verbose)s

    Returns
    -------
    LesionCohort
        Subjects ``sub-0001`` … with uint8 maps on the grid.
    """
    if int(n_subjects) < 1:
        raise DeepLSMError(f"n_subjects must be at least 1, got {n_subjects}")
    if grid is None:
        grid = mni_brain_grid(voxel_size or PAPER_VOXEL_SIZE)
    rng = check_random_state(random_state)
    pri = wmh_priors(grid)
    vox = np.asarray(grid.voxel_size)
    vox_ml = float(np.prod(vox)) / 1000.0
    sub_shape = tuple(s.stop - s.start for s in pri.bbox)
    cand = pri.candidate[pri.bbox]
    pv = pri.periventricular[pri.bbox][cand]
    wm = pri.white_matter[pri.bbox][cand]
    n_cand = int(cand.sum())

    burdens = np.minimum(rng.lognormal(np.log(median_volume_ml), sigma_log, size=n_subjects),
                         max_volume_ml)
    n_vox = np.clip(np.round(burdens / vox_ml).astype(np.int64), 1, n_cand)
    seeds = np.random.SeedSequence(int(rng.integers(2**63))).spawn(n_subjects)
    data = np.zeros((n_subjects, *grid.shape), dtype=np.uint8)

    def one(i: int) -> None:
        sub_rng = np.random.default_rng(seeds[i])
        w_pv = sub_rng.uniform(0.6, 1.4)
        punctate, confluent = _noise_pair(sub_rng, sub_shape, vox)
        field = w_pv * 1.2 * pv + 0.45 * confluent[cand] + 0.1 * punctate[cand] * wm
        k = int(n_vox[i])
        flat = np.zeros(n_cand, dtype=np.uint8)
        flat[np.argpartition(field, n_cand - k)[n_cand - k:]] = 1
        data[i][pri.bbox][cand] = flat

    with ThreadPoolExecutor(max(1, int(n_jobs))) as pool:
        list(tqdm(pool.map(one, range(n_subjects)), total=n_subjects, desc="synthetic WMH",
                  unit="subject", disable=progress_disabled(verbose)))
    ids = [f"sub-{i + 1:04d}" for i in range(n_subjects)]
    return LesionCohort(ids, data, grid.affine)


def write_cohort_folder(cohort: LesionCohort, out_dir: str | os.PathLike,
                        verbose: bool = True) -> Path:
    """Write a BIDS-like folder: ``sub-XXXX_lesion.nii.gz`` + ``participants.tsv``, atomically.

    ``participants.tsv`` has ``participant_id`` and ``lesion_volume_ml``.
    """
    out_dir = Path(out_dir)
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        for sid, vol in tqdm(list(zip(cohort.subject_ids, cohort.data)), desc="writing NIfTI",
                             unit="file", disable=progress_disabled(verbose)):
            img = cohort.to_img(vol)
            img.set_data_dtype(np.uint8)
            nib.save(img, tmp / f"{sid}_lesion.nii.gz")
        pd.DataFrame({"participant_id": cohort.subject_ids,
                      "lesion_volume_ml": np.round(cohort.lesion_volumes_ml(), 4)}
                     ).to_csv(tmp / "participants.tsv", sep="\t", index=False)
    return out_dir

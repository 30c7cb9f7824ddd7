"""Read lesion maps from a folder, a glob, a table or a cache; validate; resample to a grid."""

from __future__ import annotations

import glob as globmod
import os
import re
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from deeplsm._utils import progress_disabled
from deeplsm._validation import (
    check_binary,
    check_path_exists,
    check_same_space,
    check_threshold,
    load_nifti,
)
from deeplsm.cohort._cohort import CACHE_SUFFIX, LesionCohort
from deeplsm.cohort._grid import Grid, resolve_grid
from deeplsm.exceptions import DeepLSMError

_NIFTI_RE = re.compile(r"\.nii(\.gz)?$", re.IGNORECASE)
_BIDS_RE = re.compile(r"^(sub-[A-Za-z0-9]+)(?:_.*)?_lesion\.nii(\.gz)?$")
SUBJECT_COLUMNS = ("subject", "participant_id", "subject_id", "id")
PATH_COLUMNS = ("path", "lesion", "lesion_path", "file", "filename")


def subject_id_from_path(path: Path) -> str:
    """``sub-0001_lesion.nii.gz`` → ``sub-0001``; any other ``name.nii[.gz]`` → ``name``."""
    m = _BIDS_RE.match(path.name)
    if m:
        return m.group(1)
    return _NIFTI_RE.sub("", path.name)


def find_lesion_files(source: str | os.PathLike) -> tuple[list[str], list[Path]]:
    """Resolve ``source`` (folder, glob pattern or CSV/TSV table) to subject IDs and file paths.

    In a folder, BIDS-like ``sub-*_lesion.nii[.gz]`` files (searched recursively) take
    precedence; otherwise every ``*.nii[.gz]`` directly in the folder is a subject.
    """
    s = str(source)
    if any(c in s for c in "*?[") and not Path(s).exists():
        paths = sorted(Path(p) for p in globmod.glob(s, recursive=True) if _NIFTI_RE.search(p))
        if not paths:
            raise DeepLSMError(f"no NIfTI files match the pattern {s}")
        return [subject_id_from_path(p) for p in paths], paths
    p = check_path_exists(source, "lesion path")
    if p.is_dir():
        paths = sorted(q for q in p.rglob("sub-*_lesion.nii*") if _BIDS_RE.match(q.name))
        if not paths:
            paths = sorted(q for q in p.iterdir() if q.is_file() and _NIFTI_RE.search(q.name))
        if not paths:
            raise DeepLSMError(f"no NIfTI files (*.nii, *.nii.gz) in folder {p}")
        return [subject_id_from_path(q) for q in paths], paths
    if p.suffix.lower() in (".csv", ".tsv"):
        return _read_lesion_table(p)
    if _NIFTI_RE.search(p.name):
        return [subject_id_from_path(p)], [p]
    raise DeepLSMError(
        f"{p}: not a lesion source; give a folder, a glob, a .csv/.tsv table, a NIfTI file "
        f"or a *{CACHE_SUFFIX} cache"
    )


def _read_lesion_table(path: Path) -> tuple[list[str], list[Path]]:
    try:
        table = pd.read_csv(path, sep=None, engine="python", dtype=str)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DeepLSMError(f"{path}: cannot read table ({err})") from None
    cols = {c.lower(): c for c in table.columns}
    sub = next((cols[c] for c in SUBJECT_COLUMNS if c in cols), None)
    pth = next((cols[c] for c in PATH_COLUMNS if c in cols), None)
    if sub is None or pth is None:
        raise DeepLSMError(
            f"{path}: needs a subject column ({'/'.join(SUBJECT_COLUMNS)}) and a path column "
            f"({'/'.join(PATH_COLUMNS)}); found {', '.join(table.columns)}"
        )
    if table.empty:
        raise DeepLSMError(f"{path}: the table lists no subjects")
    paths = [Path(v) if Path(v).is_absolute() else path.parent / v for v in table[pth]]
    return list(table[sub].astype(str)), paths


def load_lesions(
    source: str | os.PathLike | LesionCohort,
    *,
    grid: str | Grid | None = None,
    voxel_size: float | None = None,
    threshold: float | None = None,
    verbose: bool = True,
) -> LesionCohort:
    """Load, validate and (optionally) resample binary lesion maps.

    Parameters
    ----------
    source : str, path or LesionCohort
        A folder (``sub-*_lesion.nii[.gz]`` or any ``*.nii[.gz]``), a glob pattern, a CSV/TSV
        table with subject and path columns, a single NIfTI file, or a ``*.lesions.npz`` cache
        written by :meth:`LesionCohort.save`.
    grid : {'paper', 'mni', 'native'}, Grid or None, default=None
        Analysis grid; see :func:`deeplsm.cohort.resolve_grid`. ``None`` with no
        ``voxel_size`` keeps the lesions' own grid.
    voxel_size : float or None, default=None
        Isotropic voxel size of the analysis grid in mm.
    threshold : float in (0, 1] or None, default=None
        Binarise probabilistic maps at ``>= threshold``. Without it they are an error.
    verbose : bool, default=True
        Show a progress bar.

    Returns
    -------
    LesionCohort
        Maps on the analysis grid. Resampling uses linear interpolation of each binary map
        followed by a 0.5 threshold (nilearn ``resample_img``), which keeps lesion volume
        closer than nearest-neighbour when downsampling.
    """
    threshold = check_threshold(threshold)
    if isinstance(source, LesionCohort):
        cohort = source
    elif str(source).endswith(CACHE_SUFFIX):
        cohort = LesionCohort.load(source)
    else:
        cohort = None
    if cohort is not None:
        target = resolve_grid(grid, voxel_size, cohort.grid)
        return cohort if target == cohort.grid else resample_cohort(cohort, target, verbose=verbose)

    ids, paths = find_lesion_files(source)
    if len(set(ids)) != len(ids):
        dup = sorted({s for s in ids if ids.count(s) > 1})
        raise DeepLSMError(f"duplicate subject IDs: {', '.join(dup[:5])}")
    target: Grid | None = None
    ref: tuple[str, tuple, np.ndarray] | None = None
    stack: np.ndarray | None = None
    for i, (sid, path) in enumerate(
        tqdm(list(zip(ids, paths)), desc="loading lesions", unit="map",
             disable=progress_disabled(verbose))
    ):
        data, affine = load_nifti(path)
        name = f"subject {sid} ({path})"
        if ref is None:
            ref = (name, data.shape, affine)
            target = resolve_grid(grid, voxel_size, Grid(data.shape, affine))
            stack = np.zeros((len(ids), *target.shape), dtype=np.uint8)
        else:
            check_same_space(name, data.shape, affine, *ref)
        binary = check_binary(data, name, threshold)
        stack[i] = _resample_binary(binary, affine, target)
    assert stack is not None and target is not None  # at least one file exists here
    cohort = LesionCohort(ids, stack, target.affine)
    warn_empty_maps(cohort)
    return cohort


def warn_empty_maps(cohort: LesionCohort) -> int:
    """Warn (with their count) about all-zero maps; they are allowed."""
    empty = ~cohort.data.reshape(cohort.n_subjects, -1).any(axis=1)
    n = int(empty.sum())
    if n:
        names = [s for s, e in zip(cohort.subject_ids, empty) if e][:5]
        warnings.warn(
            f"{n} of {cohort.n_subjects} lesion maps are empty (all zero): {', '.join(names)}"
            + (" ..." if n > 5 else ""),
            UserWarning,
            stacklevel=2,
        )
    return n


def _resample_binary(binary: np.ndarray, affine: np.ndarray, target: Grid) -> np.ndarray:
    if binary.shape == target.shape and np.allclose(affine, target.affine, atol=1e-3):
        return binary
    from nilearn.image import resample_img

    img = nib.Nifti1Image(binary.astype(np.float32), affine)
    with warnings.catch_warnings():
        # Linear interpolation of a binary map, then 0.5: deliberate (keeps lesion volume).
        warnings.simplefilter("ignore", UserWarning)
        out = resample_img(img, target_affine=target.affine, target_shape=target.shape,
                           interpolation="linear", force_resample=True, copy_header=True)
    return (np.asarray(out.dataobj) >= 0.5).astype(np.uint8)


def resample_cohort(cohort: LesionCohort, grid: Grid, *, verbose: bool = True) -> LesionCohort:
    """Resample every map of ``cohort`` to ``grid`` (linear interpolation, then ``>= 0.5``)."""
    out = np.zeros((cohort.n_subjects, *grid.shape), dtype=np.uint8)
    for i in tqdm(range(cohort.n_subjects), desc="resampling", unit="map",
                  disable=progress_disabled(verbose)):
        out[i] = _resample_binary(cohort.data[i], cohort.affine, grid)
    return LesionCohort(cohort.subject_ids, out, grid.affine)

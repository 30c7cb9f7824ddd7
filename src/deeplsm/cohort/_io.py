"""Read lesion maps from a folder, a glob, a table or a cache; validate; resample to a grid."""

from __future__ import annotations

import glob as globmod
import logging
import os
import re
import warnings
from collections import Counter
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
from deeplsm.cohort._bids import find_bids_lesions, subject_ids_for
from deeplsm.cohort._cohort import CACHE_SUFFIX, LesionCohort
from deeplsm.cohort._grid import Grid, resolve_grid
from deeplsm.cohort._space import check_mni_space, orientation, read_header
from deeplsm.exceptions import DeepLSMError

log = logging.getLogger("deeplsm")

_NIFTI_RE = re.compile(r"\.nii(\.gz)?$", re.IGNORECASE)
SUBJECT_COLUMNS = ("subject", "participant_id", "subject_id", "id")
PATH_COLUMNS = ("path", "lesion", "lesion_path", "file", "filename")


def find_lesion_files(
    source: str | os.PathLike, *, session: str | None = None
) -> tuple[list[str], list[Path]]:
    """Resolve ``source`` (folder, glob pattern or CSV/TSV table) to subject IDs and file paths.

    In a folder, lesion masks named as BIDS has them (``sub-<label>[_ses-<label>]..._``
    ``{label-lesion_mask, label-lesion_roi, desc-*lesion*_mask, lesion}.nii[.gz]``, searched
    recursively, so raw ``sub-*/[ses-*/]anat/`` and ``derivatives/<pipeline>/`` layouts both
    work) take precedence; otherwise every ``*.nii[.gz]`` directly in the folder is a subject.
    BIDS names give the subject ID ``sub-<label>``; ``session`` selects or keeps sessions (see
    :func:`deeplsm.cohort.subject_ids_for`).
    """
    s = str(source)
    if any(c in s for c in "*?[") and not Path(s).exists():
        paths = sorted(Path(p) for p in globmod.glob(s, recursive=True) if _NIFTI_RE.search(p))
        if not paths:
            raise DeepLSMError(f"no NIfTI files match the pattern {s}")
        return subject_ids_for(paths, session)
    p = check_path_exists(source, "lesion path")
    if p.is_dir():
        paths = find_bids_lesions(p)
        if not paths:
            paths = sorted(q for q in p.iterdir() if q.is_file() and _NIFTI_RE.search(q.name))
        if not paths:
            raise DeepLSMError(f"no NIfTI files (*.nii, *.nii.gz) in folder {p}")
        return subject_ids_for(paths, session)
    if p.suffix.lower() in (".csv", ".tsv"):
        if session is not None:
            raise DeepLSMError(f"--session picks BIDS-named files; {p} is a table, which lists "
                               "one map per subject already")
        return _read_lesion_table(p)
    if _NIFTI_RE.search(p.name):
        return subject_ids_for([p], session)
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
    session: str | None = None,
    verbose: bool = True,
) -> LesionCohort:
    """Load, validate and (optionally) resample binary lesion maps.

    Parameters
    ----------
    source : str, path or LesionCohort
        A folder (BIDS lesion masks such as ``sub-01[_ses-1]..._label-lesion_mask.nii.gz``,
        searched recursively, or else any ``*.nii[.gz]`` in it), a glob pattern, a CSV/TSV
        table with subject and path columns, a single NIfTI file, or a ``*.lesions.npz`` cache
        written by :meth:`LesionCohort.save`.
    grid : {'paper', 'mni', 'native'}, Grid or None, default=None
        Analysis grid; see :func:`deeplsm.cohort.resolve_grid`. ``None`` with no
        ``voxel_size`` keeps the lesions' own grid.
    voxel_size : float or None, default=None
        Isotropic voxel size of the analysis grid in mm.
    threshold : float in (0, 1] or None, default=None
        Binarise probabilistic maps at ``>= threshold``. Without it they are an error.
    session : str or None, default=None
        BIDS session to keep (``'1'`` or ``'ses-1'``), or ``'all'`` to keep every session as
        its own subject (``sub-01_ses-1``). None: a subject with masks from several sessions is
        an error. See :func:`deeplsm.cohort.subject_ids_for`.
    verbose : bool, default=True
        Show a progress bar.

    Returns
    -------
    LesionCohort
        Maps on the analysis grid. Resampling uses linear interpolation of each binary map
        followed by a 0.5 threshold (nilearn ``resample_img``), which keeps lesion volume
        closer than nearest-neighbour when downsampling.

    Notes
    -----
    On an MNI grid (``grid='paper'`` or ``'mni'``, or a ``voxel_size`` without a grid) each map
    is resampled through its own header, so maps with different orientations (LAS, RAS), fields
    of view or voxel sizes load together; each header's field of view must hold at least half
    of the MNI152 brain mask, else the odd maps are named in an error. On the native grid every
    map must share the first map's shape and affine (within 1e-3 mm).
    """
    threshold = check_threshold(threshold)
    mni_target = grid in ("paper", "mni") or (grid is None and voxel_size is not None)
    if isinstance(source, LesionCohort):
        cohort = source
    elif str(source).endswith(CACHE_SUFFIX):
        cohort = LesionCohort.load(source)
    else:
        cohort = None
    if cohort is not None:
        if session is not None:
            raise DeepLSMError("--session picks BIDS-named files; a cohort cache has one map "
                               "per subject already")
        target = resolve_grid(grid, voxel_size, cohort.grid)
        if target == cohort.grid:
            return cohort
        if mni_target:
            name = "the cohort" if isinstance(source, LesionCohort) else str(source)
            check_mni_space([name], [(cohort.shape, cohort.affine)])
        return resample_cohort(cohort, target, verbose=verbose)

    ids, paths = find_lesion_files(source, session=session)
    if len(set(ids)) != len(ids):
        dup = sorted({s for s in ids if ids.count(s) > 1})
        raise DeepLSMError(f"duplicate subject IDs: {', '.join(dup[:5])}")
    names = [f"subject {sid} ({path})" for sid, path in zip(ids, paths)]
    if mni_target:
        check_mni_space(names, [read_header(p) for p in paths])
    target: Grid | None = None
    ref: tuple[str, tuple, np.ndarray] | None = None
    stack: np.ndarray | None = None
    headers: Counter = Counter()
    n_resampled = 0
    reoriented: Counter = Counter()
    for i, (name, path) in enumerate(
        tqdm(list(zip(names, paths)), desc="loading lesions", unit="map",
             disable=progress_disabled(verbose))
    ):
        data, affine = load_nifti(path)
        if ref is None:
            ref = (name, data.shape, affine)
            target = resolve_grid(grid, voxel_size, Grid(data.shape, affine))
            stack = np.zeros((len(ids), *target.shape), dtype=np.uint8)
        elif not mni_target:
            try:
                check_same_space(name, data.shape, affine, *ref)
            except DeepLSMError as err:
                raise DeepLSMError(
                    f"{err}. If every map is in MNI space and only the headers differ, use "
                    "--grid mni (or --voxel-size MM) to resample each map through its own header"
                ) from None
        binary = check_binary(data, name, threshold)
        stack[i] = _resample_binary(binary, affine, target)
        if mni_target:
            headers[Grid(data.shape, affine)] += 1
            n_resampled += Grid(data.shape, affine) != target
            if orientation(affine) != orientation(target.affine):
                reoriented[orientation(affine)] += 1
    assert stack is not None and target is not None  # at least one file exists here
    if n_resampled:
        _log_resampling(len(ids), n_resampled, reoriented, headers, target)
    cohort = LesionCohort(ids, stack, target.affine)
    warn_empty_maps(cohort)
    return cohort


def _log_resampling(n: int, n_resampled: int, reoriented: Counter, headers: Counter,
                    target: Grid) -> None:
    """One line: how many maps were resampled and reoriented, and how many headers there were."""
    shape = "x".join(map(str, target.shape))
    size = "/".join(f"{v:g}" for v in np.round(target.voxel_size, 3))
    line = (f"resampled {n_resampled} of {n} lesion maps through their own headers to the MNI "
            f"grid {shape} at {size} mm")
    if len(headers) > 1:
        line += f"; {len(headers)} different headers"
    if reoriented:
        line += ("; reoriented to " + orientation(target.affine) + ": "
                 + ", ".join(f"{v} from {o}" for o, v in reoriented.most_common()))
    log.info(line)


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

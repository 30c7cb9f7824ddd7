"""Which voxels to test: lesion-frequency masks and patch compression (identical patterns)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from deeplsm.exceptions import DeepLSMError


def resolve_min_subjects(min_subjects: int | float, n_subjects: int) -> int:
    """Turn ``min_subjects`` (a count, or a fraction in (0, 1)) into a subject count.

    Examples
    --------
    >>> resolve_min_subjects(10, 131)
    10
    >>> resolve_min_subjects(0.1, 131)
    14
    """
    if isinstance(min_subjects, bool) or not isinstance(min_subjects, int | float | np.number):
        raise DeepLSMError(f"min_subjects must be a count or a fraction, got {min_subjects!r}")
    if isinstance(min_subjects, int | np.integer):
        if min_subjects < 1:
            raise DeepLSMError(f"min_subjects must be >= 1 (a count) or in (0, 1) (a fraction), "
                               f"got {min_subjects}")
        return int(min_subjects)
    v = float(min_subjects)
    if not np.isfinite(v) or v <= 0:
        raise DeepLSMError(f"min_subjects must be >= 1 (a count) or in (0, 1) (a fraction), got {v}")
    if v < 1:
        return max(1, math.ceil(v * n_subjects - 1e-9))
    if v != int(v):
        raise DeepLSMError(f"min_subjects >= 1 must be a whole number of subjects, got {v}")
    return int(v)


def voxel_mask(data: np.ndarray, min_subjects: int | float) -> tuple[np.ndarray, int]:
    """Voxels lesioned in at least ``m`` subjects and spared in at least ``m`` subjects.

    Parameters
    ----------
    data : ndarray of shape (n_subjects, ...)
        Binary lesion maps (any trailing shape).
    min_subjects : int or float
        A count (svrlsmgui's default is 10) or a fraction of the subjects in (0, 1) (LESYMAP's
        default is 0.1, i.e. 10%).

    Returns
    -------
    mask : ndarray of bool, shape ``data.shape[1:]``
    m : int
        The subject count that was applied.

    Raises
    ------
    DeepLSMError
        If no voxel passes, naming the number of subjects and the threshold.
    """
    n = int(data.shape[0])
    m = resolve_min_subjects(min_subjects, n)
    counts = data.sum(axis=0, dtype=np.int32)
    mask = (counts >= m) & (n - counts >= m)
    if not mask.any():
        most = int(counts.max()) if counts.size else 0
        raise DeepLSMError(
            f"no voxel is lesioned in at least {m} and spared in at least {m} of the {n} subjects "
            f"(min_subjects={min_subjects!r}); the most-lesioned voxel has {most} lesioned "
            "subjects. Lower min_subjects or add subjects."
        )
    return mask, m


def mask_exclusions(data: np.ndarray, mask: np.ndarray, m: int,
                    subject_ids: list[str] | None = None) -> dict:
    """What a ``min_subjects`` voxel mask keeps and leaves out, and why, as JSON-ready counts.

    Parameters
    ----------
    data : ndarray of shape (n_subjects, n_voxels)
        The binary lesion maps the mask was computed on (flattened).
    mask : ndarray of bool, shape (n_voxels,) or the maps' shape
        The tested voxels (:func:`voxel_mask`).
    m : int
        The subject count that was applied.
    subject_ids : list of str or None
        Names for the subjects (default: their row numbers).

    Returns
    -------
    dict
        ``voxels``: ``n_voxels`` (the grid), ``lesioned`` (in at least one subject), ``tested``,
        ``lesioned_in_too_few`` (in 1 to ``m - 1`` subjects), ``lesioned_in_too_many`` (in
        ``m`` or more but spared in fewer than ``m``, i.e. lesioned in more than
        ``n_subjects - m``), ``min_subjects``, ``n_subjects``; ``lesioned == tested +
        lesioned_in_too_few + lesioned_in_too_many``.
        ``subjects_without_tested_voxel``: ``count`` and ``subjects`` with no lesioned voxel among
        the tested ones (they stay in the analysis as undamaged at every tested voxel; under
        DTLVC their lesion vector is zero), ``empty_maps`` of them all-zero maps.
    """
    data = np.asarray(data).reshape(data.shape[0], -1)
    mask = np.asarray(mask, dtype=bool).ravel()
    n = int(data.shape[0])
    counts = data.sum(axis=0, dtype=np.int32)
    lesioned = counts > 0
    too_few = lesioned & (counts < m)
    too_many = (counts >= m) & (n - counts < m)
    ids = [str(s) for s in subject_ids] if subject_ids is not None else [str(i) for i in range(n)]
    none_tested = ~np.take(data, np.flatnonzero(mask), axis=1).any(axis=1)
    empty = ~data.any(axis=1)
    return {
        "voxels": {
            "n_voxels": int(mask.size), "lesioned": int(lesioned.sum()), "tested": int(mask.sum()),
            "lesioned_in_too_few": int(too_few.sum()), "lesioned_in_too_many": int(too_many.sum()),
            "min_subjects": int(m), "n_subjects": n,
            "reason": f"a voxel is tested when lesioned in at least {m} and spared in at least {m} "
                      f"of the {n} subjects (min_subjects)",
        },
        "subjects_without_tested_voxel": {
            "count": int(none_tested.sum()),
            "subjects": [s for s, e in zip(ids, none_tested) if e],
            "empty_maps": int((none_tested & empty).sum()),
            "reason": "no lesioned voxel among the tested voxels; kept, as undamaged at every "
                      "tested voxel (under DTLVC their lesion vector is zero)",
        },
    }


def exclusion_lines(exclusions: dict, prefix: str) -> list[str]:
    """One log line per kind of exclusion in ``exclusions`` (as :func:`mask_exclusions` returns,
    optionally with ``score_rows_without_lesion_map`` and ``empty_lesion_maps`` entries)."""
    lines = []
    rows = exclusions.get("score_rows_without_lesion_map")
    if rows and rows["count"]:
        lines.append(f"{prefix}: left out {rows['count']} row(s) of the score table with no lesion "
                     f"map ({_names(rows['subjects'])})")
    empty = exclusions.get("empty_lesion_maps")
    if empty and empty["count"]:
        lines.append(f"{prefix}: {empty['count']} of {empty['n_subjects']} lesion maps are empty (all "
                     f"zero; kept, as undamaged everywhere): {_names(empty['subjects'])}")
    v = exclusions.get("voxels")
    if v:
        m, n = v["min_subjects"], v["n_subjects"]
        lines.append(
            f"{prefix}: testing {v['tested']} of the {v['lesioned']} voxels lesioned in any of the "
            f"{n} subjects (min_subjects {m}: lesioned in >= {m} and spared in >= {m}); left out "
            f"{v['lesioned_in_too_few']} lesioned in fewer than {m} subjects and "
            f"{v['lesioned_in_too_many']} lesioned in more than {n - m}")
    s = exclusions.get("subjects_without_tested_voxel")
    if s and s["count"]:
        of_empty = f", {s['empty_maps']} of them with empty maps" if s.get("empty_maps") else ""
        lines.append(f"{prefix}: {s['count']} of {v['n_subjects'] if v else '?'} subjects have no "
                     f"lesioned voxel among the tested voxels{of_empty} (kept, as undamaged at "
                     f"every tested voxel): {_names(s['subjects'])}")
    return lines


def _names(ids: list[str], k: int = 5) -> str:
    return ", ".join(ids[:k]) + (f" and {len(ids) - k} more" if len(ids) > k else "")


@dataclass
class Patches:
    """Unique lesion patterns among the tested voxels.

    Attributes
    ----------
    patterns : ndarray of shape (n_subjects, n_patterns), uint8
        One column per distinct subject pattern.
    inverse : ndarray of shape (n_voxels,), int64
        Pattern index of each tested voxel: ``patterns[:, inverse]`` gives back the voxels.
    counts : ndarray of shape (n_patterns,), int64
        How many voxels share each pattern.
    """

    patterns: np.ndarray
    inverse: np.ndarray
    counts: np.ndarray


def compress_patches(X: np.ndarray) -> Patches:
    """Group voxels (columns of ``X``, binary, shape (n_subjects, n_voxels)) by identical pattern.

    As LESYMAP's ``patchinfo``: a statistic that depends only on the column needs computing once
    per pattern.
    """
    X = np.asarray(X, dtype=np.uint8)
    V = X.shape[1]
    packed = np.packbits(X, axis=0)  # (ceil(N/8), V)
    pad = (-packed.shape[0]) % 8
    if pad:
        packed = np.concatenate([packed, np.zeros((pad, V), np.uint8)])
    words = np.ascontiguousarray(packed.T).view(np.uint64)  # (V, W): one key of W words per voxel
    # a 64-bit hash of each key, then an exact check; lexicographic sort only on a collision
    mult = np.random.default_rng(0).integers(1, 2**63, size=words.shape[1], dtype=np.uint64) | np.uint64(1)
    with np.errstate(over="ignore"):
        h = (words * mult[None, :]).sum(axis=1, dtype=np.uint64)
    _, first, inverse, counts = np.unique(h, return_index=True, return_inverse=True, return_counts=True)
    inverse = inverse.ravel().astype(np.int64)
    if not np.array_equal(words, words[first[inverse]]):
        order = np.lexsort(words.T[::-1])
        srt = words[order]
        new = np.ones(V, bool)
        new[1:] = (srt[1:] != srt[:-1]).any(axis=1)
        inverse = np.empty(V, np.int64)
        inverse[order] = np.cumsum(new) - 1
        first = order[new]
        counts = np.diff(np.r_[np.flatnonzero(new), V])
    return Patches(np.take(X, first, axis=1), inverse, np.asarray(counts, dtype=np.int64))

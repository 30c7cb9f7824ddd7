"""Subjects a command leaves out (or keeps, but should count) before any analysis, with reasons."""

from __future__ import annotations

import pandas as pd

from deeplsm.cohort._cohort import LesionCohort

#: ``DataFrame.attrs`` key under which :func:`deeplsm.cohort.load_scores` lists the score-table
#: rows it left out because their subject has no lesion map.
ROWS_WITHOUT_LESION_MAP = "rows_without_lesion_map"


def empty_map_subjects(cohort: LesionCohort) -> list[str]:
    """Subjects whose lesion map is all zero."""
    empty = ~cohort.data.reshape(cohort.n_subjects, -1).any(axis=1)
    return [s for s, e in zip(cohort.subject_ids, empty) if e]


def cohort_exclusions(cohort: LesionCohort, scores: pd.DataFrame | None = None,
                      rows_without_lesion_map: list[str] | None = None) -> dict:
    """The subject-level exclusions of a cohort and its score table, JSON-ready.

    Parameters
    ----------
    cohort : LesionCohort
    scores : pandas.DataFrame or None
        As :func:`deeplsm.cohort.load_scores` returns it: the rows it left out (subjects without
        a lesion map) are in ``scores.attrs``.
    rows_without_lesion_map : list of str or None
        Those subjects, when ``scores`` no longer carries them.

    Returns
    -------
    dict
        ``score_rows_without_lesion_map``: ``count``, ``subjects`` (rows of the score table
        whose subject has no lesion map; not analysed). ``empty_lesion_maps``: ``count``,
        ``subjects``, ``n_subjects`` (all-zero maps; kept, as undamaged everywhere).
        ``missing_scores``: always 0, a lesion subject without a finite score is an error.
    """
    if rows_without_lesion_map is None:
        rows_without_lesion_map = list((scores.attrs if scores is not None else {}).get(
            ROWS_WITHOUT_LESION_MAP, []))
    empty = empty_map_subjects(cohort)
    return {
        "score_rows_without_lesion_map": {
            "count": len(rows_without_lesion_map), "subjects": list(rows_without_lesion_map),
            "reason": "rows of the score table whose subject has no lesion map; not analysed"},
        "empty_lesion_maps": {
            "count": len(empty), "subjects": empty, "n_subjects": cohort.n_subjects,
            "reason": "all-zero lesion maps; kept, as undamaged everywhere"},
        "missing_scores": {
            "count": 0,
            "reason": "a lesion subject without a finite score is an error, never left out silently"},
    }


"""Score tables: one row per subject, one numeric column per behavioural score."""

from __future__ import annotations

import csv
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from deeplsm._validation import check_path_exists, check_readable
from deeplsm.cohort._exclusions import ROWS_WITHOUT_LESION_MAP
from deeplsm.cohort._io import SUBJECT_COLUMNS
from deeplsm.exceptions import DeepLSMError

log = logging.getLogger("deeplsm")


def load_scores(
    path: str | os.PathLike,
    subject_ids: Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Read a CSV/TSV score table and align it to ``subject_ids``.

    Parameters
    ----------
    path : str or path
        Table with a subject column (``subject``, ``participant_id``, ``subject_id`` or ``id``;
        otherwise the first column) and numeric score columns; ``.tsv`` is tab-separated (a BIDS
        ``participants.tsv``), other tables are sniffed. ``n/a``, ``NA``, ``NaN`` and empty
        cells are missing: an error in the columns and subjects used, fine elsewhere.
    subject_ids : sequence of str or None, default=None
        Lesion subjects, in cohort order. Every one must have a score; rows for other subjects
        are dropped with one warning that counts and names them, and listed in
        ``attrs["rows_without_lesion_map"]`` of the result.
    columns : sequence of str or None, default=None
        Score columns to keep, in this order. Default: every column but the subject column that
        holds numbers (text-only columns such as ``sex`` are left out, with a log line).

    Returns
    -------
    pandas.DataFrame
        Float scores indexed by subject ID, rows in ``subject_ids`` order.
    """
    p = check_path_exists(path, "scores file")
    check_readable(p, "scores file")
    if p.stat().st_size == 0:
        raise DeepLSMError(f"{p}: the scores file is empty")
    # Everything as text first, so IDs keep leading zeros in any column; BIDS's "n/a" (like
    # "NA", "nan" and empty cells) is missing under pandas' default NA values.
    sep = "\t" if p.suffix.lower() == ".tsv" else None
    try:
        table = pd.read_csv(p, sep=sep, engine="python" if sep is None else "c", dtype=str)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, csv.Error) as err:
        raise DeepLSMError(f"{p}: cannot read score table ({err})") from None
    if not len(table):
        raise DeepLSMError(f"{p}: the scores file has no rows (a header at most)")
    lower = {str(c).lower(): c for c in table.columns}
    sub = next((lower[c] for c in SUBJECT_COLUMNS if c in lower), table.columns[0])
    table[sub] = table[sub].astype(str)
    if table[sub].duplicated().any():
        dup = table.loc[table[sub].duplicated(), sub].tolist()[:5]
        raise DeepLSMError(f"{p}: duplicate subjects in scores: {', '.join(dup)}")
    table = table.set_index(sub)
    if columns is None:
        # Default: every column with numbers in it; a column of text only (sex, group) or of
        # missing values only is left out, as in a BIDS participants.tsv.
        columns = [c for c in table.columns if pd.to_numeric(table[c], errors="coerce").notna().any()]
        skipped = [str(c) for c in table.columns if c not in columns]
        if skipped:
            log.info("%s: left out column(s) with no numbers: %s", p.name, ", ".join(skipped))
        if not columns:
            raise DeepLSMError(f"{p}: no numeric score columns besides the subject column {sub!r}")
    columns = list(columns)
    missing_cols = [c for c in columns if c not in table.columns]
    if missing_cols:
        raise DeepLSMError(
            f"{p}: missing score column(s) {', '.join(missing_cols)}; "
            f"available: {', '.join(map(str, table.columns))}"
        )
    table = table[columns].copy()
    for c in columns:
        numeric = pd.to_numeric(table[c], errors="coerce")
        bad = numeric.isna() & table[c].notna()
        if bad.any():
            raise DeepLSMError(
                f"{p}: column {c!r} is not numeric (subject {bad.idxmax()}: {table[c][bad].iloc[0]!r})"
            )
        table[c] = numeric.astype(float)
    if subject_ids is not None:
        ids = [str(s) for s in subject_ids]
        absent = [s for s in ids if s not in table.index]
        if absent:
            raise DeepLSMError(
                f"{p}: {len(absent)} of {len(ids)} lesion subjects have no score, "
                f"e.g. {', '.join(absent[:3])}"
            )
        known = set(ids)
        extra = [str(s) for s in table.index if s not in known]
        table = table.loc[ids]
    else:
        extra = []
    # Only the rows and columns in use must be complete: n/a elsewhere is fine.
    values = table.to_numpy(dtype=float)
    inf_cells = np.isinf(values)
    if inf_cells.any():
        rows = inf_cells.any(axis=1)
        i = int(np.argmax(rows))
        raise DeepLSMError(
            f"{p}: infinite scores for {int(rows.sum())} subject(s), e.g. {table.index[i]} in "
            f"column {columns[int(np.argmax(inf_cells[i]))]!r}"
        )
    bad_cells = ~np.isfinite(values)
    if bad_cells.any():
        rows = bad_cells.any(axis=1)
        i = int(np.argmax(rows))
        col = columns[int(np.argmax(bad_cells[i]))]
        raise DeepLSMError(
            f"{p}: NaN or missing scores for {int(rows.sum())} subject(s), e.g. {table.index[i]} "
            f"in column {col!r} (n/a, NaN, Inf and empty cells are not scores)"
        )
    if extra:
        names = ", ".join(extra[:5]) + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
        warnings.warn(f"{p}: ignoring {len(extra)} score rows with no lesion map ({names}); those "
                      "subjects are not analysed", stacklevel=2)
    table.attrs[ROWS_WITHOUT_LESION_MAP] = extra
    return table


def write_scores(path: str | os.PathLike, subject_ids: Sequence[str], scores: np.ndarray,
                 columns: Sequence[str]) -> Path:
    """Write ``subject,<columns>`` as CSV, atomically."""
    from deeplsm._utils import atomic_path

    df = pd.DataFrame(np.asarray(scores), columns=list(columns))
    df.insert(0, "subject", list(subject_ids))
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.8g")
    return Path(path)

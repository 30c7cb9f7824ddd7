"""Which labels of the ground-truth image are each score's truth: matched by name, never by position.

A score's truth is the union of one or more labels of the ROI image. In order of precedence:

1. ``scores.truth_labels`` (a score table with a ``scores.truth`` image): ``{score: label or
   [labels]}``, checked at the door (names against the table's score columns, labels against
   the image);
2. a simulation's own record (``simulation.json``'s ``truth_labels``);
3. the trailing number of every score's name (``score_2`` → label 2, ``bnt3`` → label 3);
4. one score and a one-label image: that label.

Anything else is an error asking for ``scores.truth_labels``; in particular, as many labels as
scores is never read as "label k for the k-th column".
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import BeforeValidator

from deeplsm._schema import Describe
from deeplsm.exceptions import DeepLSMError

_TRAILING = re.compile(r"(\d+)$")
EXAMPLE = "e.g. truth_labels = {naming = 1, fluency = [2, 3]}"


def _checked(value: Any) -> Any:
    from deeplsm.evaluate import label_list

    if not isinstance(value, dict) or not value:
        raise ValueError("not a table")
    for name, labels in value.items():
        if not isinstance(name, str) or not name:
            raise ValueError("bad name")
        try:
            label_list(name, labels)
        except DeepLSMError:
            raise ValueError("bad labels") from None
    return value


#: ``scores.truth_labels``: score name -> a label or a list of labels of the ``truth`` image.
TruthLabels = Annotated[dict[str, Any], BeforeValidator(_checked),
                        Describe("a table of score name = ROI label (an integer >= 1) or list of "
                                 "distinct labels, " + EXAMPLE)]


def image_labels(data: np.ndarray) -> list[int]:
    """The labels (values > 0) of a label image, as integers, ascending."""
    return sorted(int(v) for v in np.unique(np.asarray(data)) if v > 0)


def _plus(labels: Sequence[int]) -> str:
    return "+".join(map(str, labels))


def _listed(items: Sequence[object], limit: int = 8) -> str:
    text = ", ".join(map(str, items[:limit]))
    return text + (f", … ({len(items)} in all)" if len(items) > limit else "")


def resolve_truth_labels(scores: Sequence[str], labels: Sequence[int], *,
                         given: Mapping[str, int | Sequence[int]] | None = None,
                         simulated: Mapping[str, Sequence[int]] | None = None,
                         image: str = "the truth image") -> tuple[dict[str, list[int]], str]:
    """Score -> the list of truth labels it is scored against, and which rule gave it.

    Parameters
    ----------
    scores : sequence of str
        The study's score names, in table order.
    labels : sequence of int
        The labels present in the truth image.
    given : mapping or None
        ``scores.truth_labels``; scores it leaves out have no truth (their maps are not scored).
    simulated : mapping or None
        A simulation's ``truth_labels``.
    image : str
        How to name the image in messages.

    Returns
    -------
    mapping : dict of str -> list of int
        In the order of ``scores``.
    rule : str
        ``"scores.truth_labels"``, ``"simulation"``, ``"trailing number"`` or ``"single ROI"``.
    """
    from deeplsm.evaluate import label_list

    present = set(int(k) for k in labels)
    have = f"it has {'labels ' + _listed(sorted(present)) if present else 'no labels'}"
    if given:
        unknown = [n for n in given if n not in scores]
        if unknown:
            raise DeepLSMError(f"scores.truth_labels names {unknown[0]!r}, which is not a score; "
                               f"the scores are {_listed(list(scores))}")
        out: dict[str, list[int]] = {}
        for name in scores:
            if name not in given:
                continue
            ks = label_list(name, given[name])
            missing = [k for k in ks if k not in present]
            if missing:
                raise DeepLSMError(f"scores.truth_labels.{name} = {_plus(ks)}: {image} has no label "
                                   f"{_listed(missing)} ({have})")
            out[name] = ks
        return out, "scores.truth_labels"
    if simulated:
        out = {n: [int(k) for k in simulated[n]] for n in scores if n in simulated}
        for name, ks in out.items():
            missing = [k for k in ks if k not in present]
            if missing:
                raise DeepLSMError(f"the simulation's truth of {name} is label {_plus(ks)}, but "
                                   f"{image} has no label {_listed(missing)} ({have})")
        return out, "simulation"
    numbers = {n: _TRAILING.search(n) for n in scores}
    if scores and all(numbers.values()):
        out = {n: [int(m.group(1))] for n, m in numbers.items()}
        missing = [n for n, ks in out.items() if ks[0] not in present]
        if missing:
            n = missing[0]
            raise DeepLSMError(f"score {n!r} ends in {out[n][0]}, but {image} has no label "
                               f"{out[n][0]} ({have}); set scores.truth_labels, {EXAMPLE}")
        return out, "trailing number"
    if len(scores) == 1 and len(present) == 1:
        return {scores[0]: sorted(present)}, "single ROI"
    unnamed = [n for n in scores if not numbers[n]]
    text = (f"cannot tell which labels of {image} are the truth of which score: "
            f"{_listed([repr(n) for n in unnamed])} {'does' if len(unnamed) == 1 else 'do'} not end "
            f"in a label number ({have})")
    if len(present) == len(scores):
        text += "; as many labels as scores, but a column's position is never used as its label"
    raise DeepLSMError(f"{text}; set scores.truth_labels, {EXAMPLE}")


def _score_columns(path: str | os.PathLike, columns: Sequence[str] | None) -> list[str] | None:
    """The score columns :func:`deeplsm.cohort.load_scores` will keep, or ``None`` when the
    table cannot be read here (the scores stage then reports why)."""
    import pandas as pd

    from deeplsm.cohort._io import SUBJECT_COLUMNS

    if columns:
        return list(columns)
    p = Path(path)
    try:
        sep = "\t" if p.suffix.lower() == ".tsv" else None
        table = pd.read_csv(p, sep=sep, engine="python" if sep is None else "c", dtype=str)
    except Exception:  # any problem is the scores stage's to report
        return None
    lower = {str(c).lower(): c for c in table.columns}
    sub = next((lower[c] for c in SUBJECT_COLUMNS if c in lower), table.columns[0])
    return [str(c) for c in table.columns
            if c != sub and pd.to_numeric(table[c], errors="coerce").notna().any()]


def check_truth_settings(scores_cfg: dict) -> dict[str, list[int]] | None:
    """The door check of ``scores.truth_labels`` and of the truth image, before any stage runs.

    ``truth_labels`` needs a score table and a ``truth`` image (a simulation records its own);
    with a table and an image, the score names and the image's labels must give every score
    its truth by :func:`resolve_truth_labels`. Returns that mapping (``None`` without an image).
    """
    given = scores_cfg.get("truth_labels")
    if scores_cfg["source"] == "simulate" or not scores_cfg.get("truth"):
        if given:
            raise DeepLSMError("scores.truth_labels needs a score table (scores.source) and its ROI "
                               "image (scores.truth); a simulation records its own truth labels")
        return None
    from deeplsm._validation import check_path_exists, load_nifti

    check_path_exists(scores_cfg["truth"], "scores.truth image")
    data, _ = load_nifti(scores_cfg["truth"])
    names = _score_columns(scores_cfg["source"], scores_cfg.get("columns"))
    if names is None:
        return None
    return resolve_truth_labels(names, image_labels(data.astype(np.int16)), given=given,
                                image=f"scores.truth ({Path(scores_cfg['truth']).name})")[0]

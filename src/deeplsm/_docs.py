"""Shared parameter documentation, inserted with :func:`fill_doc` (as nilearn does)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)

docdict: dict[str, str] = {
    "random_state": """random_state : int, numpy.random.Generator or None, default=None
        Seed or generator for every random step. The same seed gives the same result.""",
    "lesions": """lesions : LesionCohort
        Binary lesion maps on one analysis grid (see :class:`deeplsm.cohort.LesionCohort`).""",
    "scores": """scores : array-like of shape (n_subjects,) or (n_subjects, n_outputs)
        Behavioural scores aligned with the subjects of ``lesions``.""",
    "verbose": """verbose : bool, default=True
        Show progress bars (they are hidden when the environment variable ``CI`` is set).""",
}


def fill_doc(obj: F) -> F:
    """Replace ``%(name)s`` placeholders in ``obj.__doc__`` with entries of :data:`docdict`."""
    if obj.__doc__:
        obj.__doc__ = obj.__doc__ % docdict
    return obj

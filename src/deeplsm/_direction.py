"""Score direction: which sign of a map means "damage here makes the deficit worse".

Every group map deeplsm writes (attributions, VLSM t, SVR-LSM beta, ridge coefficients) is
oriented so that this is its **positive** side:

* ``'higher_is_worse'`` (the default; the simulated scores, lesion load, error counts): the
  signed map as it comes, since damage that raises the score gives positive attributions,
  positive t (lesioned subjects score higher) and positive weights;
* ``'lower_is_worse'`` (aphasia quotients, naming accuracy, memory scores): the map negated, so
  that its negative part (damage lowers the score) becomes the positive map;
* ``'two_sided'``: the absolute value, so damage that moves the score either way counts.

A direction is given for all scores at once (a string) or per score (a mapping
``{score: direction}``; scores left out get the default). Case, spaces and hyphens are ignored,
so ``'lower-is-worse'`` and ``'two-sided'`` work.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import numpy as np

from deeplsm.exceptions import DeepLSMError

__all__ = ["DEFAULT_DIRECTION", "DIRECTIONS", "deficit_tail", "orient", "resolve_directions"]

DIRECTIONS = ("higher_is_worse", "lower_is_worse", "two_sided")
DEFAULT_DIRECTION = "higher_is_worse"
#: The settings type of one direction.
Direction = Literal[DIRECTIONS]
#: One-sided permutation-test tail (``'greater'``: lesioned subjects score higher) per direction.
DEFICIT_TAILS = {"higher_is_worse": "greater", "lower_is_worse": "less", "two_sided": "two-sided"}
#: In words, for the report and logs.
DESCRIPTIONS = {
    "higher_is_worse": "higher is worse: maps keep where damage raises the score",
    "lower_is_worse": "lower is worse: maps are negated, to keep where damage lowers the score",
    "two_sided": "two-sided: maps keep the absolute value (damage that moves the score either way)",
}


def spelling(value: Any) -> Any:
    """``'Lower-is-worse'`` -> ``'lower_is_worse'``; anything but a string passes unchanged."""
    return re.sub(r"[\s-]+", "_", value.strip().lower()) if isinstance(value, str) else value


def check_direction(value: Any, what: str = "direction") -> str:
    """One direction, spelled canonically, or a :class:`DeepLSMError` naming ``what``."""
    key = spelling(value)
    if key not in DIRECTIONS:
        raise DeepLSMError(f"{what} = {value!r}: must be one of {', '.join(DIRECTIONS)}")
    return key


def resolve_directions(direction: str | Mapping[str, str] | None, names: Iterable[str], *,
                       what: str = "direction") -> dict[str, str]:
    """The direction of every score in ``names``.

    Parameters
    ----------
    direction : str, mapping of score name -> str, or None
        One direction for every score, or one per score (scores not in the mapping get
        ``'higher_is_worse'``); ``None`` means the default for all.
    names : iterable of str
        The scores there are.
    what : str, default='direction'
        How the setting is called in error messages (``'scores.direction'``, ``'--direction'``).

    Returns
    -------
    dict of name -> direction, in the order of ``names``

    Raises
    ------
    DeepLSMError
        A direction that is not one of :data:`DIRECTIONS`, or a mapping that names scores that
        do not exist (all of them are named).

    Examples
    --------
    >>> resolve_directions({"naming": "lower-is-worse"}, ["naming", "errors"])
    {'naming': 'lower_is_worse', 'errors': 'higher_is_worse'}
    """
    names = [str(n) for n in names]
    if direction is None or isinstance(direction, str):
        d = DEFAULT_DIRECTION if direction is None else check_direction(direction, what)
        return {n: d for n in names}
    if not isinstance(direction, Mapping):
        raise DeepLSMError(f"{what} must be a direction or a mapping {{score: direction}}, "
                           f"got {type(direction).__name__}")
    unknown = [str(k) for k in direction if str(k) not in names]
    if unknown:
        raise DeepLSMError(f"{what} names unknown score(s) {', '.join(map(repr, unknown))}; the "
                           f"scores are {', '.join(names) or 'none'}")
    given = {str(k): check_direction(v, f"{what}.{k}") for k, v in direction.items()}
    return {n: given.get(n, DEFAULT_DIRECTION) for n in names}


def orient(values: np.ndarray, direction: str) -> np.ndarray:
    """``values`` turned so that "damage here makes the deficit worse" is positive.

    ``values`` itself for ``'higher_is_worse'`` (the same array, not a copy), ``-values`` for
    ``'lower_is_worse'``, ``|values|`` for ``'two_sided'``.

    Examples
    --------
    >>> orient(np.array([-2.0, 1.0]), "lower_is_worse").tolist()
    [2.0, -1.0]
    >>> orient(np.array([-2.0, 1.0]), "two_sided").tolist()
    [2.0, 1.0]
    """
    d = check_direction(direction)
    if d == "lower_is_worse":
        return -values
    if d == "two_sided":
        return np.abs(values)
    return values


def deficit_tail(direction: str) -> str:
    """The one-sided test towards the deficit: ``'greater'`` (lesioned subjects score higher)
    for ``'higher_is_worse'``, ``'less'`` for ``'lower_is_worse'``, ``'two-sided'`` for
    ``'two_sided'``."""
    return DEFICIT_TAILS[check_direction(direction)]

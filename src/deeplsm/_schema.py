"""One definition of every range a user can set: types for settings, CLI options and the API.

Each range is a pydantic type (``Annotated[int, Strict(), Ge(1)]`` and so on), written once here
or next to the settings that use it (``deeplsm.train.Hyperparameters``, the study sections in
``deeplsm.study``). Everything else derives from these types:

- :func:`check_param` checks one Python API argument (``simulate(roi_size=...)``, an estimator's
  parameters) and raises :class:`DeepLSMError` with one line naming the value and the range;
- :func:`cli_type` turns a type into an ``argparse`` ``type=`` callable;
- :func:`check_model` validates a dict against a pydantic model (the study settings, the
  training hyperparameters) and turns the first error into one line,
  ``models.overrides.max_epochs = -1: must be an integer >= 1``;
- :func:`describe` writes the allowed range in words, for those messages.

Types are strict: ``"2"``, ``1.5`` and ``True`` are not integers, and a string is not a number.
numpy scalars are accepted as the Python numbers they hold.
"""

from __future__ import annotations

import argparse
import os
import types
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types as at
import numpy as np
from pydantic import (
    AfterValidator,
    AllowInfNan,
    BaseModel,
    BeforeValidator,
    Strict,
    TypeAdapter,
    ValidationError,
)
from pydantic import create_model as _create_model

from deeplsm.exceptions import DeepLSMError


def Int(*, ge: int | None = None, gt: int | None = None, le: int | None = None,
        lt: int | None = None) -> Any:
    """An integer type with optional bounds (``True``, ``1.5`` and ``"2"`` are rejected)."""
    return Annotated[(int, Strict(), *_bounds(ge, gt, le, lt))]


def Float(*, ge: float | None = None, gt: float | None = None, le: float | None = None,
          lt: float | None = None) -> Any:
    """A finite number with optional bounds (integers are accepted, strings and booleans not)."""
    return Annotated[(float, Strict(), AllowInfNan(False), *_bounds(ge, gt, le, lt))]


def _bounds(ge, gt, le, lt) -> list:
    pairs = ((at.Ge, ge), (at.Gt, gt), (at.Le, le), (at.Lt, lt))
    return [cls(v) for cls, v in pairs if v is not None]


def _fspath(value: Any) -> Any:
    return os.fspath(value) if isinstance(value, os.PathLike) else value


def _listify(value: Any) -> Any:
    """A single string stands for a one-item list; a tuple is a list."""
    if isinstance(value, str):
        return [value]
    return list(value) if isinstance(value, tuple) else value


def _unique(value: list) -> list:
    if len(set(value)) != len(value):
        raise ValueError("repeated item")
    return value


class Describe:
    """Metadata that replaces the generated description of a type in error messages."""

    def __init__(self, text: str) -> None:
        self.text = text


def OneOrMore(item: Any) -> Any:
    """A list of distinct ``item`` values; a single string is read as a one-item list."""
    return Annotated[list[item], BeforeValidator(_listify), AfterValidator(_unique)]


# --- the shared ranges ---------------------------------------------------------------------------
PositiveInt = Int(ge=1)
NonNegativeInt = Int(ge=0)
PositiveFloat = Float(gt=0)
NonNegativeFloat = Float(ge=0)
AnyFloat = Float()
#: Seeds reach numpy (>= 0) and Lightning's ``seed_everything`` (< 2**32).
Seed = Int(ge=0, le=2**32 - 1)
#: Significance levels and p-value thresholds.
OpenUnitFloat = Float(gt=0, lt=1)
#: Binarisation thresholds of probabilistic maps.
UnitFloat = Float(gt=0, le=1)
#: Folds of a cross-validation.
CVFolds = Int(ge=2)
#: A count of subjects, or a fraction of them.
MinSubjects = PositiveInt | OpenUnitFloat
StrictBool = Annotated[bool, Strict()]
NonEmptyStr = Annotated[str, Strict(), at.MinLen(1)]
#: A file or folder; ``pathlib.Path`` objects are accepted and stored as strings.
PathStr = Annotated[str, BeforeValidator(_fspath), Strict(), at.MinLen(1)]
#: An occlusion window or stride: voxels, or a length in mm such as ``"12mm"``.
VoxelsOrMm = Annotated[
    PositiveInt | Annotated[str, Strict(), at.MinLen(3)],
    BeforeValidator(lambda v: _check_mm(v) if isinstance(v, str) else v),
    Describe("an integer >= 1 (voxels) or a length in mm such as '12mm'"),
]


def _check_mm(text: str) -> str:
    t = text.strip().lower()
    try:
        ok = t.endswith("mm") and float(t[:-2]) > 0 and np.isfinite(float(t[:-2]))
    except ValueError:
        ok = False
    if not ok:
        raise ValueError("not a length in mm")
    return t


# --- descriptions ----------------------------------------------------------------------------
def _num(v: float) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def describe(tp: Any) -> str:
    """The allowed values of type ``tp`` in words, e.g. ``'an integer >= 1, or None'``."""
    origin = get_origin(tp)
    if origin is Annotated:
        base, *meta = get_args(tp)
        custom = [m for m in meta if isinstance(m, Describe)]
        if custom:
            return custom[-1].text
        lo = hi = None
        for m in meta:
            if isinstance(m, at.Ge):
                lo = f">= {_num(m.ge)}"
            elif isinstance(m, at.Gt):
                lo = f"> {_num(m.gt)}"
            elif isinstance(m, at.Le):
                hi = ("<=", m.le)
            elif isinstance(m, at.Lt):
                hi = ("<", m.lt)
        text = describe(base)
        if base is str and any(isinstance(m, at.MinLen) and m.min_length == 1 for m in meta):
            return "a non-empty string"
        if base is int and lo and hi and hi[0] == "<=" and lo.startswith(">="):
            return f"{text} from {lo[3:]} to {_num(hi[1])}"
        bounds = [b for b in (lo, hi and f"{hi[0]} {_num(hi[1])}") if b]
        return f"{text} {' and '.join(bounds)}" if bounds else text
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        parts = [describe(a) for a in args if a is not type(None)]
        if type(None) in args:
            parts.append("None")
        return ", or ".join(parts)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin is list:
        (item,) = get_args(tp)
        if get_origin(item) is Literal:
            return "a list of distinct items from " + ", ".join(repr(a) for a in get_args(item))
        return f"a list, each item {describe(item)}"
    if origin is dict or tp is dict:
        return "a table"
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return "a table of settings"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string",
            type(None): "None"}.get(tp, getattr(tp, "__name__", str(tp)))


def show(value: Any, limit: int = 60) -> str:
    """``repr`` of a user's value, shortened."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- checking one value ----------------------------------------------------------------------
_ADAPTERS: dict[int, tuple[Any, TypeAdapter]] = {}


def _adapter(tp: Any) -> TypeAdapter:
    hit = _ADAPTERS.get(id(tp))
    if hit is None or hit[0] is not tp:
        hit = _ADAPTERS[id(tp)] = (tp, TypeAdapter(tp))
    return hit[1]


def _plain(value: Any) -> Any:
    """numpy scalars as Python scalars, inside lists and dicts too."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list | tuple):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def check_param(name: str, value: Any, tp: Any) -> Any:
    """Return ``value`` checked against type ``tp``, or raise one line naming ``name``.

    Examples
    --------
    >>> check_param("n_rois", 3, PositiveInt)
    3
    >>> check_param("n_rois", 0, PositiveInt)
    Traceback (most recent call last):
    ...
    deeplsm.exceptions.DeepLSMError: n_rois = 0: must be an integer >= 1
    """
    try:
        return _adapter(tp).validate_python(_plain(value))
    except ValidationError:
        raise DeepLSMError(f"{name} = {show(value)}: must be {describe(tp)}") from None


def cli_type(tp: Any) -> Callable[[str], Any]:
    """An ``argparse`` ``type=`` callable that reads a number and checks it against ``tp``."""

    def parse(text: str) -> Any:
        value: Any = text
        for conv in (int, float):
            try:
                value = conv(text)
                break
            except ValueError:
                continue
        try:
            return _adapter(tp).validate_python(value)
        except ValidationError:
            raise argparse.ArgumentTypeError(f"must be {describe(tp)}, got {text!r}") from None

    parse.__name__ = describe(tp)
    return parse


# --- checking a dict against a model ---------------------------------------------------------
class SettingError(ValueError):
    """Raise inside a model validator for a check between settings.

    ``key`` is relative to the model that raises it; the message becomes
    ``<section>.<key> = <value>: <text>``.
    """

    def __init__(self, key: str, value: Any, text: str) -> None:
        super().__init__(text)
        self.key, self.value, self.text = key, value, text


def field_type(model: type[BaseModel], name: str) -> Any:
    """The full annotated type of a model field (bounds included)."""
    f = model.model_fields[name]
    return Annotated[(f.annotation, *f.metadata)] if f.metadata else f.annotation


def partial_model(model: type[BaseModel], name: str | None = None) -> type[BaseModel]:
    """``model`` with every field optional but still checked when given.

    Dump it with ``model_dump(exclude_unset=True)`` to get the given fields only. ``None`` is
    accepted only where the field's own type allows it.
    """
    fields = {k: (field_type(model, k), None) for k in model.model_fields}
    return _create_model(name or f"Partial{model.__name__}", __config__=model.model_config, **fields)


def check_model(model: type[BaseModel], values: Mapping, *, prefix: str = "",
                unknown: str = "setting") -> BaseModel:
    """Validate ``values`` against ``model``; raise one :class:`DeepLSMError` line on the first error."""
    try:
        return model.model_validate(_plain(dict(values)))
    except ValidationError as err:
        raise DeepLSMError(error_message(err, model, prefix=prefix, unknown=unknown)) from None


def error_message(err: ValidationError, model: type[BaseModel], *, prefix: str = "",
                  unknown: str = "setting") -> str:
    """The first error of ``err`` as one line: the key, the value and the allowed range."""
    e = err.errors(include_url=False)[0]
    path: list[str] = [prefix] if prefix else []
    tp: Any = model
    owner: type[BaseModel] | None = None
    for part in e["loc"]:
        inner = _strip(tp)
        if isinstance(inner, type) and issubclass(inner, BaseModel) and isinstance(part, str):
            if part not in inner.model_fields:
                if e["type"] == "extra_forbidden":
                    owner = inner
                    path.append(part)
                break
            tp = field_type(inner, part)
            path.append(part)
        elif isinstance(part, int) and get_origin(inner) is list:
            tp = get_args(inner)[0]
            path[-1] = f"{path[-1]}[{part}]"
        else:
            break
    key = ".".join(path)
    if owner is not None:
        return f"unknown {unknown} {key}; known: {', '.join(owner.model_fields)}"
    exc = (e.get("ctx") or {}).get("error")
    if isinstance(exc, SettingError):
        if not exc.key:
            return f"{key}: {exc.text}"
        return f"{'.'.join([*path, exc.key])} = {show(exc.value)}: {exc.text}"
    if e["type"] == "missing":
        return f"{key} is required ({describe(tp)})"
    return f"{key} = {show(e['input'])}: must be {describe(tp)}"


def _strip(tp: Any) -> Any:
    """The type under ``Annotated`` and ``X | None``."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp

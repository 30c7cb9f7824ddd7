"""Small helpers shared by every stage: seeding, atomic writes, versions, progress."""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import shutil
import tomllib
from collections.abc import Callable, Iterable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from deeplsm._outputs import install_dir, make_temp_dir, write_marker
from deeplsm.exceptions import DeepLSMError

_PACKAGES = (
    "deeplsm", "numpy", "scipy", "pandas", "nibabel", "nilearn", "scikit-learn",
    "torch", "monai", "captum", "lightning", "matplotlib",
)


def read_toml(path: str | os.PathLike) -> dict:
    """A TOML file as a dict; a missing or invalid file is a :class:`DeepLSMError` (one line)."""
    p = Path(path)
    if not p.is_file():
        raise DeepLSMError(f"config file does not exist: {p}")
    try:
        return tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise DeepLSMError(f"{p}: not valid TOML ({err})") from None


def check_random_state(random_state: int | np.random.Generator | None) -> np.random.Generator:
    """Return a :class:`numpy.random.Generator` for ``random_state``."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    return np.random.default_rng(random_state)


def package_versions() -> dict[str, str]:
    """Versions of Python and of the packages a result depends on."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def progress_disabled(verbose: bool = True) -> bool:
    """Progress bars are shown unless ``verbose`` is false or we run in CI."""
    return (not verbose) or bool(os.environ.get("CI"))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, owns: Iterable[str] = (),
                command: str | None = None) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; move it onto ``path`` only on success.

    Works for files and folders, so a failure never leaves partial output behind. A folder gets
    deeplsm's marker (owning its entries and the names or patterns in ``owns``, for files added
    later) and is installed by :func:`deeplsm._outputs.install_dir`: an existing folder is
    replaced only when deeplsm wrote it, and then only deeplsm's own entries are. Nothing that
    deeplsm did not write is ever deleted.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stage = make_temp_dir(path)
    tmp = stage / path.name
    try:
        yield tmp
        if tmp.is_dir():
            write_marker(tmp, owns=owns, command=command, own_contents=True)
            install_dir(tmp, path)
        else:
            if path.is_dir() and not path.is_symlink():
                raise DeepLSMError(f"cannot write file {path}: a folder of that name exists")
            os.replace(tmp, path)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def json_ready(obj: Any, *, _where: str = "", _found: dict | None = None) -> Any:
    """``obj`` with numpy types converted and NaN/infinity replaced by ``None``.

    When ``_found`` is given, it collects ``{dotted.path: 'nan' | 'inf' | '-inf'}`` for every
    replaced value, so that the reason for a ``null`` can be recorded.
    """
    if isinstance(obj, np.ndarray):
        obj = obj.tolist()
    elif isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float):
        if math.isfinite(obj):
            return obj
        if _found is not None:
            _found[_where or "."] = "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
        return None
    if isinstance(obj, dict):
        return {k: json_ready(v, _where=f"{_where}.{k}" if _where else str(k), _found=_found)
                for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_ready(v, _where=f"{_where}[{i}]", _found=_found) for i, v in enumerate(obj)]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def json_text(obj: Any, *, fallback: Callable[[Any], Any] | None = None) -> str:
    """Strict JSON text (no NaN or Infinity) of ``obj``; see :func:`write_json`.

    ``fallback`` converts objects JSON cannot hold (e.g. ``str``); without it they are an error.
    """
    found: dict[str, str] = {}
    clean = json_ready(obj, _found=found)
    if found and isinstance(clean, dict):
        clean["non_finite_values"] = {
            "note": "these values were not finite numbers; JSON has none, so they are written as null",
            **found,
        }

    def default(o: Any) -> Any:
        try:
            return _json_default(o)
        except TypeError:
            if fallback is None:
                raise
            return fallback(o)

    return json.dumps(clean, indent=2, allow_nan=False, default=default) + "\n"


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented, strictly valid JSON, atomically.

    numpy scalars and arrays are converted. NaN and infinity become ``null``; a dict gets a
    ``non_finite_values`` entry naming each such value and what it was.
    """
    text = json_text(obj)
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")

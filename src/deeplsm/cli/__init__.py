"""The ``deeplsm`` command line: a thin layer over the Python API.

Each subcommand lives in its own module here and exposes ``register(subparsers)``, which adds
its parser and sets ``func`` to a callable taking the parsed arguments. User errors
(:class:`DeepLSMError`) become one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import warnings
from collections.abc import Sequence

from deeplsm import __version__
from deeplsm.exceptions import DeepLSMError

# Subcommand modules, in the order they appear in --help (the pipeline's order).
COMMANDS = (
    "_synth", "_simulate", "_train", "_explain", "_evaluate", "_vlsm", "_svr", "_faces", "_study", "_demo",
    "_benchmark",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deeplsm",
        description="Lesion-symptom mapping with multi-output 3D CNNs, attribution maps, "
        "VLSM and SVR-LSM.",
    )
    parser.add_argument("--version", action="version", version=f"deeplsm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"deeplsm.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code (0 ok, 2 user error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging()
    warnings.formatwarning = _format_warning
    try:
        rc = args.func(args)
    except DeepLSMError as err:
        print(f"deeplsm: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("deeplsm: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at emit time (pytest swaps it per test)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def _setup_logging() -> None:
    """Our own INFO lines as ``deeplsm: …``; other libraries' loggers are left alone.

    When the host already configured logging (an application embedding ``main``, or pytest),
    records propagate to its handlers instead.
    """
    log = logging.getLogger("deeplsm")
    if not log.handlers and not logging.getLogger().handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("deeplsm: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


def _format_warning(message, category, filename, lineno, line=None) -> str:
    return f"deeplsm: warning: {message}\n"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

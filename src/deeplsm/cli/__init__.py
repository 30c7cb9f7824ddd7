"""The ``deeplsm`` command line: a thin layer over the Python API.

Each subcommand lives in its own module here and exposes ``register(subparsers)``, which adds
its parser and sets ``func`` to a callable taking the parsed arguments. Every failure is one
line on stderr and no traceback: user errors (:class:`DeepLSMError`, bad options) and errors of
the file system or the environment (no space, permission denied, read-only, out of memory) exit
with code 2, internal errors with 1 (``DEEPLSM_DEBUG=1`` shows their traceback), and Ctrl-C or
SIGTERM with 130 or 143 after ``deeplsm: interrupted``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence

from deeplsm import __version__
from deeplsm.exceptions import DeepLSMError

# Subcommand modules, in the order they appear in --help (the pipeline's order).
COMMANDS = (
    "_synth", "_simulate", "_train", "_explain", "_evaluate", "_vlsm", "_svr", "_ridge", "_faces", "_study",
    "_demo", "_benchmark",
)


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line, ``deeplsm: error: ...``, for the subcommands too; exit code 2."""

    def error(self, message: str):  # type: ignore[override]
        hint = f" (see '{self.prog} --help')"
        self.exit(2, f"deeplsm: error: {message}{hint}\n")


class _Interrupted(KeyboardInterrupt):
    """Raised by the SIGTERM handler, so that a kill unwinds like Ctrl-C (temporary files go)."""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="deeplsm",
        description="Lesion-symptom mapping with multi-output 3D CNNs, attribution maps, "
        "VLSM, SVR-LSM and ridge LSM.",
    )
    parser.add_argument("--version", action="version", version=f"deeplsm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module(f"deeplsm.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code (0 ok, 2 user or environment error, 1 internal error,
    130/143 interrupted by SIGINT/SIGTERM)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging()
    warnings.formatwarning = _format_warning
    received: list[int] = []
    try:
        with _sigterm_raises(received):
            rc = args.func(args)
    except DeepLSMError as err:
        return _fail(err)
    except KeyboardInterrupt:
        hint = getattr(args, "interrupt_hint", None)
        print("deeplsm: interrupted" + (f"; {hint}" if hint else ""), file=sys.stderr)
        return 128 + (received[-1] if received else signal.SIGINT)
    except OSError as err:
        from deeplsm._outputs import describe_os_error

        return _fail(describe_os_error(err))
    except MemoryError:
        return _fail("out of memory; use a coarser grid (--voxel-size), fewer subjects or a smaller batch")
    except Exception as err:
        if os.environ.get("DEEPLSM_DEBUG"):
            raise
        cause = str(err).splitlines()[0] if str(err) else ""
        print(f"deeplsm: error: internal error ({type(err).__name__}: {cause}); please report it, "
              "and rerun with DEEPLSM_DEBUG=1 for the traceback", file=sys.stderr)
        return 1
    return int(rc or 0)


def _fail(message: object) -> int:
    text = " ".join(str(message).split("\n"))
    print(f"deeplsm: error: {text}", file=sys.stderr)
    return 2


@contextlib.contextmanager
def _sigterm_raises(received: list[int]) -> Iterator[None]:
    """While a command runs, SIGTERM (and SIGINT) unwind the stack at once, as Ctrl-C does.

    Lightning composes this handler with its own during training, so a kill stops training
    within a step instead of at the end of the epoch.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        received.append(signum)
        raise _Interrupted()

    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    signal.signal(signal.SIGTERM, handler)
    if before[signal.SIGINT] is signal.default_int_handler:
        signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        for s, h in before.items():
            signal.signal(s, h)


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

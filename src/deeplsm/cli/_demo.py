"""``deeplsm demo``: the whole paper on the embedded synthetic cohort."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole study on the embedded synthetic WMH cohort")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--quick", action="store_true", help="tiny version for tests (< 2 minutes)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print("deeplsm demo: not yet available; the end-to-end study lands with issue #6. "
          "Use 'deeplsm synth' and 'deeplsm simulate' meanwhile.", file=sys.stderr)
    return 0

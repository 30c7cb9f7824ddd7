"""``deeplsm benchmark``: scenario × N × lesion source × seed, every method on the same subjects.

Each cell of the grid is one :func:`deeplsm.study.run_study` on N subjects drawn from a lesion
source, with scores from one of the simulation scenarios; the cells' ``metrics.json`` are
collected into a tidy ``results.csv`` and summarised in ``benchmark.html``.
"""

from deeplsm.benchmark._config import (
    DEFAULTS,
    Cell,
    cells,
    load_bench_config,
    make_bench_config,
    quick_config,
    study_config,
)
from deeplsm.benchmark._results import (
    HEADLINE_ATTRIBUTION,
    collect_results,
    headline_attribution,
    headline_means,
    tidy_metrics,
)
from deeplsm.benchmark._runner import launch_cell, run_benchmark

__all__ = [
    "DEFAULTS",
    "HEADLINE_ATTRIBUTION",
    "Cell",
    "cells",
    "collect_results",
    "headline_attribution",
    "headline_means",
    "launch_cell",
    "load_bench_config",
    "make_bench_config",
    "quick_config",
    "run_benchmark",
    "study_config",
    "tidy_metrics",
]

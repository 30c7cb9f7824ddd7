"""The study report: ``metrics.json`` (stable schema), ``report.html`` and ``README.txt``."""

from deeplsm.report._metrics import METRIC_KEYS, build_metrics
from deeplsm.report._report import write_report

__all__ = ["METRIC_KEYS", "build_metrics", "write_report"]

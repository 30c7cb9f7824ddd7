"""Evaluation metrics."""

from deeplsm.evaluate._prediction import (
    binary_metrics,
    multiclass_metrics,
    prediction_metrics,
    regression_metrics,
)

__all__ = ["binary_metrics", "multiclass_metrics", "prediction_metrics", "regression_metrics"]

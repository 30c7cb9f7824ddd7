"""Map-vs-truth metrics: localisation of attribution or statistic maps against ROIs."""

from deeplsm.evaluate._figures import plot_pr_curves
from deeplsm.evaluate._localization import (
    average_precision,
    best_f1_dice,
    brain_mask_for,
    continuous_dice,
    evaluate_map,
    evaluate_maps,
    pr_auc,
    pr_curve,
)

__all__ = [
    "average_precision",
    "best_f1_dice",
    "brain_mask_for",
    "continuous_dice",
    "evaluate_map",
    "evaluate_maps",
    "plot_pr_curves",
    "pr_auc",
    "pr_curve",
]

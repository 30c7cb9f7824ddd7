"""Evaluation: prediction metrics, and localisation of attribution or statistic maps against ROIs."""

from deeplsm.evaluate._clusters import (
    Atlas,
    cluster_table,
    clusters_path,
    load_atlas,
    write_cluster_table,
)
from deeplsm.evaluate._figures import plot_pr_curves
from deeplsm.evaluate._localization import (
    DEFINITIONS,
    METRICS_VERSION,
    average_precision,
    best_f1_dice,
    brain_mask_for,
    continuous_dice,
    evaluate_map,
    evaluate_maps,
    label_list,
    pr_auc_trapezoid,
    pr_curve,
    truth_centres,
)
from deeplsm.evaluate._prediction import (
    binary_metrics,
    multiclass_metrics,
    prediction_metrics,
    regression_metrics,
)

__all__ = [
    "DEFINITIONS",
    "METRICS_VERSION",
    "Atlas",
    "average_precision",
    "best_f1_dice",
    "binary_metrics",
    "brain_mask_for",
    "cluster_table",
    "clusters_path",
    "continuous_dice",
    "evaluate_map",
    "evaluate_maps",
    "label_list",
    "load_atlas",
    "multiclass_metrics",
    "plot_pr_curves",
    "pr_auc_trapezoid",
    "pr_curve",
    "prediction_metrics",
    "regression_metrics",
    "truth_centres",
    "write_cluster_table",
]

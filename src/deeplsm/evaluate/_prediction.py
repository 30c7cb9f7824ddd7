"""Prediction metrics on the test split: regression, binary and multiclass."""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats
from sklearn.metrics import accuracy_score, balanced_accuracy_score, mean_squared_error, r2_score


def _clean(v: float) -> float | None:
    v = float(v)
    return v if np.isfinite(v) else None


def regression_metrics(y_true, y_pred) -> dict[str, float | None]:
    """MSE, squared Pearson r with its two-sided p-value, and sklearn's R² (coefficient of
    determination, which, unlike r², also penalises bias and scale errors).

    Undefined values (a constant prediction has no correlation) are ``None``.

    Examples
    --------
    >>> m = regression_metrics([0, 1, 2, 3], [0, 1, 2, 3])
    >>> m["mse"], m["r2_pearson"], m["r2_score"]
    (0.0, 1.0, 1.0)
    """
    t = np.asarray(y_true, dtype=float).ravel()
    p = np.asarray(y_pred, dtype=float).ravel()
    out: dict[str, float | None] = {"n": len(t), "mse": _clean(mean_squared_error(t, p))}
    if len(t) >= 2 and np.ptp(t) > 0 and np.ptp(p) > 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r, pval = stats.pearsonr(t, p)
        out.update(pearson_r=_clean(r), r2_pearson=_clean(r * r), pearson_p=_clean(pval))
    else:
        out.update(pearson_r=None, r2_pearson=None, pearson_p=None)
    out["r2_score"] = _clean(r2_score(t, p)) if len(t) >= 2 and np.ptp(t) > 0 else None
    return out


def binary_metrics(y_true, prob, threshold: float = 0.5) -> dict[str, float]:
    """Accuracy of ``prob >= threshold`` against 0/1 labels."""
    t = np.asarray(y_true).astype(int).ravel()
    pred = (np.asarray(prob, dtype=float).ravel() >= threshold).astype(int)
    return {"n": len(t), "accuracy": float(accuracy_score(t, pred))}


def multiclass_metrics(y_true, prob) -> dict[str, float]:
    """Accuracy and balanced accuracy of the arg-max class of ``prob`` (n, k)."""
    t = np.asarray(y_true).astype(int).ravel()
    pred = np.asarray(prob, dtype=float).argmax(axis=1)
    with warnings.catch_warnings():
        # balanced accuracy warns when a class is absent from y_true; that is fine here.
        warnings.simplefilter("ignore")
        bal = balanced_accuracy_score(t, pred)
    return {"n": len(t), "accuracy": float(accuracy_score(t, pred)), "balanced_accuracy": float(bal)}


def prediction_metrics(task, y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, dict]:
    """Metrics per output.

    Parameters
    ----------
    task : deeplsm.models.TaskSpec
    y_true : ndarray of shape (n, len(task))
        One column per output (class labels for classification outputs).
    y_pred : ndarray of shape (n, task.total)
        The network's concatenated outputs.
    """
    out = {}
    cols = task.columns
    for i, spec in enumerate(task):
        p = np.asarray(y_pred)[:, cols[spec.name]]
        t = np.asarray(y_true)[:, i]
        if spec.kind in ("regression01", "regression"):
            out[spec.name] = regression_metrics(t, p[:, 0])
        elif spec.kind == "binary":
            out[spec.name] = binary_metrics(t, p[:, 0])
        else:
            out[spec.name] = multiclass_metrics(t, p)
    return out

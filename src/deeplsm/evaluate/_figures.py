"""PR-curve figure like the paper's Figure 9: one panel per output, one curve per method."""

from __future__ import annotations

import os
from pathlib import Path

from deeplsm._utils import atomic_path


def curve_points(result: dict) -> tuple[list[float], list[float]]:
    """(recall, precision) of one result's curve as drawn: extended flat to recall 0 with the
    precision of its highest threshold (never from the point (0, 1))."""
    rec, pre = [float(x) for x in result["recall"]], [float(x) for x in result["precision"]]
    if rec[0] > 0:
        rec, pre = [0.0, *rec], [pre[0], *pre]
    return rec, pre


def plot_pr_curves(evaluation: dict, path: str | os.PathLike) -> Path:
    """Draw the PR curves of :func:`evaluate_maps` output into a PNG, atomically.

    Each panel is one output (ROI); each line one method's curve at the evaluated thresholds,
    extended flat to recall 0 with the precision of its highest threshold, and labelled with its
    PR-AUC (step-wise average precision); the dashed line is the prevalence (a random map's
    precision).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    results = evaluation["results"]
    outputs = sorted({o for per in results.values() for o in per})
    n = max(1, len(outputs))
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 4.0), squeeze=False)
    for ax, output in zip(axes[0], outputs):
        prevalence = None
        for method in sorted(results):
            r = results[method].get(output)
            if r is None:
                continue
            rec, pre = curve_points(r)
            ax.plot(rec, pre, label=f"{method} (AP {r['pr_auc']:.3f})")
            prevalence = r["prevalence"]
        if prevalence is not None:
            ax.axhline(prevalence, ls="--", color="grey", label=f"random ({prevalence:.4f})")
        ax.set(title=output, xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
        ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path

"""Figures of the benchmark page, as PNG bytes: metric against N, and the best method per cell."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

#: One colour per method, the same in every figure (colour-blind safe, Paul Tol's "bright").
METHOD_COLOURS = {"multi": "#ee6677", "single": "#ccbb44", "ridge": "#228833", "svr": "#4477aa",
                  "vlsm": "#66ccee"}
METRIC_TITLES = {"r2": "test r² (squared Pearson)", "pr_auc": "PR-AUC",
                 "R2": "test R² (sklearn)", "cdc": "continuous Dice"}


def colour(method: str) -> str:
    return METHOD_COLOURS.get(method, "#bbbbbb")


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def curves_figure(means: pd.DataFrame, metrics: tuple[str, ...] = ("r2", "pr_auc")) -> bytes:
    """Rows = scenarios, columns = metrics: mean over scores and seeds against N, one line per
    method, the band spanning the per-seed means (the seed spread)."""
    scenarios = list(dict.fromkeys(means["scenario"]))
    fig, axes = plt.subplots(len(scenarios), len(metrics), figsize=(4.2 * len(metrics), 2.8 * len(scenarios)),
                             squeeze=False)
    for i, sc in enumerate(scenarios):
        for j, metric in enumerate(metrics):
            ax = axes[i, j]
            d = means[(means["scenario"] == sc) & (means["metric"] == metric)]
            for method, m in d.groupby("method", sort=False):
                m = m.sort_values("n")
                ax.plot(m["n"], m["mean"], "o-", color=colour(method), label=method, lw=1.5, ms=4)
                ax.fill_between(m["n"], m["lo"], m["hi"], color=colour(method), alpha=0.2, lw=0)
            ax.set_title(f"{sc}: {METRIC_TITLES.get(metric, metric)}", fontsize=10)
            ax.set_xlabel("N (subjects)")
            if metric in ("r2", "pr_auc", "cdc"):
                ax.set_ylim(0, 1.02)
            ns = sorted(d["n"].unique())
            if ns:
                ax.set_xticks(ns)
            ax.grid(alpha=0.3)
            if len(d):
                ax.legend(fontsize=7, loc="best")
            else:
                ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    return _png(fig)


def best_method_table(means: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Scenario × N: the method with the highest mean ``metric`` (ties: the first in the data)."""
    d = means[means["metric"] == metric]
    if d.empty:
        return pd.DataFrame(columns=["scenario", "n", "method", "mean"])
    idx = d.groupby(["scenario", "n"], sort=False)["mean"].idxmax()
    return d.loc[idx, ["scenario", "n", "method", "mean"]].reset_index(drop=True)


def heatmap_figure(means: pd.DataFrame, metrics: tuple[str, ...] = ("r2", "pr_auc")) -> bytes:
    """The best method per scenario (rows) and N (columns), one panel per metric."""
    scenarios = list(dict.fromkeys(means["scenario"]))
    ns = sorted(means["n"].unique())
    fig, axes = plt.subplots(1, len(metrics), figsize=(1.3 * len(ns) * len(metrics) + 2.5,
                                                      0.55 * len(scenarios) + 1.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        best = best_method_table(means, metric)
        rgb = np.ones((len(scenarios), len(ns), 3))
        for _, row in best.iterrows():
            i, j = scenarios.index(row["scenario"]), ns.index(row["n"])
            rgb[i, j] = matplotlib.colors.to_rgb(colour(row["method"]))
            ax.text(j, i, f"{row['method']}\n{row['mean']:.2f}", ha="center", va="center", fontsize=8)
        ax.imshow(rgb, aspect="auto")
        ax.set_xticks(range(len(ns)), [str(n) for n in ns])
        ax.set_yticks(range(len(scenarios)), scenarios)
        ax.set_xlabel("N (subjects)")
        ax.set_title(f"best by {METRIC_TITLES.get(metric, metric)}", fontsize=10)
    fig.tight_layout()
    return _png(fig)

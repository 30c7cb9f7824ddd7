"""Figures like the paper's Fig. 5 (image, predictions against the truth) and Fig. 6 (outputs ×
methods grid of attribution maps)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from deeplsm._utils import atomic_path


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    _plt().close(fig)
    return path


def plot_prediction_example(path: str | os.PathLike, image: np.ndarray, truth: Mapping[str, str],
                            predicted: Mapping[str, Mapping[str, str]], *, title: str = "") -> Path:
    """Fig. 5: the image and a table of the ground truth and each model's predictions.

    Parameters
    ----------
    path : path of the PNG
    image : ndarray of shape (H, W, 3), uint8 or floats in [0, 1]
    truth : output -> label text
    predicted : model group ('multi', 'single') -> output -> prediction text
    """
    plt = _plt()
    groups = list(predicted)
    fig, (ax_img, ax_tab) = plt.subplots(1, 2, figsize=(4 + 2.2 * len(groups), 3.2),
                                         gridspec_kw={"width_ratios": [1, 0.6 + 0.5 * len(groups)]})
    ax_img.imshow(image)
    ax_img.set_title(title, fontsize=9)
    ax_img.axis("off")
    ax_tab.axis("off")
    cols = ["truth", *(f"{g}-output" for g in groups)]
    cells = [[truth[o], *(predicted[g][o] for g in groups)] for o in truth]
    # the bbox leaves the left quarter of the axes to the row labels
    tab = ax_tab.table(cellText=cells, rowLabels=list(truth), colLabels=cols, cellLoc="center",
                       bbox=[0.25, 0.5 - 0.09 * (len(cells) + 1), 0.75, 0.18 * (len(cells) + 1)])
    tab.auto_set_font_size(False)
    tab.set_fontsize(9)
    return _save(fig, Path(path))


def plot_explanation_grid(path: str | os.PathLike, image: np.ndarray,
                          maps: Mapping[str, Mapping[str, np.ndarray]], *, title: str = "",
                          masks: Mapping[str, np.ndarray] | None = None,
                          labels: Mapping[str, str] | None = None) -> Path:
    """Fig. 6: one row per output, the image then one |attribution| map per method.

    Each map is scaled to its own maximum. With ``masks``, the output's ground-truth region is
    outlined in cyan.
    """
    plt = _plt()
    outputs = list(maps)
    methods = list(next(iter(maps.values())))
    fig, axes = plt.subplots(len(outputs), len(methods) + 1,
                             figsize=(2.3 * (len(methods) + 1), 2.3 * len(outputs)), squeeze=False)
    for r, out in enumerate(outputs):
        axes[r, 0].imshow(image)
        axes[r, 0].set_ylabel(out, fontsize=10)
        axes[r, 0].set_xticks([])
        axes[r, 0].set_yticks([])
        if r == 0:
            axes[r, 0].set_title("image", fontsize=9)
        for c, m in enumerate(methods, start=1):
            ax = axes[r, c]
            v = np.asarray(maps[out][m], dtype=float)
            hi = v.max() if v.max() > 0 else 1.0
            ax.imshow(image, alpha=0.35)
            ax.imshow(v / hi, cmap="inferno", vmin=0, vmax=1, alpha=0.8)
            if masks is not None and out in masks:
                ax.contour(masks[out].astype(float), levels=[0.5], colors="cyan", linewidths=0.8)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title((labels or {}).get(m, m), fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, Path(path))

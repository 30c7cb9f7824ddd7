"""Figures of the study report (the paper's Figs. 2-4, 7, 9, A.1, A.2), as PNG bytes.

Brain images are drawn with nilearn on its bundled MNI152 template, at coronal slices through
the centres of the ground truth, as in the paper. A score's truth is the union of its labels
(``truths``: score -> labels, see :meth:`deeplsm.study.Study.truth_per_score`), outlined in the
score's colour; a truth of several separate regions (``and``, ``or``, ``mixture``, a broken
``tract``) gets a slice through each region's centre (up to :data:`MAX_CUTS` per score).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np
import pandas as pd
from sklearn.metrics import r2_score

ROI_COLOURS = ("lime", "cyan", "magenta", "yellow", "orange", "white")
#: Slices through at most this many regions of one score's truth (its largest).
MAX_CUTS = 3


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _template():
    from nilearn.datasets import load_mni152_template

    return load_mni152_template(resolution=2)


def truth_img(labels_img: nib.Nifti1Image, labels: Sequence[int]) -> nib.Nifti1Image:
    """The union of ``labels`` of a label image, as a 0/1 float image (a score's truth)."""
    data = np.isin(np.asarray(labels_img.dataobj), list(labels)).astype(np.float32)
    return nib.Nifti1Image(data, labels_img.affine)


def truth_cuts(labels_img: nib.Nifti1Image, labels: Sequence[int], *,
               max_cuts: int = MAX_CUTS) -> list[float]:
    """Coronal (y, mm) slices through the centres of the regions of a score's truth: one per
    connected component, the largest ``max_cuts`` ones, ascending; centres less than a voxel
    apart in y share a slice."""
    from deeplsm.evaluate import truth_centres

    centres = truth_centres(truth_img(labels_img, labels).get_fdata() > 0, labels_img.affine)
    return _distinct([float(c[1]) for c in centres[:max_cuts]], _voxel_y(labels_img))


def _voxel_y(img: nib.Nifti1Image) -> float:
    return float(np.linalg.norm(img.affine[:3, 1])) or 1.0


def _distinct(ys: Sequence[float], tol: float) -> list[float]:
    out: list[float] = []
    for y in sorted(ys):
        if not out or y - out[-1] >= tol:
            out.append(y)
    return out


def _all_cuts(labels_img: nib.Nifti1Image, truths: Mapping[str, Sequence[int]]) -> list[float]:
    ys = [y for labels in truths.values() for y in truth_cuts(labels_img, labels)]
    return _distinct(ys, _voxel_y(labels_img))


def _outline(display, labels_img: nib.Nifti1Image, truths: Mapping[str, Sequence[int]],
             width: float = 1.5) -> list:
    """Outline each score's truth in its colour; return legend handles."""
    from matplotlib.lines import Line2D

    handles = []
    for k, (name, labels) in enumerate(truths.items()):
        colour = ROI_COLOURS[k % len(ROI_COLOURS)]
        display.add_contours(truth_img(labels_img, labels), levels=[0.5], colors=[colour],
                             linewidths=width)
        handles.append(Line2D([0], [0], color=colour, lw=2,
                              label=f"{name} ({'+'.join(map(str, labels))})"))
    return handles


def _legend(fig, handles: list) -> None:
    if handles:
        fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.02),
                   ncol=min(len(handles), 4), fontsize=8, frameon=True, facecolor="0.35",
                   edgecolor="0.35", title="truth of each score (its labels)", title_fontsize=8)


#: Colour of the outline of the tested voxels (the ``min_subjects`` mask).
TESTED_COLOUR = "deepskyblue"


def frequency_figure(freq_img: nib.Nifti1Image, labels_img: nib.Nifti1Image | None,
                     truths: Mapping[str, Sequence[int]] | None,
                     tested_img: nib.Nifti1Image | None = None) -> bytes:
    """Fig. 2: lesion frequency map with each score's truth outlined (the union of its labels),
    at the coronal slices through the truths' centres.

    ``tested_img`` (a binary mask on the same grid) is outlined as a dashed line: the voxels a
    voxelwise method tests. Without a truth, the slices are chosen by nilearn's ``find_cut_slices``.
    """
    from nilearn import plotting

    has_truth = labels_img is not None and bool(truths)
    if has_truth:
        cuts = _all_cuts(labels_img, truths)
    else:
        cuts = [float(c) for c in plotting.find_cut_slices(freq_img, direction="y", n_cuts=3)]
    fig = plt.figure(figsize=(3.2 * max(1, len(cuts)), 3.4))
    title = "lesion frequency (subjects)" + (" and ground truth" if has_truth else "")
    if tested_img is not None:
        title += ", tested voxels (dashed)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        display = plotting.plot_stat_map(
            freq_img, bg_img=_template(), display_mode="y", cut_coords=cuts, cmap="hot",
            colorbar=True, figure=fig, title=title, black_bg=True,
        )
        if tested_img is not None and np.asarray(tested_img.dataobj).any():
            display.add_contours(tested_img, levels=[0.5], colors=[TESTED_COLOUR], linewidths=1.0,
                                 linestyles="dashed")
        if has_truth:
            _legend(fig, _outline(display, labels_img, truths))
    return _png(fig)


def voxels_tested_per_overlap(counts: np.ndarray, n_subjects: int) -> tuple[np.ndarray, np.ndarray]:
    """``(k, voxels lesioned in at least k and spared in at least k subjects)`` for k = 1 .. n/2,
    from ``counts``, the number of lesioned subjects per voxel."""
    c = np.asarray(counts, dtype=np.int64).ravel()
    ks = np.arange(1, max(2, n_subjects // 2 + 1))
    cum = np.cumsum(np.bincount(c, minlength=n_subjects + 2)[::-1])[::-1]  # cum[k]: lesioned in >= k
    # lesioned in k .. n - k subjects: cum[k] - cum[n - k + 1]
    return ks, np.array([max(0, int(cum[k] - cum[n_subjects - k + 1])) for k in ks])


def tested_voxels_curve(counts: np.ndarray, n_subjects: int, min_subjects: int) -> bytes:
    """How many voxels a voxelwise test keeps at each minimum lesion overlap ``k``: lesioned in at
    least ``k`` and spared in at least ``k`` of ``n_subjects`` (``counts``: lesioned subjects per
    voxel); the chosen ``min_subjects`` is marked."""
    ks, tested = voxels_tested_per_overlap(counts, n_subjects)
    fig, ax = plt.subplots(figsize=(4.6, 3.0))
    ax.plot(ks, tested, color="#4477aa", lw=1.5)
    at = int(tested[min_subjects - 1]) if 1 <= min_subjects <= len(ks) else 0
    ax.axvline(min_subjects, color="k", ls="--", lw=0.8)
    ax.plot([min_subjects], [at], "o", color="k")
    ax.annotate(f"min_subjects = {min_subjects}: {at} voxels", (min_subjects, at),
                textcoords="offset points", xytext=(6, 6), fontsize=8)
    ax.set_xlabel("minimum lesion overlap k (subjects)")
    ax.set_ylabel("voxels tested")
    ax.set_title(f"voxels lesioned and spared in >= k of {n_subjects} subjects", fontsize=9)
    ax.set_xlim(1, ks[-1])
    ax.set_ylim(0, None)
    fig.tight_layout()
    return _png(fig)


def cv_figure(folds: pd.DataFrame, outputs: Sequence[str], methods: Sequence[str]) -> bytes:
    """Spread of the cross-validated test r² (top row) and R² (bottom row): one panel per score,
    a box and the individual folds (dots, jittered) per method."""
    metrics = [m for m in ("r2", "R2") if (folds["metric"] == m).any()]
    fig, axes = plt.subplots(len(metrics), len(outputs),
                             figsize=(max(3.0, 0.9 * len(methods) + 1.2) * len(outputs), 2.8 * len(metrics)),
                             squeeze=False)
    rng = np.random.default_rng(0)
    for i, metric in enumerate(metrics):
        for j, name in enumerate(outputs):
            ax = axes[i, j]
            sub = folds[(folds["metric"] == metric) & (folds["score"] == name)]
            data = [pd.to_numeric(sub.loc[sub["method"] == m, "value"], errors="coerce").dropna().to_numpy()
                    for m in methods]
            pos = np.arange(1, len(methods) + 1)
            ax.boxplot([d if d.size else [np.nan] for d in data], positions=pos, widths=0.5,
                       showfliers=False, medianprops={"color": "k"})
            for p, d in zip(pos, data):
                ax.scatter(p + rng.uniform(-0.12, 0.12, d.size), d, s=12, alpha=0.7, zorder=3)
            ax.set_xticks(pos, list(methods), fontsize=8)
            ax.set_title(f"{name}: test {'r²' if metric == 'r2' else 'R²'}", fontsize=9)
            if metric == "r2":
                ax.set_ylim(0, 1.02)
            ax.axhline(0, color="grey", lw=0.6)
    fig.tight_layout()
    return _png(fig)


def score_histograms(scores: pd.DataFrame) -> bytes:
    """Fig. 3: distribution of each score."""
    n = scores.shape[1]
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 2.8), squeeze=False)
    for ax, col in zip(axes[0], scores.columns):
        v = scores[col].to_numpy()
        ax.hist(v, bins=40, color="#4477aa")
        ax.set_title(f"{col}  ({(v > 0).mean():.0%} > 0)")
        ax.set_xlabel("score")
        ax.set_yscale("log")
    axes[0, 0].set_ylabel("subjects (log)")
    fig.tight_layout()
    return _png(fig)


def example_subject_figure(lesion_img: nib.Nifti1Image, labels_img: nib.Nifti1Image,
                           truths: Mapping[str, Sequence[int]], scores: Mapping[str, float],
                           subject: str) -> bytes:
    """Fig. 4: one subject's lesions with each score's truth outlined, and its scores."""
    from nilearn import plotting

    cuts = _all_cuts(labels_img, truths)
    fig = plt.figure(figsize=(3.2 * max(1, len(cuts)), 3.4))
    title = f"{subject}: " + ", ".join(f"{k} = {v:.3f}" for k, v in scores.items())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        display = plotting.plot_roi(lesion_img, bg_img=_template(), display_mode="y",
                                    cut_coords=cuts, cmap="autumn", figure=fig, title=title,
                                    black_bg=True)
        _legend(fig, _outline(display, labels_img, truths))
    return _png(fig)


def prediction_scatter(predictions: Mapping[str, pd.DataFrame], outputs: Sequence[str]) -> bytes:
    """Fig. A.2: predicted against true on the test split, per method (row) and output; titles give
    the squared Pearson r² and scikit-learn's R²."""
    modes = list(predictions)
    fig, axes = plt.subplots(len(modes), len(outputs), figsize=(3.0 * len(outputs), 3.0 * len(modes)),
                             squeeze=False)
    for i, mode in enumerate(modes):
        df = predictions[mode]
        df = df[df["split"] == "test"]
        for j, name in enumerate(outputs):
            ax = axes[i, j]
            t, p = df[f"{name}_true"].to_numpy(), df[f"{name}_pred"].to_numpy()
            ax.scatter(t, p, s=8, alpha=0.6)
            hi = max(float(np.max(t)), float(np.max(p)), 1e-3)
            ax.plot([0, hi], [0, hi], "k--", lw=0.8)
            r2 = np.corrcoef(t, p)[0, 1] ** 2 if np.ptp(t) > 0 and np.ptp(p) > 0 else float("nan")
            big_r2 = r2_score(t, p) if np.ptp(t) > 0 else float("nan")
            ax.set_title(f"{mode}: {name} (r² {r2:.2f}, R² {big_r2:.2f})", fontsize=9)
            ax.set_xlabel("true")
            ax.set_ylabel("predicted")
    fig.tight_layout()
    return _png(fig)


def maps_figure(maps: Mapping[str, Mapping[str, str]], labels_img: nib.Nifti1Image,
                truths: Mapping[str, Sequence[int]], outputs: Sequence[str]) -> bytes:
    """Fig. 7: each method's group map (rows) for each score (columns), at the coronal slices
    through the centres of that score's truth, outlined (the union of its labels). A score
    without a truth is cut through its first method's maximum."""
    from nilearn import plotting

    methods = list(maps)
    cuts = {}
    for name in outputs:
        if name in truths:
            cuts[name] = truth_cuts(labels_img, truths[name])
        else:
            first = next((maps[m][name] for m in methods if name in maps[m]), None)
            cuts[name] = [] if first is None else [_peak_y(first)]
    widths = [max(1, len(cuts[n])) for n in outputs]
    fig, axes = plt.subplots(len(methods), len(outputs), squeeze=False,
                             figsize=(2.6 * sum(widths), 2.4 * len(methods)),
                             gridspec_kw={"width_ratios": widths})
    bg = _template()
    for i, method in enumerate(methods):
        for j, name in enumerate(outputs):
            ax = axes[i, j]
            path = maps[method].get(name)
            if path is None or not cuts[name]:
                ax.axis("off")
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                d = plotting.plot_stat_map(path, bg_img=bg, display_mode="y", cut_coords=cuts[name],
                                           axes=ax, colorbar=False, annotate=False, cmap="hot",
                                           vmin=0, vmax=1, black_bg=True)
                if name in truths:
                    d.add_contours(truth_img(labels_img, truths[name]), levels=[0.5],
                                   colors=["lime"], linewidths=1.0)
            if j == 0:
                ax.set_title(method, fontsize=9, loc="left", color="black")
            if i == 0:
                ax.text(0.5, 1.12, name, transform=ax.transAxes, ha="center", fontsize=10)
    return _png(fig)


def _peak_y(path: str) -> float:
    img = nib.load(path)
    data = np.nan_to_num(np.asarray(img.dataobj, dtype=np.float64))
    ijk = np.unravel_index(int(np.argmax(data)), data.shape[:3])
    return float((img.affine[:3, :3] @ np.asarray(ijk, float) + img.affine[:3, 3])[1])


def pr_figure(curves: Mapping[str, Mapping[str, dict]], outputs: Sequence[str]) -> bytes:
    """Fig. 9: precision-recall curves per score, one line per method, prevalence dashed."""
    fig, axes = plt.subplots(1, len(outputs), figsize=(3.6 * len(outputs), 3.4), squeeze=False)
    for j, name in enumerate(outputs):
        ax = axes[0, j]
        prevalence = None
        for method, per_output in curves.items():
            m = per_output.get(name)
            if not m or "recall" not in m:
                continue
            ax.plot(m["recall"], m["precision"], lw=1.2, label=f"{method} ({m['pr_auc']:.2f})")
            prevalence = m.get("prevalence")
        if prevalence is not None:
            ax.axhline(prevalence, color="k", ls="--", lw=0.8, label=f"random ({prevalence:.4f})")
        ax.set_title(name)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=6, loc="upper right")
    fig.tight_layout()
    return _png(fig)

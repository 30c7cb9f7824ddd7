"""Brute-force permutation inference for VLSM's pooled t-test, written out independently.

The statistic is the textbook pooled-variance t of lesioned against spared subjects, written
out in float64 from group means and sums of squares (:func:`t_map`, checked against
``scipy.stats.ttest_ind`` by the tests), and recomputed from scratch for each permutation (the
same permutations the estimator draws: ``default_rng(seed).permutation(n)`` one after another).
Ties are decided with a relative tolerance of 1e-9, far below any real difference between two
t-values of a small data set and far above float64 rounding.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage, stats

TIE_RTOL = 1e-9


def permutations(seed: int, n_subjects: int, n_permutations: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(n_subjects) for _ in range(n_permutations)])


def tested_voxels(data: np.ndarray, min_subjects: int) -> np.ndarray:
    """Flat boolean mask: lesioned in >= m subjects and spared in >= m subjects."""
    counts = data.reshape(data.shape[0], -1).sum(axis=0)
    return (counts >= min_subjects) & (data.shape[0] - counts >= min_subjects)


def t_map(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pooled-variance t of lesioned vs spared subjects at every column of X (N, V), float64;
    0 where both groups are constant."""
    les = X > 0
    n1 = les.sum(axis=0)
    n0 = les.shape[0] - n1
    Y = np.broadcast_to(y[:, None], les.shape)
    m1 = np.where(les, Y, 0.0).sum(axis=0) / n1
    m0 = np.where(les, 0.0, Y).sum(axis=0) / n0
    ss = (np.where(les, Y - m1, 0.0) ** 2).sum(axis=0) + (np.where(les, 0.0, Y - m0) ** 2).sum(axis=0)
    se = np.sqrt(ss / (n1 + n0 - 2) * (1.0 / n1 + 1.0 / n0))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (m1 - m0) / se
    return np.where(np.isfinite(t), t, 0.0)


def exceedance_p(observed: np.ndarray, null: np.ndarray) -> np.ndarray:
    """(1 + #{null >= observed, ties included}) / (1 + n_null)."""
    observed = np.asarray(observed, dtype=np.float64)
    ge = null[None, :] >= observed[:, None] - TIE_RTOL * np.abs(observed[:, None])
    return (1.0 + ge.sum(axis=1)) / (1.0 + null.size)


def kth_largest(values: np.ndarray, k: int) -> float:
    return float(np.sort(values)[::-1][k - 1])


def clusters(t_flat: np.ndarray, mask: np.ndarray, shape, threshold: float):
    """Two-sided clusters (26-connectivity) of |t| > threshold, positive and negative apart.

    Returns (labels over the flat grid, sizes)."""
    full = np.zeros(mask.shape)
    full[mask] = t_flat
    full = full.reshape(shape)
    structure = np.ones((3, 3, 3), bool)
    lab_p, n_p = ndimage.label(full > threshold, structure)
    lab_n, n_n = ndimage.label(full < -threshold, structure)
    labels = np.where(lab_n > 0, lab_n + n_p, lab_p).ravel()
    sizes = np.bincount(labels, minlength=n_p + n_n + 1)[1:]
    return labels, sizes


def brute_force_vlsm_t(data: np.ndarray, y: np.ndarray, *, min_subjects: int, seed: int,
                       n_permutations: int, cfwer_v: int = 1, cluster_p: float | None = None) -> dict:
    """Voxelwise FWE (max |t|), CFWER (v-th largest |t|) and cluster-size FWE p-values of the
    two-sided pooled t-test, on the tested voxels (flat order), from a plain permutation loop."""
    shape = data.shape[1:]
    mask = tested_voxels(data, min_subjects)
    X = data.reshape(data.shape[0], -1)[:, mask].astype(np.float64)
    t_obs = t_map(X, y)
    df = data.shape[0] - 2
    thr = stats.t.isf(cluster_p, df) if cluster_p is not None else None
    null_max, null_kth, null_cluster = [], [], []
    for perm in permutations(seed, len(y), n_permutations):
        t = t_map(X, y[perm])
        null_max.append(np.abs(t).max())
        null_kth.append(kth_largest(np.abs(t), cfwer_v))
        if thr is not None:
            _, sizes = clusters(t, mask, shape, thr)
            null_cluster.append(sizes.max() if sizes.size else 0)
    ext = np.abs(t_obs)
    out = {"mask": mask, "t": t_obs, "p_fwe": exceedance_p(ext, np.array(null_max)),
           "p_cfwer": exceedance_p(ext, np.array(null_kth)), "null_max": np.array(null_max)}
    if thr is not None:
        labels, sizes = clusters(t_obs, mask, shape, thr)
        size_p = exceedance_p(sizes.astype(float), np.array(null_cluster, dtype=float))
        p_cluster = np.ones(labels.shape)
        for lab, sp in enumerate(size_p, start=1):
            p_cluster[labels == lab] = sp
        out["p_cluster"] = p_cluster[mask]
        out["n_clusters"] = int(sizes.size)
    return out


def brute_force_svr(data: np.ndarray, y: np.ndarray, *, min_subjects: int, seed: int,
                    n_permutations: int, C: float = 30.0, gamma: float = 5.0,
                    epsilon: float = 0.1, band: float = 1e-4) -> dict:
    """SVR-LSM as Zhang et al. describe it, with scikit-learn's own RBF kernel (no precomputed
    Gram matrix): unit-norm lesion rows (DTLVC), scores scaled to max |y| = 100, beta =
    ``dual_coef_ @ support_vectors_`` scaled to max |beta| = 10, and each permutation a full
    refit. Returns the beta map on the tested voxels and, for the two-sided voxelwise and FWE
    p-values, the range of exceedance counts when values within ``band`` (relative) of the
    observed one may count either way."""
    from sklearn.svm import SVR

    mask = tested_voxels(data, min_subjects)
    X = data.reshape(data.shape[0], -1)[:, mask].astype(np.float64)
    norm = np.linalg.norm(X, axis=1)
    X = X / np.where(norm > 0, norm, 1.0)[:, None]
    ys = y * 100.0 / np.abs(y).max()

    def weights(target):
        m = SVR(kernel="rbf", gamma=gamma, C=C, epsilon=epsilon).fit(X, target)
        return (m.dual_coef_ @ m.support_vectors_).ravel()

    w = weights(ys)
    scale = 10.0 / np.abs(w).max()
    obs = np.abs(w * scale)
    null = np.stack([np.abs(weights(ys[p]) * scale)
                     for p in permutations(seed, len(y), n_permutations)])
    null_max = null.max(axis=1)

    def count_range(values):  # values (P, V) or (P,) against obs (V,)
        v = values if values.ndim == 2 else values[:, None]
        lo = (v >= obs * (1 + band)).sum(axis=0)
        hi = (v >= obs * (1 - band)).sum(axis=0)
        return lo, hi

    return {"mask": mask, "beta": w * scale, "p_counts": count_range(null),
            "p_fwe_counts": count_range(null_max)}

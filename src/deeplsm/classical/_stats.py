"""Vectorised voxelwise statistics and the inference helpers shared by VLSM and SVR-LSM.

Every statistic is signed so that a positive value means the lesioned subjects have higher
scores than the spared ones. Each engine computes the observed map in float64 and permuted maps
(many permutations at once) in float32, so that memory stays bounded by the chunk size.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse, special, stats

from deeplsm.exceptions import DeepLSMError

TAILS = ("two-sided", "greater", "less")


# --- helpers ------------------------------------------------------------------------------------
def residualize(y: np.ndarray, Z: np.ndarray) -> np.ndarray:
    """Residuals of ``y`` (N,) or (N, P) after ordinary least squares on ``Z`` (N, k)."""
    beta, *_ = np.linalg.lstsq(Z, y, rcond=None)
    return y - Z @ beta


def orthonormal_basis(Z: np.ndarray) -> np.ndarray:
    """An orthonormal basis (N, rank) of the column space of ``Z``."""
    U, s, _ = np.linalg.svd(Z, full_matrices=False)
    rank = int((s > s.max() * max(Z.shape) * np.finfo(float).eps).sum())
    return U[:, :rank]


def t_to_z(t: np.ndarray, df: np.ndarray | float) -> np.ndarray:
    """Convert Student t values to standard-normal z with the same one-tailed p, keeping the sign."""
    t = np.asarray(t, dtype=np.float64)
    tail = stats.t.sf(np.abs(t), df)
    z = -special.ndtri(tail)
    return np.where(np.isfinite(t), np.sign(t) * np.maximum(z, 0.0), 0.0)


def t_pvalues(t: np.ndarray, df: np.ndarray | float, tail: str) -> np.ndarray:
    """p-values of Student t values for ``tail``."""
    if tail == "greater":
        return stats.t.sf(t, df)
    if tail == "less":
        return stats.t.cdf(t, df)
    return np.minimum(1.0, 2.0 * stats.t.sf(np.abs(t), df))


def tail_transform(stat: np.ndarray, tail: str, out: np.ndarray | None = None) -> np.ndarray:
    """Map a signed statistic so that larger means more extreme for ``tail`` (``out=stat``: in place)."""
    if tail == "greater":
        return stat
    if tail == "less":
        return np.negative(stat, out=out)
    return np.abs(stat, out=out)


def fdr_bh(p: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (q-values)."""
    p = np.asarray(p, dtype=np.float64)
    n = p.size
    if n == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    ranked = p[order] * n / np.arange(1, n + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(n)
    out[order] = np.minimum(q, 1.0)
    return out


def bonferroni(p: np.ndarray, n_tests: int | None = None) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    return np.minimum(1.0, p * (p.size if n_tests is None else n_tests))


#: Relative tolerance under which a permuted statistic ties an observed one. Permuted maps are
#: float32 (observed ones float64): their relative error, measured against the observed maps for
#: N = 12-800 subjects (t, Welch, Brunner-Munzel), stayed below 1.5e-6. A permutation that swaps
#: only equal scores reproduces the observed value and must count as "at least as extreme".
TIE_RTOL = 1e-5


def _float32_resolution(x) -> np.ndarray:
    """Values rounded to float32 (the precision of the permuted statistics), as float64."""
    return np.asarray(x, dtype=np.float64).astype(np.float32).astype(np.float64)


def exceedance_pvalues(observed: np.ndarray, null: np.ndarray, rtol: float = 0.0) -> np.ndarray:
    """``(1 + #{null >= observed}) / (1 + n_null)`` for each observed value.

    With ``rtol > 0`` both sides are compared at float32 resolution and a null value within
    ``rtol * |observed|`` below the observed one counts as a tie (an exceedance), so float32
    rounding of a permuted statistic can never make a p-value too small. Integer statistics
    (cluster sizes) need ``rtol=0``.
    """
    obs = np.asarray(observed, dtype=np.float64)
    null = np.asarray(null, dtype=np.float64)
    if rtol:
        obs, null = _float32_resolution(obs), _float32_resolution(null)
        obs = obs - rtol * np.abs(obs)
    srt = np.sort(null)
    n_ge = srt.size - np.searchsorted(srt, obs, side="left")
    return (1.0 + n_ge) / (1.0 + srt.size)


def null_threshold(null: np.ndarray, alpha: float, rtol: float = 0.0) -> float:
    """Smallest critical value ``c`` such that any observation ``> c`` has exceedance p <= alpha
    (with the same tie tolerance ``rtol`` as :func:`exceedance_pvalues`).

    Returns ``inf`` when there are too few permutations to reach ``alpha``.
    """
    d = np.sort(np.asarray(null, dtype=np.float64))[::-1]
    k = int(np.floor(alpha * (d.size + 1) + 1e-9)) - 1
    if k < 0:
        return float("inf")
    c = float(d[min(k, d.size - 1)])
    if rtol:  # an observation within rtol above c still ties it
        c = c / (1.0 - rtol) if c >= 0 else c / (1.0 + rtol)
    return c


def kth_largest_weighted(values: np.ndarray, counts: np.ndarray | None, k: int) -> np.ndarray:
    """Row-wise k-th largest of ``values`` (P, U), where column u stands for ``counts[u]`` voxels."""
    values = np.atleast_2d(values)
    n_cols = values.shape[1]
    total = n_cols if counts is None else int(counts.sum())
    if k > total:
        return np.full(values.shape[0], -np.inf)
    if counts is None or np.all(counts == 1):
        kk = min(k, n_cols)
        return -np.partition(-values, kk - 1, axis=1)[:, kk - 1]
    kk = min(k, n_cols)
    top = np.argpartition(-values, kk - 1, axis=1)[:, :kk]  # the k largest patterns suffice
    tv = np.take_along_axis(values, top, axis=1)
    order = np.argsort(-tv, axis=1, kind="stable")
    tv = np.take_along_axis(tv, order, axis=1)
    tc = np.cumsum(counts[np.take_along_axis(top, order, axis=1)], axis=1)
    idx = (tc < k).sum(axis=1)
    return tv[np.arange(values.shape[0]), np.minimum(idx, kk - 1)]


# --- engines ------------------------------------------------------------------------------------
class RegressionEngine:
    """t of lesion status (or load) in ``score ~ nuisance + x``; the pooled t-test when nuisance = 1.

    Permutations follow Freedman & Lane (1983): the residuals of the reduced model are permuted.
    Because the permuted residuals ``u`` are then re-residualised against the nuisance space, the
    nuisance-adjusted predictor never needs forming: ``x_res' u = x' u``, one matrix product.
    Permuted maps are returned as partial correlations ``r`` (float32), which order exactly as
    ``t`` does; :meth:`raw_to_stat` converts the few values that are kept (maxima, thresholds).
    """

    def __init__(self, X: np.ndarray, y: np.ndarray, Z: np.ndarray) -> None:
        self.Q = orthonormal_basis(Z)
        self.df = X.shape[0] - self.Q.shape[1] - 1
        if self.df < 1:
            raise DeepLSMError(
                f"too few subjects ({X.shape[0]}) for the regression with {self.Q.shape[1]} "
                "nuisance column(s); need at least nuisance + 2"
            )
        self.X = X
        self.resid = y - self.Q @ (self.Q.T @ y)
        # float64 products through a sparse copy: lesion maps are mostly zeros, so this is exact
        # and cheap, with no dense float64 copy of the lesion data
        Xt = sparse.csr_matrix(np.ascontiguousarray(X.T), dtype=np.float64)  # (V, N)
        proj = Xt @ self.Q  # (V, k)
        self.xss = np.asarray(Xt.multiply(Xt).sum(axis=1)).ravel() - np.einsum("vk,vk->v", proj, proj)
        self.xu = Xt @ self.resid
        self.xss = np.maximum(self.xss, 0.0)
        with np.errstate(divide="ignore"):
            self.inv_sqrt_xss = np.where(self.xss > 1e-12, 1.0 / np.sqrt(self.xss), 0.0).astype(np.float32)
        self.X32 = np.asarray(X, dtype=np.float32)

    def raw_to_stat(self, r: np.ndarray) -> np.ndarray:
        r = np.clip(np.asarray(r, dtype=np.float64), -1.0, 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = r * np.sqrt(self.df / np.maximum(1.0 - r * r, 1e-30))
        return np.where(np.isfinite(t), t, 0.0)

    def stat_to_raw(self, t: float) -> float:
        return float(t / np.sqrt(self.df + t * t))

    def observed(self) -> tuple[np.ndarray, np.ndarray | float]:
        unorm = np.linalg.norm(self.resid)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = self.xu / (np.sqrt(self.xss) * unorm)
        return self.raw_to_stat(np.where(self.xss > 1e-12, r, 0.0)), float(self.df)

    def permuted(self, perms: np.ndarray) -> np.ndarray:
        U = self.resid[perms].T  # (N, P)
        U = U - self.Q @ (self.Q.T @ U)
        unorm = np.linalg.norm(U, axis=0)
        U32 = (U / np.where(unorm > 0, unorm, 1.0)).astype(np.float32)
        r = U32.T @ self.X32
        r *= self.inv_sqrt_xss[None, :]
        return r


class WelchEngine:
    """Welch's unequal-variance t-test, from per-group sums and sums of squares (two products)."""

    def __init__(self, X: np.ndarray, y: np.ndarray) -> None:
        self.y = (y - y.mean()) / (y.std() or 1.0)
        self.N = X.shape[0]
        self.n1 = X.sum(axis=0, dtype=np.float64)
        self.n0 = self.N - self.n1
        self.X32 = np.asarray(X, dtype=np.float32)
        self.X64 = X.astype(np.float64)

    def _t(self, s1, q1, S, SS):
        n1, n0 = self.n1, self.n0
        s0, q0 = S[:, None] - s1, SS[:, None] - q1
        m1, m0 = s1 / n1, s0 / n0
        with np.errstate(divide="ignore", invalid="ignore"):
            v1 = np.maximum(q1 - s1 * m1, 0.0) / (n1 - 1)
            v0 = np.maximum(q0 - s0 * m0, 0.0) / (n0 - 1)
            a, b = v1 / n1, v0 / n0
            t = (m1 - m0) / np.sqrt(a + b)
            df = (a + b) ** 2 / (a * a / (n1 - 1) + b * b / (n0 - 1))
        return np.where(np.isfinite(t), t, 0.0), np.where(np.isfinite(df), df, 1.0)

    def observed(self):
        y = self.y
        t, df = self._t((self.X64.T @ y)[None], (self.X64.T @ (y * y))[None],
                        np.array([y.sum()]), np.array([(y * y).sum()]))
        return t[0], df[0]

    def permuted(self, perms: np.ndarray) -> np.ndarray:
        Y = self.y[perms].T.astype(np.float32)  # (N, P)
        s1 = (Y.T @ self.X32).astype(np.float64)
        q1 = ((Y * Y).T @ self.X32).astype(np.float64)
        S = np.full(Y.shape[1], self.y.sum())
        SS = np.full(Y.shape[1], (self.y ** 2).sum())
        return self._t(s1, q1, S, SS)[0].astype(np.float32)


class BrunnerMunzelEngine:
    """Brunner–Munzel test per voxel in O(N·V), via placements from cumulative group counts.

    For a subject in one group, its overall rank minus its within-group rank (its *placement*) is
    the number of other-group subjects with a lower score, ties counting one half. After sorting
    the subjects by score once, those counts are running sums of the lesion indicators down the
    sorted order, so no per-voxel ranking is needed. Untied scores take a faster exact path.
    """

    def __init__(self, X: np.ndarray, y: np.ndarray) -> None:
        self.X = np.ascontiguousarray(X, dtype=np.uint8)
        self.y = np.asarray(y, dtype=np.float64)
        self.N = X.shape[0]
        self.n1 = X.sum(axis=0, dtype=np.float64)
        self.n0 = self.N - self.n1

    def _sums(self, y: np.ndarray) -> tuple[np.ndarray, ...]:
        """Sums of placements (and their squares) in each group, for any ties.

        Subjects are walked in score order, one tie block at a time, keeping the running count
        of lesioned subjects below the block. In block ``b`` (``g`` subjects, ``m`` lesioned;
        ``L`` lesioned and ``G`` subjects below it) a lesioned subject's placement is
        ``G - L + (g - m) / 2`` and a spared one's is ``L + m / 2``.
        """
        order = np.argsort(y, kind="stable")
        ys = y[order]
        starts = np.flatnonzero(np.r_[True, ys[1:] != ys[:-1]])
        ends = np.r_[starts[1:], self.N]
        Xs = self.X[order]
        V = Xs.shape[1]
        # half-integers: exact in float32 while every sum stays below 2**22
        dt = np.float32 if float(self.N) ** 3 < 2**22 else np.float64
        out = [np.empty(V, dtype=np.float64) for _ in range(4)]
        step = 16384
        for lo in range(0, V, step):
            hi = min(V, lo + step)
            w = hi - lo
            L = np.zeros(w, dt)
            acc = [np.zeros(w, dt) for _ in range(4)]
            P, Q, tmp, m = (np.empty(w, dt) for _ in range(4))
            for a, b in zip(starts, ends):
                g = float(b - a)
                if b - a == 1:
                    m[:] = Xs[a, lo:hi]
                else:
                    np.sum(Xs[a:b, lo:hi], axis=0, dtype=dt, out=m)
                # lesioned: P = a - L + (g - m) / 2 ; spared: Q = L + m / 2
                np.multiply(m, -0.5, out=P)
                P += a + 0.5 * g
                P -= L
                np.multiply(m, 0.5, out=Q)
                Q += L
                np.multiply(m, P, out=tmp)
                acc[0] += tmp
                tmp *= P
                acc[1] += tmp
                np.subtract(g, m, out=tmp)
                tmp *= Q
                acc[2] += tmp
                tmp *= Q
                acc[3] += tmp
                L += m
            for o, v in zip(out, acc):
                o[lo:hi] = v
        return tuple(out)

    def _stat(self, A1, A2, B1, B2):
        n1, n0 = self.n1, self.n0
        with np.errstate(divide="ignore", invalid="ignore"):
            S1 = np.maximum(A2 - A1 * A1 / n1, 0.0) / (n1 - 1)  # lesioned
            S0 = np.maximum(B2 - B1 * B1 / n0, 0.0) / (n0 - 1)  # spared
            r1 = A1 / n1 + (n1 + 1) / 2  # mean overall rank, lesioned
            r0 = B1 / n0 + (n0 + 1) / 2
            denom = n1 * S1 + n0 * S0
            w = n1 * n0 * (r1 - r0) / ((n1 + n0) * np.sqrt(denom))
            df = denom ** 2 / ((n1 * S1) ** 2 / (n1 - 1) + (n0 * S0) ** 2 / (n0 - 1))
        return np.where(np.isfinite(w), w, 0.0), np.where(np.isfinite(df), df, 1.0)

    def _rank_products(self, ranks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``sum x k`` and ``sum x k^2`` for rows of ``ranks`` (P, N); exact in float32 when the
        sums stay below 2**24, float64 otherwise."""
        R = np.concatenate([ranks, ranks * ranks])
        if float(self.N) ** 3 < 2**24:
            if not hasattr(self, "_X32"):
                self._X32 = self.X.astype(np.float32)
            out = (R.astype(np.float32) @ self._X32).astype(np.float64)
        else:
            if not hasattr(self, "_X64"):
                self._X64 = self.X.astype(np.float64)
            out = R @ self._X64
        P = ranks.shape[0]
        return out[:P], out[P:]

    def _sum_sq_cumsum(self, order: np.ndarray) -> np.ndarray:
        """``sum_k I_k^2`` per voxel, ``I`` the cumulative lesion count in ``order``; exact."""
        Xs = self.X[order]
        V = Xs.shape[1]
        dt = np.int32 if float(self.N) ** 3 < 2**31 else np.int64
        b = np.empty(V, dtype=np.float64)
        step = 16384
        for lo in range(0, V, step):
            hi = min(V, lo + step)
            acc = np.zeros(hi - lo, dt)
            tot = np.zeros(hi - lo, dt)
            tmp = np.empty(hi - lo, dt)
            for row in Xs[:, lo:hi]:  # row-wise running sums: cache-friendly, unlike cumsum(axis=0)
                np.add(acc, row, out=acc)
                np.multiply(acc, acc, out=tmp)
                np.add(tot, tmp, out=tot)
            b[lo:hi] = tot
        return b

    def _sums_untied(self, ys: np.ndarray) -> list[tuple[np.ndarray, ...]]:
        """The same four sums when no two scores tie, for each row of ``ys`` (P, N).

        With subjects in score order (position k = 1..N) and ``I_k`` the number of lesioned
        subjects up to k, a lesioned subject's placement is ``k - I_k`` and a spared one's is
        ``I_k``. Summation by parts reduces every sum to the rank sums ``sum x k`` and
        ``sum x k^2`` (one matrix product for all permutations) and ``sum_k I_k^2`` (one pass of
        running sums), all in exact integer arithmetic.
        """
        orders = np.argsort(ys, axis=1, kind="stable")
        ranks = np.empty(orders.shape, dtype=np.float64)
        np.put_along_axis(ranks, orders, np.arange(1, self.N + 1, dtype=np.float64)[None, :], axis=1)
        C1, C2 = self._rank_products(ranks)
        n1, N = self.n1, self.N
        sq = n1 * (n1 + 1) * (2 * n1 + 1) / 6
        out = []
        for i, order in enumerate(orders):
            b = self._sum_sq_cumsum(order)
            c1, c2 = C1[i], C2[i]
            a = 0.5 * ((N + 1) * n1 * n1 - b + c1)  # sum over lesioned of k * I_k
            A1 = c1 - n1 * (n1 + 1) / 2
            out.append((A1, c2 - 2 * a + sq, n1 * (N - n1) - A1, b - sq))
        return out

    @property
    def untied(self) -> bool:
        return np.unique(self.y).size == self.N

    def observed(self):
        if self.untied:
            return self._stat(*self._sums_untied(self.y[None, :])[0])
        return self._stat(*self._sums(self.y))

    def permuted(self, perms: np.ndarray) -> np.ndarray:
        out = np.empty((perms.shape[0], self.X.shape[1]), dtype=np.float32)
        if self.untied:
            for i, sums in enumerate(self._sums_untied(self.y[perms])):
                out[i] = self._stat(*sums)[0]
            return out
        for i, p in enumerate(perms):
            out[i] = self._stat(*self._sums(self.y[p]))[0]
        return out


class LiebermeisterEngine:
    """Liebermeister's test for a binary score: one-sided Fisher exact test on the 2×2 table
    (lesioned/spared × score 1/0) with one added to two diagonal cells, as in NiiStat.

    The statistic is the signed z of the one-sided p-value. For fixed margins it depends only on
    the number of lesioned subjects with score 1, so a lookup table serves every permutation.
    """

    def __init__(self, X: np.ndarray, y: np.ndarray, tail: str) -> None:
        vals = np.unique(y)
        if not np.all(np.isin(vals, (0.0, 1.0))):
            raise DeepLSMError(
                f"test='liebermeister' needs binary scores (0/1), got values {vals[:5].tolist()}"
            )
        self.N = X.shape[0]
        self.y = y.astype(np.float64)
        self.K = int(y.sum())
        self.n1 = X.sum(axis=0).astype(np.int64)
        self.X32 = np.asarray(X, dtype=np.float32)
        self.tail = tail
        nvals = np.unique(self.n1)
        a = np.arange(self.N + 1)
        M, n, K = self.N + 2, nvals[:, None] + 1, self.K + 1
        # greater: add 1 to the concordant cells (lesioned & 1, spared & 0)
        p_g = stats.hypergeom.sf(a[None, :], M, K, n)  # P(A' >= a + 1)
        # less: add 1 to the discordant cells (lesioned & 0, spared & 1)
        p_l = stats.hypergeom.cdf(a[None, :], M, K, n)
        p_g, p_l = np.clip(p_g, 1e-300, 1.0), np.clip(p_l, 1e-300, 1.0)
        z_g, z_l = -special.ndtri(p_g), special.ndtri(p_l)
        if tail == "greater":
            z, p = z_g, p_g
        elif tail == "less":
            z, p = z_l, p_l
        else:
            use_g = p_g <= p_l
            z = np.where(use_g, z_g, z_l)
            p = np.minimum(1.0, 2.0 * np.minimum(p_g, p_l))
        self.row = np.searchsorted(nvals, self.n1)
        self.ztab, self.ptab = z, p

    def observed(self):
        a = np.rint(self.X32.T.astype(np.float64) @ self.y).astype(np.int64)
        return self.ztab[self.row, a], None

    def pvalues(self) -> np.ndarray:
        a = np.rint(self.X32.T.astype(np.float64) @ self.y).astype(np.int64)
        return self.ptab[self.row, a]

    def permuted(self, perms: np.ndarray) -> np.ndarray:
        Y = self.y[perms].astype(np.float32)  # (P, N)
        a = np.rint(Y @ self.X32).astype(np.int64)
        return self.ztab[self.row[None, :], a].astype(np.float32)

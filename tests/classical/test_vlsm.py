import numpy as np
import pytest
from scipy import stats
from sklearn.base import clone

from deeplsm.classical import MassUnivariateLSM
from deeplsm.classical import _stats as S
from deeplsm.cohort import LesionCohort
from deeplsm.exceptions import DeepLSMError
from tests.classical._brute import brute_force_vlsm_t


def _scores(rng, X, ties=True):
    y = rng.normal(size=X.shape[0]) + 0.8 * X[:, 0]
    if ties:
        y = np.round(y, 1)  # creates ties, which the rank test must handle
    return y


@pytest.mark.parametrize("test", ["t", "welch", "bm"])
@pytest.mark.parametrize(("compress", "ties"), [(True, True), (False, True), (True, False)])
def test_against_scipy(rng, X, test, compress, ties):
    y = _scores(rng, X, ties=ties)
    m = MassUnivariateLSM(test=test, min_subjects=3, n_permutations=0, correction="none",
                          compress_patches=compress).fit(X, y)
    mk = m.mask_
    ref = []
    for v in np.flatnonzero(mk):
        a, b = y[X[:, v] == 1], y[X[:, v] == 0]
        if test == "t":
            r = stats.ttest_ind(a, b)
        elif test == "welch":
            r = stats.ttest_ind(a, b, equal_var=False)
        else:
            r = stats.brunnermunzel(b, a)  # positive: lesioned subjects score higher
        ref.append((r.statistic, r.pvalue))
    ref = np.array(ref)
    assert np.abs(m.statistic_[mk] - ref[:, 0]).max() <= 1e-5
    assert np.abs(m.p_[mk] - ref[:, 1]).max() <= 1e-5


@pytest.mark.parametrize("tail", ["greater", "less"])
def test_tails_match_scipy(rng, X, tail):
    y = _scores(rng, X, ties=False)
    m = MassUnivariateLSM(test="t", tail=tail, min_subjects=3, n_permutations=0,
                          correction="none").fit(X, y)
    v = np.flatnonzero(m.mask_)[:20]
    ref = [stats.ttest_ind(y[X[:, j] == 1], y[X[:, j] == 0], alternative=tail).pvalue for j in v]
    np.testing.assert_allclose(m.p_[v], ref, atol=1e-6)


def test_regression_with_covariates_matches_lstsq(rng, X):
    n = X.shape[0]
    cov = rng.normal(size=(n, 2))
    y = _scores(rng, X, ties=False) + cov @ [1.0, -0.5]
    m = MassUnivariateLSM(test="regression", min_subjects=3, n_permutations=0,
                          correction="none").fit(X, y, covariates=cov)
    for v in np.flatnonzero(m.mask_)[:25]:
        D = np.column_stack([np.ones(n), cov, X[:, v]])
        beta, res, *_ = np.linalg.lstsq(D, y, rcond=None)
        df = n - D.shape[1]
        se = np.sqrt(res[0] / df * np.linalg.inv(D.T @ D)[-1, -1])
        assert abs(m.statistic_[v] - beta[-1] / se) < 1e-5
    assert m.df_ == n - 4


def test_same_t_map_as_nilearn_permuted_ols(rng, X):
    from nilearn.mass_univariate import permuted_ols

    n = X.shape[0]
    cov = rng.normal(size=(n, 1))
    y = _scores(rng, X, ties=False)
    for covariates in (None, cov):
        m = MassUnivariateLSM(test="t" if covariates is None else "regression", min_subjects=3,
                              n_permutations=0, correction="none").fit(X, y, covariates=covariates)
        out = permuted_ols(y[:, None], X[:, m.mask_].astype(float), confounding_vars=covariates,
                           model_intercept=True, n_perm=0, verbose=0)
        np.testing.assert_allclose(m.statistic_[m.mask_], out["t"][0], atol=1e-5)


def test_niistat_published_examples():
    lesion = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1], np.uint8)[:, None]
    X = np.repeat(lesion, 3, axis=1)
    t = MassUnivariateLSM(test="t", tail="greater", min_subjects=5, n_permutations=0,
                          correction="none").fit(X, [1, 2, 3, 4, 5, 3, 4, 5, 6, 7])
    assert t.statistic_[0] == pytest.approx(2.0)
    assert t.z_[0] == pytest.approx(1.747699, abs=1e-6)
    lm = MassUnivariateLSM(test="liebermeister", tail="greater", min_subjects=5, n_permutations=0,
                           correction="none").fit(X, [0, 0, 1, 0, 0, 1, 1, 0, 1, 1])
    assert lm.statistic_[0] == pytest.approx(1.750184, abs=1e-6)
    assert lm.z_[0] == pytest.approx(1.750184, abs=1e-6)


def test_liebermeister_is_fisher_on_augmented_table(rng, X):
    b = (rng.random(X.shape[0]) < 0.5).astype(float)
    for tail in ("greater", "less", "two-sided"):
        m = MassUnivariateLSM(test="liebermeister", tail=tail, min_subjects=3, n_permutations=0,
                              correction="none").fit(X, b)
        for v in np.flatnonzero(m.mask_)[:10]:
            a = int(((X[:, v] == 1) & (b == 1)).sum())
            bb = int(((X[:, v] == 1) & (b == 0)).sum())
            c = int(((X[:, v] == 0) & (b == 1)).sum())
            d = int(((X[:, v] == 0) & (b == 0)).sum())
            pg = stats.fisher_exact([[a + 1, bb], [c, d + 1]], alternative="greater").pvalue
            pl = stats.fisher_exact([[a, bb + 1], [c + 1, d]], alternative="less").pvalue
            ref = {"greater": pg, "less": pl, "two-sided": min(1.0, 2 * min(pg, pl))}[tail]
            assert m.p_[v] == pytest.approx(ref, rel=1e-6)
    with pytest.raises(DeepLSMError, match="binary scores"):
        MassUnivariateLSM(test="liebermeister", min_subjects=3, n_permutations=0,
                          correction="none").fit(X, rng.normal(size=X.shape[0]))


@pytest.mark.parametrize(("test", "ties"), [("t", True), ("welch", True), ("bm", True), ("bm", False),
                                           ("regression", True), ("liebermeister", True)])
def test_permuted_statistics_equal_refits(rng, X, test, ties):
    """The batched permutation engines give the statistic of a refit on permuted data."""
    n = X.shape[0]
    y = (rng.random(n) < 0.5).astype(float) if test == "liebermeister" else _scores(rng, X, ties)
    cov = rng.normal(size=(n, 1)) if test == "regression" else None
    est = MassUnivariateLSM(test=test, min_subjects=3, n_permutations=0, correction="none")
    est.fit(X, y, covariates=cov)
    Xm = X[:, est.mask_]
    cols = [np.ones(n)] + ([] if cov is None else [cov[:, 0]])
    engine = est._engine(Xm, y, None if cov is None else cov)
    perms = np.stack([rng.permutation(n) for _ in range(3)])
    got = engine.permuted(perms)
    if hasattr(engine, "raw_to_stat"):  # t engines return partial correlations, ordered as t
        got = engine.raw_to_stat(got)
    for i, p in enumerate(perms):
        if test == "regression":  # Freedman–Lane: permute reduced-model residuals
            Z = np.column_stack(cols)
            fit = Z @ np.linalg.lstsq(Z, y, rcond=None)[0]
            yp = fit + (y - fit)[p]
        else:
            yp = y[p]
        ref = MassUnivariateLSM(test=test, min_subjects=3, n_permutations=0, correction="none",
                                compress_patches=False).fit(Xm, yp, covariates=cov)
        np.testing.assert_allclose(got[i], ref.statistic_, atol=2e-4)


def test_fwe_controls_error_rate_under_global_null():
    """Any-voxel FWE-significant fraction over 200 null datasets is consistent with 0.05."""
    rng = np.random.default_rng(2024)
    hits = 0
    for _ in range(200):
        X = (rng.random((30, 60)) < 0.4).astype(np.uint8)
        X[:, 30:] = X[:, :30] | X[:, 1:31]  # correlated voxels, as in lesion data
        y = rng.normal(size=30)
        m = MassUnivariateLSM(test="t", min_subjects=3, n_permutations=99, random_state=rng).fit(X, y)
        hits += m.n_significant_ > 0
    # binomial(200, 0.05): 99.9% of outcomes lie in [2, 22]
    assert 2 <= hits <= 22, hits
    assert stats.binomtest(hits, 200, 0.05).pvalue > 0.001


def test_fwe_finds_a_planted_effect(rng):
    X = (rng.random((60, 200)) < 0.3).astype(np.uint8)
    y = -2.0 * X[:, 7] + rng.normal(size=60)
    m = MassUnivariateLSM(test="t", tail="less", min_subjects=5, n_permutations=199,
                          random_state=0).fit(X, y)
    assert m.p_fwe_[7] <= 0.01
    assert m.thresholded_[7] == m.statistic_[7] < 0
    assert np.all(np.abs(m.statistic_[m.thresholded_ != 0]) > m.threshold_)
    assert m.summary()["n_significant_voxels"] == m.n_significant_


def test_compression_does_not_change_results(rng, X):
    y = _scores(rng, X)
    kw = dict(test="t", min_subjects=3, n_permutations=50, correction="cfwer", cfwer_v=5, random_state=3)
    a = MassUnivariateLSM(compress_patches=True, **kw).fit(X, y)
    b = MassUnivariateLSM(compress_patches=False, **kw).fit(X, y)
    assert a.n_patterns_ < b.n_patterns_
    np.testing.assert_allclose(a.statistic_, b.statistic_, atol=1e-6)
    np.testing.assert_allclose(a.null_max_, b.null_max_, atol=1e-5)
    np.testing.assert_allclose(a.null_kth_, b.null_kth_, atol=1e-5)
    np.testing.assert_allclose(a.p_cfwer_, b.p_cfwer_)


def test_kth_largest_weighted():
    rng = np.random.default_rng(0)
    vals = rng.normal(size=(5, 30))
    counts = rng.integers(1, 4, size=30)
    expanded = np.repeat(vals, counts, axis=1)
    for k in (1, 2, 7, int(counts.sum())):
        ref = -np.sort(-expanded, axis=1)[:, k - 1]
        np.testing.assert_allclose(S.kth_largest_weighted(vals, counts, k), ref)
    assert np.all(np.isinf(S.kth_largest_weighted(vals, counts, int(counts.sum()) + 1)))


def test_cfwer_is_more_lenient_than_fwe(rng, X):
    y = _scores(rng, X)
    fwe = MassUnivariateLSM(min_subjects=3, n_permutations=99, random_state=1).fit(X, y)
    cf = MassUnivariateLSM(min_subjects=3, n_permutations=99, correction="cfwer", cfwer_v=10,
                           random_state=1).fit(X, y)
    assert np.all(cf.null_kth_ <= cf.null_max_)
    assert cf.threshold_ <= fwe.threshold_
    assert np.all(cf.p_cfwer_ <= fwe.p_fwe_ + 1e-12)


def test_fdr_and_bonferroni(rng, X):
    y = _scores(rng, X)
    m = MassUnivariateLSM(min_subjects=3, n_permutations=0, correction="fdr").fit(X, y)
    p = m.p_[m.mask_]
    np.testing.assert_allclose(m.p_bonferroni_[m.mask_], np.minimum(1, p * p.size))
    q = stats.false_discovery_control(p, method="bh")
    np.testing.assert_allclose(m.p_fdr_[m.mask_], q, rtol=1e-6)


def test_volume_corrections(rng, X):
    n = X.shape[0]
    y = _scores(rng, X, ties=False)
    vol = X.sum(axis=1).astype(float)
    m = MassUnivariateLSM(test="t", volume_correction="score", min_subjects=3, n_permutations=0,
                          correction="none").fit(X, y)
    Z = np.column_stack([np.ones(n), vol])
    r = y - Z @ np.linalg.lstsq(Z, y, rcond=None)[0]
    v = np.flatnonzero(m.mask_)[0]
    assert m.statistic_[v] == pytest.approx(stats.ttest_ind(r[X[:, v] == 1], r[X[:, v] == 0]).statistic,
                                            abs=1e-5)
    d = MassUnivariateLSM(test="regression", volume_correction="dtlvc", min_subjects=3,
                          n_permutations=0, correction="none").fit(X, y)
    xs = X[:, v] / np.sqrt(vol)
    assert d.statistic_[v] == pytest.approx(stats.linregress(xs, y).slope / stats.linregress(xs, y).stderr,
                                            abs=1e-5)
    with pytest.raises(DeepLSMError, match="needs test='regression'"):
        MassUnivariateLSM(test="t", volume_correction="dtlvc", min_subjects=3).fit(X, y)


@pytest.mark.parametrize("tail", ["less", "two-sided"])
def test_cluster_fwe_on_cohort(rng, make_cohort, tail):
    c = make_cohort(rng, n=40, p=0.2)
    blob = np.arange(40) < 15
    c.data[blob, 1:4, 1:4, 1:4] = 1
    y = -2.0 * blob + rng.normal(size=40)
    m = MassUnivariateLSM(test="t", tail=tail, min_subjects=3, n_permutations=99,
                          correction="cluster", cluster_p=0.01, random_state=0).fit(c, y)
    assert m.p_cluster_img_.shape == (7, 8, 9)
    assert m.p_cluster_[2, 2, 2] <= 0.05
    assert m.null_cluster_.shape == (99,)
    assert np.all(m.thresholded_[m.p_cluster_ > 0.05] == 0)
    with pytest.raises(DeepLSMError, match="spatial grid"):
        MassUnivariateLSM(correction="cluster", min_subjects=3).fit(c.data.reshape(40, -1), y)


def test_cohort_outputs_images(cohort, rng):
    y = rng.normal(size=cohort.n_subjects)
    m = MassUnivariateLSM(test="bm", min_subjects=5, n_permutations=20, random_state=0).fit(cohort, y)
    for name in ("statistic", "z", "p", "p_fdr", "p_fwe", "thresholded", "mask"):
        img = getattr(m, f"{name}_img_")
        assert img.shape == (7, 8, 9)
        np.testing.assert_array_equal(img.affine, np.eye(4))
    assert np.all(m.p_[~m.mask_] == 1) and np.all(m.statistic_[~m.mask_] == 0)


def test_estimator_contract(X, rng):
    y = _scores(rng, X)
    est = MassUnivariateLSM(test="welch", min_subjects=3, n_permutations=30, random_state=7)
    assert clone(est).get_params() == est.get_params()
    with pytest.raises(Exception, match="not fitted"):
        est.summary()
    assert est.fit(X, y) is est
    first = est.null_max_.copy()
    np.testing.assert_array_equal(est.fit(X, y).null_max_, first)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"test": "anova"}, "test must be one of"),
    ({"tail": "both"}, "tail must be one of"),
    ({"correction": "fwe", "n_permutations": 0}, "needs n_permutations > 0"),
    ({"n_permutations": -1}, r"n_permutations = -1: must be an integer >= 0"),
    ({"alpha": 1.5}, r"alpha = 1.5: must be a number > 0 and < 1"),
    ({"cfwer_v": 0}, "cfwer_v"),
    ({"min_subjects": 39}, "no voxel is lesioned in at least 39"),
])
def test_bad_parameters(X, rng, kwargs, match):
    with pytest.raises(DeepLSMError, match=match):
        MassUnivariateLSM(**{"min_subjects": 3, **kwargs}).fit(X, _scores(rng, X))


def test_bad_inputs(X, rng):
    est = MassUnivariateLSM(min_subjects=3, n_permutations=0, correction="none")
    with pytest.raises(DeepLSMError, match="scores has 3 rows but 40"):
        est.fit(X, [1, 2, 3])
    with pytest.raises(DeepLSMError, match="constant"):
        est.fit(X, np.ones(40))
    y = _scores(rng, X)
    y[3] = np.nan
    with pytest.raises(DeepLSMError, match="NaN"):
        est.fit(X, y)
    with pytest.raises(DeepLSMError, match="covariates need test='regression'"):
        est.fit(X, _scores(rng, X), covariates=np.ones((40, 1)))
    with pytest.raises(DeepLSMError, match="binary"):
        est.fit(X * 2, _scores(rng, X))


@pytest.mark.parametrize("seed", [0, 2])
def test_permutation_pvalues_with_ties_match_a_brute_force_loop(seed):
    """Few subjects and rounded scores: many permutations tie the observed maximum exactly.

    A plain float64 loop over the same permutations (tests/classical/_brute.py) counts those
    ties; the estimator's float32 maxima must count them too, for every permutation p-value.
    Without the tie tolerance, p_FWE came out 15/301 too small at two voxels for seed 0.
    """
    rng = np.random.default_rng(3 + seed)
    n, shape, n_perm = 12, (4, 5, 6), 300
    data = (rng.random((n, *shape)) < 0.4).astype(np.uint8)
    y = np.round(rng.normal(size=n) + 2 * data[:, 1, 2, 3])
    cohort = LesionCohort([f"s{i}" for i in range(n)], data, np.eye(4))
    ref = brute_force_vlsm_t(data, y, min_subjects=3, seed=seed, n_permutations=n_perm, cfwer_v=3,
                             cluster_p=0.05)
    X = data.reshape(n, -1)[:, ref["mask"]] > 0
    np.testing.assert_allclose(  # the brute-force t is scipy's
        ref["t"][:10], [stats.ttest_ind(y[x], y[~x]).statistic for x in X.T[:10]], rtol=1e-12)
    ext_max = np.abs(ref["t"]).max()
    assert np.sum(np.isclose(ref["null_max"], ext_max, rtol=1e-9)) >= 2  # ties really occur

    kw = dict(test="t", min_subjects=3, n_permutations=n_perm, random_state=seed)
    fwe = MassUnivariateLSM(correction="fwe", **kw).fit(cohort, y)
    assert np.array_equal(fwe.mask_.ravel(), ref["mask"])
    np.testing.assert_allclose(fwe.statistic_.ravel()[ref["mask"]], ref["t"], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(fwe.null_max_, ref["null_max"], rtol=1e-5)

    def counts(p):  # p = (1 + count) / (1 + n_perm), stored as float32: compare the counts
        return np.rint(np.asarray(p, dtype=np.float64) * (n_perm + 1)).astype(int)

    np.testing.assert_array_equal(counts(fwe.p_fwe_.ravel()[ref["mask"]]), counts(ref["p_fwe"]))
    cfwer = MassUnivariateLSM(correction="cfwer", cfwer_v=3, **kw).fit(cohort, y)
    np.testing.assert_array_equal(counts(cfwer.p_cfwer_.ravel()[ref["mask"]]), counts(ref["p_cfwer"]))
    cluster = MassUnivariateLSM(correction="cluster", cluster_p=0.05, **kw).fit(cohort, y)
    assert ref["n_clusters"] >= 2
    np.testing.assert_array_equal(counts(cluster.p_cluster_.ravel()[ref["mask"]]),
                                  counts(ref["p_cluster"]))
    # the reported threshold agrees with the p-values: voxels above it are the significant ones
    sig = fwe.p_fwe_[fwe.mask_] <= 0.05
    assert np.array_equal(np.abs(fwe.statistic_[fwe.mask_]) > fwe.threshold_, sig)


def test_exceedance_pvalues_count_float32_ties():
    exceedance_pvalues, null_threshold, TIE_RTOL = S.exceedance_pvalues, S.null_threshold, S.TIE_RTOL
    observed = np.array([2.0, 3.0, -1.0])
    null = np.array([2.0, 2.0, 1.0, 3.0]).astype(np.float32) * np.float32(1 - 3e-7)  # float32 rounding
    # without a tolerance the rounded copies of 2.0 and 3.0 are missed
    np.testing.assert_allclose(exceedance_pvalues(observed, null), [2 / 5, 1 / 5, 5 / 5])
    np.testing.assert_allclose(exceedance_pvalues(observed, null, rtol=TIE_RTOL), [4 / 5, 2 / 5, 5 / 5])
    np.testing.assert_allclose(exceedance_pvalues([5.0], [4.0, 5.0, 6.0]), [3 / 4])  # integers: exact
    # 19 permutations: p <= 0.05 needs every null value beaten, ties included
    c = null_threshold(np.arange(19.0), 0.05, rtol=TIE_RTOL)
    assert exceedance_pvalues([18.0 * (1 + 0.5 * TIE_RTOL)], np.arange(19.0), rtol=TIE_RTOL)[0] > 0.05
    assert c > 18.0 and exceedance_pvalues([c * (1 + 1e-6)], np.arange(19.0), rtol=TIE_RTOL)[0] <= 0.05

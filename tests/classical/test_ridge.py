"""RidgeLSM against scikit-learn's Ridge, the closed form, brute-force leave-one-out and
brute-force permuted refits."""

import json
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import Ridge
from sklearn.metrics import r2_score

from deeplsm.classical import RidgeLSM, save_fitted_maps
from deeplsm.exceptions import DeepLSMError


@pytest.fixture
def data(rng):
    X = (rng.random((60, 250)) < 0.3).astype(np.uint8)
    X[2:, 240:] = 0  # lesioned in at most 2 subjects: outside the min_subjects=3 mask
    y = 10 + 3.0 * X[:, :15].sum(axis=1) + rng.normal(size=60)
    return X, y


@pytest.mark.parametrize("volume_correction", ["none", "dtlvc"])
def test_same_penalty_gives_sklearn_ridge_coefficients(data, volume_correction):
    X, y = data
    m = RidgeLSM(min_subjects=3, n_permutations=0, volume_correction=volume_correction).fit(X, y)
    assert m.n_tested_ == 240 and not m.mask_[240:].any()
    Xm = X[:, m.mask_].astype(float)
    if volume_correction == "dtlvc":
        Xm /= np.linalg.norm(Xm, axis=1, keepdims=True)  # unit-norm lesion vectors
    ref = Ridge(alpha=m.penalty_, solver="cholesky").fit(Xm, y)
    np.testing.assert_allclose(m.beta_[m.mask_], ref.coef_, rtol=0, atol=1e-6)
    assert m.intercept_ == pytest.approx(ref.intercept_, abs=1e-6)
    np.testing.assert_allclose(m.predict(X), ref.predict(Xm), atol=1e-6)
    assert np.all(m.beta_[~m.mask_] == 0)


def test_volume_options_named_as_lesymap_and_svrlsmgui(data):
    """'voxel' is 'dtlvc' under LESYMAP's name; 'lesion' (svrlsmgui's "Regress on Lesion") is
    sklearn's Ridge on lesion values with volume regressed out voxel by voxel (numpy least
    squares), and new subjects are corrected with the training slopes."""
    X, y = data
    dtlvc = RidgeLSM(min_subjects=3, n_permutations=0, volume_correction="dtlvc").fit(X, y)
    voxel = RidgeLSM(min_subjects=3, n_permutations=0, volume_correction="Voxel").fit(X, y)
    np.testing.assert_array_equal(voxel.beta_, dtlvc.beta_)
    train, new = X[:45], X[45:]
    m = RidgeLSM(min_subjects=3, n_permutations=0, volume_correction="Regress on Lesion").fit(train, y[:45])
    Xm = train[:, m.mask_].astype(float)
    vol = train.sum(axis=1).astype(float)  # lesion volume in voxels (an array has no voxel size)
    Z = np.column_stack([np.ones(45), vol])
    coef = np.linalg.lstsq(Z, Xm, rcond=None)[0]  # per voxel: x_v ~ 1 + volume
    corrected = Xm - np.outer(vol, coef[1])
    ref = Ridge(alpha=m.penalty_, solver="cholesky").fit(corrected, y[:45])
    np.testing.assert_allclose(m.beta_[m.mask_], ref.coef_, atol=1e-6)
    new_corrected = new[:, m.mask_] - np.outer(new.sum(axis=1), coef[1])
    np.testing.assert_allclose(m.predict(new), ref.predict(new_corrected), atol=1e-6)
    with pytest.raises(DeepLSMError, match="volume_correction must be one of"):
        RidgeLSM(volume_correction="lesion size").fit(X, y)


def test_closed_form_on_a_tiny_case():
    """beta = (Xc'Xc + a I)^-1 Xc'yc, intercept = mean(y) - mean(x) beta; one voxel by hand."""
    X = np.array([[1, 0, 1], [1, 1, 0], [0, 1, 1], [0, 0, 1], [1, 1, 1], [0, 0, 0], [1, 0, 0],
                  [0, 1, 0]], dtype=np.uint8)
    y = np.array([3.0, 2.5, 1.0, 0.5, 3.5, 0.0, 2.0, 1.5])
    a = 0.7
    m = RidgeLSM(alphas=[a], min_subjects=1, n_permutations=0).fit(X, y)
    Xc, yc = X - X.mean(axis=0), y - y.mean()
    beta = np.linalg.solve(Xc.T @ Xc + a * np.eye(3), Xc.T @ yc)
    np.testing.assert_allclose(m.beta_, beta, atol=1e-10)
    assert m.intercept_ == pytest.approx(y.mean() - X.mean(axis=0) @ beta, abs=1e-10)
    # one voxel by hand: beta = S_xy / (S_xx + a). Voxel 0 is lesioned in 4 of 8 subjects
    # (mean score 2.75 against 0.75 spared): S_xx = 8 * 0.25 = 2, S_xy = 4 * 0.5 * (2.75 - 0.75) = 4.
    one = RidgeLSM(alphas=[a], min_subjects=1, n_permutations=0).fit(X[:, :1], y)
    assert one.beta_[0] == pytest.approx(4.0 / (2.0 + a), abs=1e-12)


def test_penalty_is_the_brute_force_leave_one_out_minimum(rng):
    X = (rng.random((25, 40)) < 0.35).astype(np.uint8)
    y = X[:, :4].sum(axis=1) + 0.8 * rng.normal(size=25)
    alphas = np.logspace(-2, 3, 11)
    m = RidgeLSM(alphas=alphas, min_subjects=2, n_permutations=0).fit(X, y)
    Xm = X[:, m.mask_].astype(float)
    loo = []
    for a in alphas:
        err = [(Ridge(alpha=a, solver="cholesky").fit(np.delete(Xm, i, 0), np.delete(y, i))
                .predict(Xm[i:i + 1])[0] - y[i]) ** 2 for i in range(len(y))]
        loo.append(np.mean(err))
    np.testing.assert_allclose(m.loo_mse_, loo, rtol=1e-7)
    assert m.penalty_ == alphas[int(np.argmin(loo))]
    assert m.at_edge_ is None


def test_default_grid_scales_with_the_data_and_flags_its_edges(rng):
    X = (rng.random((60, 250)) < 0.3).astype(np.uint8)
    y_linear = X[:, :15].mean(axis=1)  # exact, noise-free linear score: the ridgeless limit is best
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a flat edge is no reason to warn
        m = RidgeLSM(min_subjects=3, n_permutations=0).fit(X, y_linear)
    assert m.at_edge_ == "smallest"
    Xm = X[:, m.mask_].astype(float)
    assert m.penalty_scale_ == pytest.approx(((Xm - Xm.mean(0)) ** 2).sum() / 60)
    assert m.alphas_[0] == pytest.approx(1e-6 * m.penalty_scale_)
    # a grid that stops while the error still falls: warned
    with pytest.warns(UserWarning, match="smallest of the grid .* still falling"):
        w = RidgeLSM(alphas=[300.0, 1000.0, 3000.0], min_subjects=3, n_permutations=0).fit(X, y_linear)
    assert w.at_edge_ == "smallest"


def test_permutation_nulls_match_brute_force_refits(data):
    X, y = data
    m = RidgeLSM(min_subjects=3, n_permutations=7, random_state=5, tail="greater").fit(X, y)
    Xm = X[:, m.mask_].astype(float)
    rng = np.random.default_rng(5)
    null = [Ridge(alpha=m.penalty_, solver="cholesky").fit(Xm, y[rng.permutation(60)]).coef_.max()
            for _ in range(7)]
    np.testing.assert_allclose(m.null_max_, null, rtol=1e-6)
    brute_p_fwe = (1 + (np.asarray(null)[None, :] >= m.beta_[m.mask_][:, None] - 1e-9).sum(1)) / 8
    np.testing.assert_allclose(m.p_fwe_[m.mask_], brute_p_fwe)


def test_permutations_find_the_planted_voxels_with_the_right_sign():
    rng = np.random.default_rng(42)
    X = (rng.random((300, 60)) < 0.25).astype(np.uint8)
    y = 10 + 5.0 * X[:, :5].sum(axis=1) - 5.0 * X[:, 5:10].sum(axis=1) + rng.normal(size=300)
    m = RidgeLSM(min_subjects=3, n_permutations=99, correction="fwe", random_state=0).fit(X, y)
    assert np.all(m.beta_[:5] > 0) and np.all(m.beta_[5:10] < 0)  # damage raises / lowers
    assert np.all(m.p_fwe_[:10] <= 0.05)
    assert np.median(m.p_[10:]) > 0.3
    sig = m.thresholded_ != 0
    assert sig[:10].all() and np.all(np.abs(m.beta_[sig]) > m.threshold_)
    again = RidgeLSM(min_subjects=3, n_permutations=99, correction="fwe", random_state=0).fit(X, y)
    np.testing.assert_array_equal(m.p_, again.p_)


def test_score_volume_correction_predicts_on_the_score_scale(rng):
    X = (rng.random((80, 120)) < rng.uniform(0.05, 0.6, size=(80, 1))).astype(np.uint8)
    vol = X.sum(axis=1).astype(float)
    y = 0.3 * vol + X[:, :4].sum(axis=1) + 0.1 * rng.normal(size=80)
    m = RidgeLSM(min_subjects=3, n_permutations=0, volume_correction="score").fit(X, y)
    # the volume trend regressed out before the fit is added back by predict
    b = np.polyfit(vol, y, 1)
    resid = y - np.polyval(b, vol) + y.mean()
    ref = Ridge(alpha=m.penalty_, solver="cholesky").fit(X[:, m.mask_].astype(float), resid)
    expected = ref.predict(X[:, m.mask_].astype(float)) + np.polyval(b, vol) - y.mean()
    np.testing.assert_allclose(m.predict(X), expected, atol=1e-6)
    assert r2_score(y, m.predict(X)) > 0.95


def test_covariates_are_needed_to_predict(data, rng):
    X, y = data
    cov = rng.normal(size=(60, 2))
    m = RidgeLSM(min_subjects=3, n_permutations=0).fit(X, y + 4 * cov[:, 0], covariates=cov)
    assert m.predict(X, covariates=cov).shape == (60,)
    with pytest.raises(DeepLSMError, match="fitted with 2 covariate"):
        m.predict(X)
    with pytest.raises(DeepLSMError, match="10 voxels per map but the model was fitted on 250"):
        m.predict(X[:, :10], covariates=cov)


def test_cohort_input_gives_images_and_saved_maps(cohort, rng, tmp_path):
    y = cohort.data.reshape(cohort.n_subjects, -1)[:, 100].astype(float) + rng.normal(size=cohort.n_subjects)
    m = RidgeLSM(min_subjects=5, n_permutations=10, random_state=0).fit(cohort, y)
    assert m.beta_img_.shape == (7, 8, 9)
    assert m.statistic_img_ is m.beta_img_
    assert m.p_img_.shape == (7, 8, 9)
    assert m.predict(cohort).shape == (cohort.n_subjects,)
    out = save_fitted_maps(tmp_path / "ridge", cohort, {"y": m}, "ridge")
    assert sorted(p.name for p in out.iterdir()) == [
        ".deeplsm", "mask.nii.gz", "summary.json", "y_p.nii.gz", "y_p_fwe.nii.gz",
        "y_stat.nii.gz", "y_stat_clusters.json", "y_stat_clusters.tsv", "y_thresholded.nii.gz"]
    s = json.loads((out / "summary.json").read_text())["outputs"]["y"]
    assert s["method"] == "ridge" and s["penalty"] == m.penalty_ and len(s["loo_mse"]) == 41


def test_estimator_contract(data):
    X, y = data
    est = RidgeLSM(min_subjects=3, n_permutations=5, random_state=1)
    assert clone(est).get_params() == est.get_params()
    with pytest.raises(Exception, match="not fitted"):
        est.predict(X)
    assert est.fit(X, y) is est
    first = est.beta_.copy()
    np.testing.assert_array_equal(est.fit(X, y).beta_, first)
    assert 0 < est.score(X, y) <= 1


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"alphas": [1.0, -1.0]}, "alphas must be positive"),
    ({"alphas": []}, "alphas must be positive"),
    ({"volume_correction": "x"}, "volume_correction must be one of"),
    ({"correction": "fwe", "n_permutations": 0}, "needs n_permutations"),
    ({"n_permutations": -1}, "n_permutations must be"),
    ({"alpha": 1.5}, "alpha must be in"),
    ({"min_subjects": 0.99}, "no voxel is lesioned"),
])
def test_bad_parameters(data, kwargs, match):
    X, y = data
    with pytest.raises(DeepLSMError, match=match):
        RidgeLSM(**{"min_subjects": 3, "n_permutations": 0, **kwargs}).fit(X, y)

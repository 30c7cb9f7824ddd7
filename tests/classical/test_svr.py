import numpy as np
import pytest
from sklearn.base import clone
from sklearn.svm import SVR

from deeplsm.classical import SVRLSM
from deeplsm.exceptions import DeepLSMError


@pytest.fixture
def data(rng):
    X = (rng.random((60, 250)) < 0.3).astype(np.uint8)
    y = 10 + 3.0 * X[:, :15].sum(axis=1) + rng.normal(size=60)
    return X, y


def _sklearn_beta(Xf, ys, **kw):
    r = SVR(kernel="rbf", **kw).fit(Xf, ys)
    w = r.dual_coef_[0] @ r.support_vectors_
    return w * 10 / np.abs(w).max()


def test_precomputed_kernel_matches_sklearn_rbf(data):
    X, y = data
    m = SVRLSM(min_subjects=3, n_permutations=0).fit(X, y)
    Xm = X[:, m.mask_].astype(float)
    Xn = Xm / np.linalg.norm(Xm, axis=1, keepdims=True)  # DTLVC: unit-norm lesion vectors
    ref = _sklearn_beta(Xn, y * 100 / np.abs(y).max(), C=30, gamma=5)
    assert np.abs(m.beta_[m.mask_] - ref).max() / np.abs(ref).max() <= 1e-3
    assert np.abs(m.beta_).max() == pytest.approx(10.0)  # svrlsmgui's beta scaling


def test_beta_is_dual_coef_times_support_vectors_not_their_mean(data):
    X, y = data
    m = SVRLSM(min_subjects=3, n_permutations=0, volume_correction="none").fit(X, y)
    Xm = X[:, m.mask_].astype(float)
    sv = m.model_.support_
    w = m.model_.dual_coef_[0] @ Xm[sv]
    np.testing.assert_allclose(m.beta_[m.mask_], w * 10 / np.abs(w).max(), rtol=1e-5, atol=1e-6)
    wrong = Xm[sv].mean(axis=0)
    assert np.corrcoef(wrong, m.beta_[m.mask_])[0, 1] < 0.99


def test_permutations_find_the_planted_voxels():
    rng = np.random.default_rng(42)
    X = (rng.random((60, 150)) < 0.25).astype(np.uint8)
    y = 10 + 5.0 * X[:, :5].sum(axis=1) + rng.normal(size=60)
    m = SVRLSM(min_subjects=3, n_permutations=99, tail="greater", correction="fwe",
               random_state=0).fit(X, y)
    assert np.mean(m.p_[:5] <= 0.05) >= 0.8
    assert np.median(m.p_[5:]) > 0.3
    assert m.null_max_.shape == (99,)
    assert m.p_fwe_[:5].min() <= 0.05
    sig = m.thresholded_ != 0
    assert np.all(m.beta_[sig] > m.threshold_)


def test_permutations_reproducible_and_parallel_equal(data):
    X, y = data
    a = SVRLSM(min_subjects=3, n_permutations=20, random_state=3).fit(X, y)
    b = SVRLSM(min_subjects=3, n_permutations=20, random_state=3, n_jobs=2).fit(X, y)
    np.testing.assert_allclose(a.p_, b.p_)
    np.testing.assert_allclose(a.null_max_, b.null_max_, rtol=1e-5)


def test_cfwer(data):
    X, y = data
    m = SVRLSM(min_subjects=3, n_permutations=30, correction="cfwer", cfwer_v=5, random_state=0).fit(X, y)
    assert np.all(m.null_kth_ <= m.null_max_)
    assert np.all(m.p_cfwer_ <= m.p_fwe_ + 1e-12)


def test_cv_search_and_predict(data):
    X, y = data
    m = SVRLSM(min_subjects=3, n_permutations=0, cv=3, param_grid={"C": [1, 30], "gamma": [1, 5]},
               random_state=0).fit(X, y)
    assert m.cv_results_["best"] == {"C": m.C_, "gamma": m.gamma_}
    assert len(m.cv_results_["mean_mse"]) == 4
    pred = m.predict(X)
    assert pred.shape == (60,)
    assert np.corrcoef(pred, y)[0, 1] > 0.8
    with pytest.raises(DeepLSMError, match="voxels per map"):
        m.predict(X[:, :10])


def test_cohort_input_gives_images(cohort, rng):
    y = rng.normal(size=cohort.n_subjects)
    m = SVRLSM(min_subjects=5, n_permutations=10, random_state=0).fit(cohort, y)
    assert m.beta_img_.shape == (7, 8, 9)
    assert m.statistic_img_ is m.beta_img_
    assert m.p_img_.shape == (7, 8, 9)
    assert m.predict(cohort).shape == (cohort.n_subjects,)
    s = m.summary()
    assert s["n_support_vectors"] == m.n_support_ and s["method"] == "svr"


def test_estimator_contract(data):
    X, y = data
    est = SVRLSM(min_subjects=3, n_permutations=5, random_state=1)
    assert clone(est).get_params() == est.get_params()
    with pytest.raises(Exception, match="not fitted"):
        est.predict(X)
    assert est.fit(X, y) is est
    assert 0 < est.score(X, y) <= 1


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"C": 0}, r"C = 0: must be a number > 0"),
    ({"gamma": -1}, r"gamma = -1: must be a number > 0"),
    ({"volume_correction": "x"}, "volume_correction must be one of"),
    ({"correction": "fwe", "n_permutations": 0}, "needs n_permutations"),
    ({"cv": 1}, r"cv = 1: must be an integer >= 2, or None"),
    ({"min_subjects": 0.99}, "no voxel is lesioned"),
])
def test_bad_parameters(data, kwargs, match):
    X, y = data
    with pytest.raises(DeepLSMError, match=match):
        SVRLSM(**{"min_subjects": 3, "n_permutations": 0, **kwargs}).fit(X, y)

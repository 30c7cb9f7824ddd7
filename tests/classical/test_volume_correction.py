"""Lesion-volume control as LESYMAP and svrlsmgui define it, against direct OLS with numpy/scipy.

LESYMAP (``R/lesymap.R``): ``behavior`` = residuals of ``lm(behavior ~ lesion size)``;
``voxel`` = lesion matrix times ``1/sqrt(lesion size)``; ``both`` = the two.
svrlsmgui (``RunAnalysis.m``, ``continuize_lesions.m``): ``Regress on Behavior``; ``Regress on
Lesion`` = every voxel's values regressed on ``[1, lesion volume]``, residuals plus intercept;
``Regress on Both`` = the two; ``DTLVC``.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.svm import SVR

from deeplsm.classical import SVRLSM, MassUnivariateLSM
from deeplsm.classical._common import LesionVolumeRegression, resolve_volume_correction
from deeplsm.cli import main
from deeplsm.exceptions import DeepLSMError


@pytest.fixture
def Xy(rng):
    n = 50
    # lesion burden varies a lot between subjects, and the score follows it
    p = rng.uniform(0.05, 0.6, size=n)[:, None]
    X = (rng.random((n, 120)) < p).astype(np.uint8)
    X[:, 100:] = X[:, :20]  # repeated patterns: patch compression must still hold
    vol = X.sum(axis=1).astype(float)
    y = 0.05 * vol + 1.5 * X[:, 3] + rng.normal(size=n)
    return X, y, vol


def _ols_resid(v: np.ndarray, vol: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Residuals of ``v ~ 1 + vol`` by numpy least squares, and the fitted coefficients."""
    Z = np.column_stack([np.ones_like(vol), vol])
    b, *_ = np.linalg.lstsq(Z, v, rcond=None)
    return v - Z @ b, b


def _design(X, y, vol, option):
    """Score and lesion data after ``option``, written from the tools' definitions."""
    behavior, lesion = {"none": (False, None), "behavior": (True, None), "voxel": (False, "dtlvc"),
                        "both": (True, "dtlvc"), "lesion": (False, "regress"),
                        "regress_on_both": (True, "regress")}[option]
    yy = _ols_resid(y, vol)[0] + y.mean() if behavior else y.copy()
    Xf = X.astype(float)
    if lesion == "dtlvc":
        Xf = Xf / np.sqrt(vol)[:, None]
    elif lesion == "regress":  # svrlsmgui: regress(x_v, [1 vol]) residuals + B(1)
        cols = []
        for v in range(X.shape[1]):
            r, b = _ols_resid(Xf[:, v], vol)
            cols.append(r + b[0])
        Xf = np.column_stack(cols)
    return Xf, yy


@pytest.mark.parametrize("option", ["behavior", "voxel", "both", "lesion", "regress_on_both"])
def test_vlsm_regression_t_against_direct_ols(Xy, option):
    X, y, vol = Xy
    m = MassUnivariateLSM(test="regression", volume_correction=option, min_subjects=3,
                          n_permutations=0, correction="none").fit(X, y)
    Xf, yy = _design(X, y, vol, option)
    tested = np.flatnonzero(m.mask_)
    assert tested.size > 50
    for v in tested:
        fit = stats.linregress(Xf[:, v], yy)
        assert m.statistic_[v] == pytest.approx(fit.slope / fit.stderr, rel=1e-6, abs=1e-8), v
    assert m.summary()["volume_correction_applied"] == option


def test_vlsm_behavior_with_two_group_tests(Xy):
    X, y, vol = Xy
    _, yy = _design(X, y, vol, "behavior")
    for test, ref in (("t", lambda a, b: stats.ttest_ind(a, b).statistic),
                      ("bm", lambda a, b: stats.brunnermunzel(b, a).statistic)):
        m = MassUnivariateLSM(test=test, volume_correction="behavior", min_subjects=3,
                              n_permutations=0, correction="none").fit(X, y)
        v = np.flatnonzero(m.mask_)[:10]
        got = m.statistic_[v]
        want = [ref(yy[X[:, j] == 1], yy[X[:, j] == 0]) for j in v]
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_lesion_regression_changes_the_map(Xy):
    """'lesion' is not 'none' and not 'behavior': volume is what drives most voxels here."""
    X, y, _ = Xy
    kw = {"test": "regression", "min_subjects": 3, "n_permutations": 0, "correction": "none"}
    maps = {o: MassUnivariateLSM(volume_correction=o, **kw).fit(X, y).statistic_
            for o in ("none", "behavior", "lesion", "regress_on_both")}
    for a in maps:
        for b in maps:
            if a < b:
                assert np.abs(maps[a] - maps[b]).max() > 0.1, (a, b)


@pytest.mark.parametrize(("alias", "canonical"), [
    ("score", "behavior"), ("Regress on Behavior", "behavior"), ("dtlvc", "voxel"),
    ("DTLVC", "voxel"), ("Regress on Lesion", "lesion"), ("regress-on-both", "regress_on_both"),
    ("Regress on Both", "regress_on_both"), ("both", "both"),
])
def test_aliases_give_identical_maps(Xy, alias, canonical):
    X, y, _ = Xy
    assert resolve_volume_correction(alias).name == canonical
    kw = {"test": "regression", "min_subjects": 3, "n_permutations": 0, "correction": "none"}
    a = MassUnivariateLSM(volume_correction=alias, **kw).fit(X, y)
    b = MassUnivariateLSM(volume_correction=canonical, **kw).fit(X, y)
    np.testing.assert_array_equal(a.statistic_, b.statistic_)


def test_invalid_options(Xy):
    X, y, _ = Xy
    with pytest.raises(DeepLSMError, match="volume_correction must be one of 'none', 'behavior'"):
        MassUnivariateLSM(volume_correction="both ways", min_subjects=3).fit(X, y)
    for option in ("lesion", "regress_on_both", "voxel"):
        with pytest.raises(DeepLSMError, match="needs test='regression'"):
            MassUnivariateLSM(test="t", volume_correction=option, min_subjects=3).fit(X, y)
    with pytest.raises(DeepLSMError, match="same lesion volume"):
        LesionVolumeRegression(np.full(5, 3.0))
    with pytest.raises(DeepLSMError, match="volume_correction must be one of"):
        SVRLSM(volume_correction=3, min_subjects=3, n_permutations=0).fit(X, y)


def test_lesion_volume_regression_helper(Xy):
    X, _, vol = Xy
    reg = LesionVolumeRegression(vol)
    Xf, _ = _design(X, np.zeros(len(vol)), vol, "lesion")
    np.testing.assert_allclose(reg.transform(X), Xf, atol=1e-12)
    np.testing.assert_allclose(reg.projector @ X, Xf, atol=1e-12)
    slopes = np.array([_ols_resid(X[:, v].astype(float), vol)[1][1] for v in range(X.shape[1])])
    np.testing.assert_allclose(reg.slopes(X), slopes, atol=1e-12)


# Without unit-norm rows the squared distances between lesion vectors are large, and gamma=5
# would make every kernel entry ~0 (an uninformative fit); this gamma keeps the kernel informative.
GAMMA = 0.02


def _svr_beta(Xf, yy, C=30.0, gamma=GAMMA):
    s = 100.0 / np.abs(yy).max()
    r = SVR(kernel="rbf", C=C, gamma=gamma, epsilon=0.1).fit(Xf, yy * s)
    w = r.dual_coef_[0] @ r.support_vectors_
    return w * 10 / np.abs(w).max(), r, s


@pytest.mark.parametrize("option", ["lesion", "regress_on_both", "behavior", "both"])
def test_svr_against_sklearn_on_explicitly_corrected_data(Xy, option):
    X, y, vol = Xy
    m = SVRLSM(volume_correction=option, gamma=GAMMA, min_subjects=3, n_permutations=0).fit(X, y)
    Xm = X[:, m.mask_]
    Xf, yy = _design(Xm, y, vol, "regress_on_both" if option == "regress_on_both" else
                     ("lesion" if option == "lesion" else "behavior"))
    if option == "both":  # svr's DTLVC is unit-norm rows over the tested voxels
        Xf = Xm / np.linalg.norm(Xm.astype(float), axis=1, keepdims=True)
    K = np.exp(-GAMMA * ((Xf[:, None] - Xf[None]) ** 2).sum(-1))
    assert 0.05 < np.median(K[np.triu_indices(len(y), 1)]) < 0.95 or option == "both"
    beta, ref, s = _svr_beta(Xf, yy)
    assert np.abs(m.beta_[m.mask_] - beta).max() <= 1e-3 * np.abs(beta).max()
    if option in ("lesion", "regress_on_both"):
        # new subjects: their voxels minus their volume times the training slopes
        rng = np.random.default_rng(7)
        Xn = (rng.random((6, X.shape[1])) < 0.3).astype(np.uint8)
        vn = Xn.sum(axis=1).astype(float)
        slopes = np.array([_ols_resid(Xm[:, v].astype(float), vol)[1][1] for v in range(Xm.shape[1])])
        Xnf = Xn[:, m.mask_] - np.outer(vn, slopes)
        np.testing.assert_allclose(m.predict(Xn), ref.predict(Xnf) / s, rtol=1e-6, atol=1e-6)


def test_svr_permutations_use_the_corrected_data(Xy):
    """The first permuted beta map's max |beta| equals a refit on explicitly corrected data."""
    X, y, vol = Xy
    m = SVRLSM(volume_correction="lesion", gamma=GAMMA, min_subjects=3, n_permutations=3,
               random_state=5).fit(X, y)
    perm = np.random.default_rng(5).permutation(len(y))
    Xf, _ = _design(X[:, m.mask_], y, vol, "lesion")
    r = SVR(kernel="rbf", C=30, gamma=GAMMA, epsilon=0.1).fit(Xf, y[perm] * m.score_scale_)
    w = (r.dual_coef_[0] @ r.support_vectors_) * m.beta_scale_
    assert m.null_max_[0] == pytest.approx(np.abs(w).max(), rel=1e-4)


def test_svr_predict_needs_same_input_kind(Xy, make_cohort, rng):
    c = make_cohort(rng, n=30)
    y = rng.normal(size=30) + c.data[:, 2, 2, 2]
    m = SVRLSM(volume_correction="lesion", min_subjects=3, n_permutations=0).fit(c, y)
    assert m.predict(c).shape == (30,)
    with pytest.raises(DeepLSMError, match="same kind of input"):
        m.predict(c.data.reshape(30, -1))


def test_cli_accepts_the_tools_names(tmp_path, make_cohort, rng, capsys):
    import pandas as pd

    c = make_cohort(rng, n=30)
    c.save(tmp_path / "c.lesions.npz")
    pd.DataFrame({"subject": c.subject_ids, "naming": rng.normal(size=30)}).to_csv(
        tmp_path / "s.csv", index=False)
    base = ["vlsm", "--lesions", str(tmp_path / "c.lesions.npz"), "--scores", str(tmp_path / "s.csv"),
            "--min-subjects", "3", "--permutations", "0", "--quiet", "--test", "regression"]
    assert main([*base, "--volume-correction", "Regress on Both", "--out", str(tmp_path / "o")]) == 0
    import json

    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["outputs"]["naming"]["volume_correction_applied"] == "regress_on_both"
    with pytest.raises(SystemExit) as exc:
        main([*base, "--volume-correction", "sideways", "--out", str(tmp_path / "o2")])
    assert exc.value.code == 2
    assert "volume_correction must be one of" in capsys.readouterr().err

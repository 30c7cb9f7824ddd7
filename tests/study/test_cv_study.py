"""The study's repeated k-fold cross-validation (``models.folds``, ``models.repeats``): the same
folds for the CNN, ridge and SVR-LSM, numbers checked against sklearn, resume, report; and the
study's ``exclusions`` and minimum-overlap view."""

from __future__ import annotations

import re

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.linear_model import RidgeCV
from sklearn.metrics import r2_score
from sklearn.svm import SVR

import deeplsm.study._cv as study_cv
from deeplsm.cohort import LesionCohort
from deeplsm.exceptions import DeepLSMError
from deeplsm.study import Study, make_config, run_study

K, REPEATS, SEED, MIN_SUBJECTS = 3, 2, 5, 4


def _config(**models) -> dict:
    return make_config({
        "cohort": {"n_subjects": 45, "voxel_size": 8.0},
        "scores": {"roi_size": 1, "min_patients": 4, "n_rois": 2},
        "models": {"modes": ["multi"], "seed": SEED, "folds": K, "repeats": REPEATS,
                   "overrides": {"max_epochs": 1, "batch_size": 8}, **models},
        "explain": {"methods": ["occlusion"], "max_subjects": 2, "window": 2, "stride": 2},
        "classical": {"methods": ["vlsm", "svr", "ridge"], "min_subjects": MIN_SUBJECTS,
                      "permutations": 20},
    })


@pytest.fixture(scope="module")
def cv_study(tmp_path_factory):
    """A CV study killed in repeat 1, fold 1, then resumed."""
    out = tmp_path_factory.mktemp("cvstudy") / "study"
    real = study_cv._train_fold

    def killed(study, mode, repeat, fold):
        if (repeat, fold) == (1, 1):
            raise KeyboardInterrupt
        return real(study, mode, repeat, fold)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(study_cv, "_train_fold", killed)
        with pytest.raises(KeyboardInterrupt):
            run_study(_config(), out, verbose=False)
    study = Study(_config(), out, verbose=False)
    metrics = study.run()
    return out, study, metrics


def _folds(ids: list[str], r: int) -> list[set[str]]:
    """Test folds of repeat r from numpy directly: a permutation seeded SEED + r, cut in K parts."""
    perm = np.random.default_rng(SEED + r).permutation(len(ids))
    return [{ids[i] for i in part} for part in np.array_split(perm, K)]


def test_interrupted_cv_resumes_stage_by_stage(cv_study):
    out, study, _ = cv_study
    # stages run in order (repeat, fold, then multi, ridge, svr): the kill came at repeat 1, fold 1
    done_before = {f"cv_r{r}_f{f}_{m}" for r in range(REPEATS) for f in range(K)
                   for m in ("multi", "ridge", "svr") if (r, f) < (1, 1)}
    assert done_before <= set(study.skipped)
    assert {"cv_r1_f1_multi", "cv_r1_f1_ridge", "cv_r1_f2_multi", "cv"} <= set(study.ran)
    assert not set(study.ran) & {"train_multi", "vlsm", "svr", "ridge"}  # the main split is cached
    again = Study(_config(), out, verbose=False)
    again.run()
    assert not [s for s in again.ran if s.startswith("cv")]


def test_every_model_is_tested_on_the_same_folds(cv_study):
    out, study, _ = cv_study
    ids = study.load_cohort().subject_ids
    splits = pd.read_csv(out / "cv" / "splits.csv", dtype={"subject": str})
    for r in range(REPEATS):
        one = splits[splits["repeat"] == r]
        assert sorted(one["subject"]) == sorted(ids)  # every subject tested once per repeat
        folds = _folds(ids, r)
        assert sorted(map(sorted, (set(one.loc[one["fold"] == f, "subject"]) for f in range(K)))) == \
            sorted(map(sorted, folds))
        for f in range(K):
            test = set(one.loc[one["fold"] == f, "subject"])
            cnn = pd.read_csv(out / "cv" / f"repeat-{r}" / f"fold-{f}" / "multi" / "split.csv", dtype=str)
            assert set(cnn.loc[cnn["split"] == "test", "subject"]) == test
            nxt = set(one.loc[one["fold"] == (f + 1) % K, "subject"])
            assert set(cnn.loc[cnn["split"] == "val", "subject"]) == nxt
            for method in ("ridge", "svr"):
                pred = pd.read_csv(out / "cv" / f"repeat-{r}" / f"fold-{f}" / method / "predictions.csv",
                                   dtype={"subject": str})
                assert set(pred["subject"]) == test
    table = pd.read_csv(out / "cv" / "folds.csv")
    assert set(table["method"]) == {"multi", "ridge", "svr"}  # VLSM does not predict
    n_test = table.groupby(["repeat", "fold"])["n_test"].nunique()
    assert (n_test == 1).all()
    # the CNN counts its training folds, ridge/SVR their training + validation folds
    per = table.groupby(["repeat", "fold", "method"])["n_train"].first().unstack()
    assert (per["ridge"] == per["svr"]).all() and (per["ridge"] > per["multi"]).all()


def _fold_data(out, study, r, f):
    cohort = LesionCohort.load(out / "cohort" / "cohort.lesions.npz")
    scores = pd.read_csv(out / "simulation" / "scores.csv", dtype={"subject": str}).set_index("subject")
    test = set(pd.read_csv(out / "cv" / f"repeat-{r}" / f"fold-{f}" / "ridge" / "predictions.csv",
                           dtype={"subject": str})["subject"])
    ids = cohort.subject_ids
    fit_i = [i for i, s in enumerate(ids) if s not in test]
    test_i = [i for i, s in enumerate(ids) if s in test]
    X = cohort.data.reshape(cohort.n_subjects, -1).astype(np.float64)
    counts = X[fit_i].sum(axis=0)
    mask = (counts >= MIN_SUBJECTS) & (len(fit_i) - counts >= MIN_SUBJECTS)
    return X[fit_i][:, mask], X[test_i][:, mask], scores.iloc[fit_i], scores.iloc[test_i]


def _row(table, r, f, method, score, metric):
    sel = table[(table["repeat"] == r) & (table["fold"] == f) & (table["method"] == method)
                & (table["score"] == score) & (table["metric"] == metric)]
    assert len(sel) == 1
    return float(sel["value"].iloc[0])


def test_ridge_and_svr_fold_numbers_equal_sklearn_fitted_on_the_folds(cv_study):
    """Each fold refitted here with sklearn (RidgeCV on the tested voxels over the documented grid;
    an RBF SVR on unit-norm lesion vectors with scores scaled to 100), scored with scipy/sklearn."""
    out, study, _ = cv_study
    table = pd.read_csv(out / "cv" / "folds.csv")
    for r in range(REPEATS):
        for f in range(K):
            Xf, Xt, yf, yt = _fold_data(out, study, r, f)
            for score in yf.columns:
                y, truth = yf[score].to_numpy(), yt[score].to_numpy()
                G = Xf @ Xf.T
                Gc = G - G.mean(0) - G.mean(1)[:, None] + G.mean()
                alphas = np.logspace(-6, 4, 41) * (np.trace(Gc) / len(y))
                ridge = RidgeCV(alphas=alphas).fit(Xf, y).predict(Xt)

                def unit(X):
                    norm = np.linalg.norm(X, axis=1, keepdims=True)
                    return np.divide(X, norm, out=np.zeros_like(X), where=norm > 0)

                scale = 100.0 / np.abs(y).max()
                svr = SVR(kernel="rbf", C=30.0, gamma=5.0, epsilon=0.1).fit(unit(Xf), y * scale)
                svr = svr.predict(unit(Xt)) / scale
                for method, pred in (("ridge", ridge), ("svr", svr)):
                    folder = out / "cv" / f"repeat-{r}" / f"fold-{f}" / method
                    written = pd.read_csv(folder / "predictions.csv")
                    np.testing.assert_allclose(written[f"{score}_pred"], pred, rtol=1e-5, atol=1e-6)
                    # undefined (NaN in folds.csv) for a constant prediction or a constant truth
                    defined = np.ptp(truth) > 0 and np.ptp(pred) > 1e-9
                    r2 = stats.pearsonr(truth, pred)[0] ** 2 if defined else np.nan
                    np.testing.assert_allclose(_row(table, r, f, method, score, "r2"), r2, atol=1e-5)
                    big_r2 = r2_score(truth, pred) if np.ptp(truth) > 0 else np.nan
                    np.testing.assert_allclose(_row(table, r, f, method, score, "R2"), big_r2, atol=1e-5)


def test_cv_summary_in_metrics_json(cv_study, capsys):
    out, _, metrics = cv_study
    table = pd.read_csv(out / "cv" / "folds.csv")
    assert list(metrics["cv"]) == ["multi", "ridge", "svr"]
    for method, per in metrics["cv"].items():
        assert list(per) == ["score_1", "score_2"]
        for score, m in per.items():
            assert m["n_folds"] == K * REPEATS
            for metric in ("r2", "R2"):
                v = table[(table["method"] == method) & (table["score"] == score)
                          & (table["metric"] == metric)]["value"].dropna()
                # folds.csv holds 8 significant digits
                np.testing.assert_allclose(m[f"{metric}_mean"], v.mean(), rtol=1e-6, atol=1e-8)
                np.testing.assert_allclose(m[f"{metric}_sd"], v.std(ddof=1), rtol=1e-6, atol=1e-8)
    # the main single split is still there, unchanged in form
    assert set(metrics["prediction"]) == {"multi", "ridge", "svr"}
    from deeplsm.cli._study import print_summary

    print_summary(metrics, out)
    text = capsys.readouterr().out
    m = metrics["cv"]["ridge"]["score_2"]
    assert f"ridge score_2: r² {m['r2_mean']:.3f} ± {m['r2_sd']:.3f}" in text


def test_report_shows_the_spread(cv_study):
    out, *_ = cv_study
    html = (out / "report.html").read_text()
    assert "Repeated k-fold cross-validation" in html and 'alt="cross-validation spread"' in html
    section = html[html.index("Repeated k-fold cross-validation"):]
    for name in ("multi-output CNN", "ridge", "SVR-LSM"):
        assert re.search(rf"<td>{name}</td>(<td>-?\d\.\d{{3}} ± \d\.\d{{3}}</td>){{4}}<td>6</td>", section)
    assert "single main split" in section


def test_the_papers_single_split_stays_the_default_and_bad_cv_settings(cv_study, tmp_path):
    cfg = make_config()
    assert (cfg["models"]["folds"], cfg["models"]["repeats"]) == (None, 1)
    with pytest.raises(DeepLSMError, match=r"models\.repeats = 2: .*set models\.folds too"):
        make_config({"models": {"repeats": 2}})
    with pytest.raises(DeepLSMError, match=r"models\.folds = 2: must be an integer >= 3"):
        make_config({"models": {"folds": 2}})
    out, *_ = cv_study
    small = _config(folds=30)
    small["cohort"].update(source=str(out / "cohort" / "cohort.lesions.npz"), voxel_size=None)
    with pytest.raises(DeepLSMError, match=r"models\.folds = 30: too few subjects to split: 45 subjects"):
        run_study(small, tmp_path / "s", verbose=False)
    assert not (tmp_path / "s" / "train").exists()  # before any training


# --- exclusions and the minimum-overlap view ------------------------------------------------------
def test_study_exclusions_counted_directly(cv_study):
    out, study, metrics = cv_study
    ex = metrics["exclusions"]
    cohort = study.load_cohort()
    split = pd.read_csv(out / "train" / "multi" / "split.csv", dtype=str)
    fit = set(split.loc[split["split"] != "test", "subject"])
    data = cohort.data.reshape(cohort.n_subjects, -1)
    rows = [i for i, s in enumerate(cohort.subject_ids) if s in fit]
    counts = data[rows].sum(axis=0)
    n = len(rows)
    tested = (counts >= MIN_SUBJECTS) & (n - counts >= MIN_SUBJECTS)
    assert ex["cohort"]["empty_lesion_maps"]["count"] == int((data.sum(axis=1) == 0).sum())
    assert ex["cohort"]["score_rows_without_lesion_map"]["count"] == 0  # simulated scores
    for method in ("vlsm", "svr", "ridge"):
        v = ex[method]["voxels"]
        assert v["tested"] == int(tested.sum()) == int(np.asarray(
            nib.load(out / "classical" / method / "mask.nii.gz").dataobj).sum())
        assert v["lesioned"] == int((counts > 0).sum())
        assert v["lesioned_in_too_few"] == int(((counts > 0) & (counts < MIN_SUBJECTS)).sum())
        too_many = (counts >= MIN_SUBJECTS) & (n - counts < MIN_SUBJECTS)
        assert v["lesioned_in_too_many"] == int(too_many.sum())
        none = [cohort.subject_ids[i] for i in rows if not data[i][tested].any()]
        assert ex[method]["subjects_without_tested_voxel"]["subjects"] == none
    assert ex["classical_subjects"] == {**ex["classical_subjects"], "fitted_on": n,
                                        "held_out": cohort.n_subjects - n}
    assert ex["explain_multi"]["explained"] == 2 and ex["explain_multi"]["of"] == cohort.n_subjects - n
    assert all("\n" not in line for line in ex["lines"])
    html = (out / "report.html").read_text()
    assert "What was left out, and why" in html


def test_frequency_figure_states_the_tested_and_lesioned_voxels(cv_study):
    out, study, _ = cv_study
    html = (out / "report.html").read_text()
    mask = np.asarray(nib.load(out / "classical" / "vlsm" / "mask.nii.gz").dataobj) > 0
    freq = study.load_cohort().frequency_map()
    m = re.search(r"Dashed outline: the <b>(\d+)</b> voxels tested .*?<b>(\d+)</b> voxels are lesioned "
                  r"in at least one of the (\d+) subjects", html)
    assert m, html[:2000]
    assert (int(m[1]), int(m[2]), int(m[3])) == (int(mask.sum()), int((freq > 0).sum()), 45)
    assert 'alt="voxels tested per overlap"' in html

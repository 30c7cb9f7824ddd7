"""Repeated k-fold cross-validation of the CNN: the folds, the run folders, the summary, the CLI."""

from __future__ import annotations

import json

import lightning as L
import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import mean_squared_error, r2_score

from deeplsm.cli import main
from deeplsm.exceptions import DeepLSMError
from deeplsm.train import kfold_split, load_trained, repeated_kfold_splits, resume_cv, train_cv

QUICK = {"max_epochs": 1, "batch_size": 8}


def _brute_force_folds(ids: list[str], k: int, seed: int) -> list[set[str]]:
    """The k test folds of one repeat, from numpy directly: a seeded permutation cut in k parts."""
    perm = np.random.default_rng(seed).permutation(len(ids))
    return [{ids[i] for i in part} for part in np.array_split(perm, k)]


# --- the folds ----------------------------------------------------------------------------------
def test_repeated_kfold_folds_are_disjoint_and_cover_every_subject_once_per_repeat():
    ids = [f"s{i:02d}" for i in range(23)]
    k, repeats, seed = 5, 3, 7
    splits = repeated_kfold_splits(ids, k, n_repeats=repeats, random_state=seed)
    assert [(r, f) for r, f, _ in splits] == [(r, f) for r in range(repeats) for f in range(k)]
    for r in range(repeats):
        tests = [{s for s, v in split.items() if v == "test"} for rr, _, split in splits if rr == r]
        vals = [{s for s, v in split.items() if v == "val"} for rr, _, split in splits if rr == r]
        # disjoint, and their union is every subject: each subject is tested exactly once
        assert sum(len(t) for t in tests) == len(ids) and set().union(*tests) == set(ids)
        # the same folds as a seeded permutation (seed + r) cut into k parts, computed here
        assert sorted(map(sorted, tests)) == sorted(map(sorted, _brute_force_folds(ids, k, seed + r)))
        for f in range(k):  # validation = the next fold; train = the rest
            assert vals[f] == tests[(f + 1) % k]
            split = splits[r * k + f][2]
            assert {s for s, v in split.items() if v == "train"} == set(ids) - tests[f] - vals[f]
    # repeats are different partitions; repeat 0 is the one-fold API's split with the same seed
    first = {frozenset(s for s, v in sp.items() if v == "test") for r, _, sp in splits if r == 0}
    second = {frozenset(s for s, v in sp.items() if v == "test") for r, _, sp in splits if r == 1}
    assert first != second
    assert splits[2][2] == kfold_split(ids, k, 2, random_state=seed)
    with pytest.raises(DeepLSMError, match="repeats must be an integer >= 1"):
        repeated_kfold_splits(ids, k, n_repeats=0)
    with pytest.raises(DeepLSMError, match="k-fold needs at least 3 folds"):
        repeated_kfold_splits(ids, 2)


# --- train_cv ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cv_run(tmp_path_factory, tiny):
    cohort, scores = tiny
    out = tmp_path_factory.mktemp("cv") / "cv"
    train_cv(out, cohort, scores, n_folds=3, n_repeats=2, outputs=["score_a", "score_b"], seed=4,
             overrides=QUICK, verbose=False)
    return out


def test_train_cv_one_run_folder_per_repeat_and_fold(cv_run, tiny):
    cohort, _ = tiny
    splits = repeated_kfold_splits(cohort.subject_ids, 3, n_repeats=2, random_state=4)
    for r, f, split in splits:
        run = cv_run / f"repeat-{r}" / f"fold-{f}"
        written = pd.read_csv(run / "split.csv", dtype=str)
        assert dict(zip(written.subject, written.split)) == split
        cfg = json.loads((run / "config.json").read_text())
        assert (cfg["seed"], cfg["split"]["n_folds"], cfg["split"]["fold"]) == (4 + r, 3, f)
        # finished: the resume-only checkpoint is gone, the best weights load
        assert not list(run.rglob("last.ckpt")) and (run / "checkpoints" / "best.ckpt").is_file()
    assert set(load_trained(cv_run / "repeat-1" / "fold-2").models) == {"multi"}
    table = pd.read_csv(cv_run / "splits.csv", dtype={"subject": str})
    for r in range(2):  # each subject's test fold, once per repeat
        one = table[table["repeat"] == r]
        assert sorted(one["subject"]) == sorted(cohort.subject_ids)
        for f in range(3):
            assert set(one.loc[one["fold"] == f, "subject"]) == {
                s for s, v in splits[r * 3 + f][2].items() if v == "test"}


def test_train_cv_fold_table_and_summary_from_the_predictions(cv_run):
    """folds.csv and summary.json against the fold predictions, recomputed with scipy/sklearn."""
    folds = pd.read_csv(cv_run / "folds.csv")
    assert list(folds.columns) == ["repeat", "fold", "method", "score", "metric", "value", "n_train",
                                   "n_test"]
    assert len(folds) == 2 * 3 * 2 * 3  # repeats x folds x scores x (r2, R2, mse)
    expected = {}
    for r in range(2):
        for f in range(3):
            pred = pd.read_csv(cv_run / f"repeat-{r}" / f"fold-{f}" / "predictions.csv")
            test = pred[pred["split"] == "test"]
            n_train = int((pred["split"] == "train").sum())
            for score in ("score_a", "score_b"):
                t, p = test[f"{score}_true"].to_numpy(), test[f"{score}_pred"].to_numpy()
                rows = folds[(folds["repeat"] == r) & (folds["fold"] == f) & (folds["score"] == score)]
                got = dict(zip(rows["metric"], rows["value"]))
                r2 = stats.pearsonr(t, p)[0] ** 2
                # predictions.csv holds 8 significant digits
                np.testing.assert_allclose(got["r2"], r2, rtol=1e-5, atol=1e-6)
                np.testing.assert_allclose(got["R2"], r2_score(t, p), rtol=1e-5, atol=1e-6)
                np.testing.assert_allclose(got["mse"], mean_squared_error(t, p), rtol=1e-5, atol=1e-8)
                assert set(rows["n_train"]) == {n_train} and set(rows["n_test"]) == {len(t)}
                expected.setdefault(score, {"r2": [], "R2": []})
                expected[score]["r2"].append(r2)
                expected[score]["R2"].append(r2_score(t, p))
    summary = json.loads((cv_run / "summary.json").read_text())
    assert (summary["n_folds"], summary["n_repeats"], summary["seed"]) == (3, 2, 4)
    for score, vals in expected.items():
        got = summary["cv"]["multi"][score]
        assert got["n_folds"] == 6
        for metric in ("r2", "R2"):
            want = vals[metric]
            np.testing.assert_allclose(got[f"{metric}_mean"], np.mean(want), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(got[f"{metric}_sd"], np.std(want, ddof=1), rtol=1e-4, atol=1e-6)


def test_train_cv_resumes_after_a_kill(tmp_path, tiny):
    cohort, scores = tiny
    out = tmp_path / "cv"

    class KillSecondFold(L.Callback):
        def on_train_start(self, trainer, pl_module):
            if "fold-1" in str(trainer.default_root_dir):
                raise KeyboardInterrupt

    with pytest.raises((SystemExit, KeyboardInterrupt)):
        train_cv(out, cohort, scores, n_folds=3, outputs=["score_a"], overrides=QUICK, verbose=False,
                 callbacks=[KillSecondFold()])
    first = out / "repeat-0" / "fold-0" / "metrics.json"
    assert first.is_file() and not (out / "summary.json").exists()
    before = first.stat().st_mtime_ns
    resume_cv(out, verbose=False)
    assert first.stat().st_mtime_ns == before  # a finished fold is not retrained
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cv"]["multi"]["score_a"]["n_folds"] == 3


# --- the command line ---------------------------------------------------------------------------
@pytest.fixture
def files(tmp_path, tiny):
    cohort, scores = tiny
    lesions = cohort.save(tmp_path / "tiny.lesions.npz")
    csv = tmp_path / "scores.csv"
    scores.reset_index().to_csv(csv, index=False)
    return tmp_path, str(lesions), str(csv)


def _train(lesions, scores, out, *extra):
    return main(["train", "--lesions", lesions, "--scores", scores, "--out", str(out), "--epochs", "1",
                 "--batch-size", "8", "--outputs", "score_a", "--quiet", *extra])


def test_cli_folds_and_repeats(files, capsys):
    tmp, lesions, csv = files
    out = tmp / "cv"
    assert _train(lesions, csv, out, "--folds", "3", "--repeats", "2", "--seed", "1") == 0
    err = capsys.readouterr().err
    assert "3-fold cross-validation x 2 repeat(s)" in err and "multi score_a: r² " in err
    assert sorted(p.relative_to(out).as_posix() for p in out.glob("repeat-*/fold-*")) == [
        f"repeat-{r}/fold-{f}" for r in range(2) for f in range(3)]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cv"]["multi"]["score_a"]["n_folds"] == 6
    # --resume on a finished CV folder keeps every fold and rewrites the summary
    assert main(["train", "--resume", "--out", str(out), "--quiet"]) == 0
    assert "3-fold cross-validation" in capsys.readouterr().err


def test_cli_one_fold_stays_one_run_folder(files):
    tmp, lesions, csv = files
    out = tmp / "one"
    assert _train(lesions, csv, out, "--folds", "3", "--fold", "1", "--seed", "2") == 0
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["split"]["n_folds"], cfg["split"]["fold"]) == (3, 1)
    assert not (out / "summary.json").exists() and not list(out.glob("repeat-*"))


@pytest.mark.parametrize(("args", "match"), [
    (["--repeats", "2"], "--repeats needs --folds K"),
    (["--fold", "1"], "--fold needs --folds K"),
    (["--folds", "3", "--fold", "1", "--repeats", "2"], "--fold trains one fold of one split"),
    (["--folds", "30"], "too few subjects to split: 24 subjects for 30 folds"),
    (["--folds", "3", "--repeats", "0"], "argument --repeats: must be an integer >= 1"),
])
def test_cli_bad_folds(files, capsys, args, match):
    tmp, lesions, csv = files
    out = tmp / "bad"
    try:
        rc = _train(lesions, csv, out, *args)
    except SystemExit as exc:  # argparse's own range checks exit
        rc = exc.code
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("deeplsm: error:") and match in err and err.count("\n") == 1, err
    assert not out.exists()

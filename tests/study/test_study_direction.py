"""``scores.direction`` in a study: negated scores with ``lower_is_worse`` give the same maps,
p-values and localisation metrics as the scores themselves, for VLSM, SVR-LSM and ridge fitted
for real; the direction is recorded in metrics.json, summary.json and the report."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from deeplsm.exceptions import DeepLSMError
from deeplsm.report import METRIC_KEYS
from deeplsm.study import Study, demo_config, run_study

CLASSICAL = ("vlsm", "svr", "ridge")


def _classical_config():
    cfg = demo_config(quick=True)
    cfg["models"]["modes"] = []  # the CNN part is tested on the explain layer (tests/explain)
    cfg["classical"].update(methods=list(CLASSICAL), tail="one-sided", permutations=40,
                            svr_permutations=8, ridge_permutations=40)
    return cfg


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    """The quick demo's simulated scores (higher_is_worse), classical methods only."""
    out = tmp_path_factory.mktemp("direction") / "original"
    return out, run_study(_classical_config(), out, verbose=False)


def _negated_study(original_out, out, direction, tail="one-sided"):
    scores = pd.read_csv(original_out / "simulation" / "scores.csv", index_col=0)
    out.parent.mkdir(parents=True, exist_ok=True)
    (-scores).to_csv(out.parent / f"negated_{out.name}.csv")
    cfg = _classical_config()
    cfg["classical"]["tail"] = tail
    cfg["cohort"].update(source=str(original_out / "cohort" / "cohort.lesions.npz"), voxel_size=None)
    cfg["scores"].update(source=str(out.parent / f"negated_{out.name}.csv"), direction=direction,
                         truth=str(original_out / "simulation" / "rois.nii.gz"))
    return run_study(cfg, out, verbose=False)


def _img(path) -> np.ndarray:
    return np.asarray(nib.load(path).dataobj, dtype=np.float64)


def test_negated_scores_lower_is_worse_give_the_same_maps_and_metrics(original, tmp_path):
    """The issue's test for the classical methods: the real estimators refitted on ``-scores``
    with ``lower_is_worse``. VLSM and ridge are linear in the score (t and coefficients change
    sign exactly); SVR-LSM's epsilon-insensitive loss is symmetric, so its dual solution changes
    sign up to libsvm's stopping tolerance (1e-3 on the 0-100 score scale)."""
    orig_out, orig = original
    out = tmp_path / "negated"
    neg = _negated_study(orig_out, out, "lower_is_worse")
    scores = [f"score_{k}" for k in (1, 2, 3)]
    assert neg["directions"] == {s: "lower_is_worse" for s in scores}
    assert orig["directions"] == {s: "higher_is_worse" for s in scores}
    for method in CLASSICAL:
        tol = 1e-4 if method == "svr" else 1e-6
        summary = json.loads((out / "classical" / method / "summary.json").read_text())
        orig_summary = json.loads((orig_out / "classical" / method / "summary.json").read_text())
        for s in scores:
            a = _img(orig_out / "maps" / "classical" / f"{method}_{s}.nii.gz")
            b = _img(out / "maps" / "classical" / f"{method}_{s}.nii.gz")
            assert a.max() == pytest.approx(1.0)  # a map with a positive part
            np.testing.assert_allclose(b, a, atol=tol, err_msg=f"{method} {s}")
            # the statistic keeps the estimator's sign: negated
            stat_a = _img(orig_out / "classical" / method / f"{s}_stat.nii.gz")
            stat_b = _img(out / "classical" / method / f"{s}_stat.nii.gz")
            np.testing.assert_allclose(stat_b, -stat_a, atol=tol * np.abs(stat_a).max())
            # the one-sided test looks at the deficit's side: 'less' here, 'greater' there
            assert orig_summary["outputs"][s]["params"]["tail"] == "greater"
            assert summary["outputs"][s]["params"]["tail"] == "less"
            assert summary["outputs"][s]["direction"] == "lower_is_worse"
            assert orig_summary["outputs"][s]["direction"] == "higher_is_worse"
            for p in ("p", "p_fwe"):
                pa = _img(orig_out / "classical" / method / f"{s}_{p}.nii.gz")
                pb = _img(out / "classical" / method / f"{s}_{p}.nii.gz")
                assert p == "p_fwe" or pa.min() < 1  # a test was run
                if method == "svr":  # permutation p-values: near-ties may flip one count
                    assert np.mean(pa != pb) < 0.01, (method, s, p)
                else:
                    np.testing.assert_array_equal(pb, pa, err_msg=f"{method} {s} {p}")
            for k in METRIC_KEYS:
                assert neg["localization"][method][s][k] == pytest.approx(
                    orig["localization"][method][s][k], rel=1e-3 if method == "svr" else 1e-6,
                    abs=1e-6), (method, s, k)
    html = (out / "report.html").read_text()
    for s in scores:
        assert f"<li>{s}: lower is worse: maps are negated" in html
    assert "<li>score_1: higher is worse" in (orig_out / "report.html").read_text()


def test_without_the_direction_negated_scores_lose_the_roi(original, tmp_path):
    """The failure the direction fixes: negated scores read as higher_is_worse keep the wrong
    tail, and every map scores far below the original (the ROI is on the negative side)."""
    orig_out, orig = original
    neg = _negated_study(orig_out, tmp_path / "ignored", "higher_is_worse", tail="two-sided")
    for method in CLASSICAL:
        found = [s for s, m in orig["localization"][method].items() if m["pr_auc"] > 10 * m["prevalence"]]
        assert found, method  # the quick cohort localises score_1 at least
        for s in found:
            assert neg["localization"][method][s]["pr_auc"] < 0.5 * orig["localization"][method][s]["pr_auc"]


def test_two_sided_and_per_score_directions(original, tmp_path):
    """A table sets each score's direction (others keep the default); two_sided maps are |t| /
    |beta| normalised, and its one-sided tail stays two-sided."""
    orig_out, _ = original
    out = tmp_path / "mixed"
    scores = pd.read_csv(orig_out / "simulation" / "scores.csv", index_col=0)
    scores["score_2"] = -scores["score_2"]
    scores.to_csv(tmp_path / "mixed.csv")
    cfg = _classical_config()
    cfg["classical"]["methods"] = ["vlsm", "ridge"]
    cfg["cohort"].update(source=str(orig_out / "cohort" / "cohort.lesions.npz"), voxel_size=None)
    cfg["scores"].update(source=str(tmp_path / "mixed.csv"),
                         direction={"score_2": "lower_is_worse", "score_3": "two_sided"},
                         truth=str(orig_out / "simulation" / "rois.nii.gz"))
    metrics = run_study(cfg, out, verbose=False)
    assert metrics["directions"] == {"score_1": "higher_is_worse", "score_2": "lower_is_worse",
                                     "score_3": "two_sided"}
    for method in ("vlsm", "ridge"):
        summary = json.loads((out / "classical" / method / "summary.json").read_text())["outputs"]
        assert [summary[s]["params"]["tail"] for s in ("score_1", "score_2", "score_3")] == [
            "greater", "less", "two-sided"]
        for s, turn in (("score_1", lambda t: t), ("score_2", lambda t: -t), ("score_3", np.abs)):
            stat = turn(_img(out / "classical" / method / f"{s}_stat.nii.gz"))
            want = np.maximum(stat, 0) / np.maximum(stat, 0).max()
            np.testing.assert_allclose(_img(out / "maps" / "classical" / f"{method}_{s}.nii.gz"),
                                       want, atol=1e-6, err_msg=f"{method} {s}")


def test_unknown_score_in_direction_is_an_error_before_training(original, tmp_path):
    orig_out, _ = original
    cfg = _classical_config()
    cfg["models"]["modes"] = ["multi"]
    cfg["cohort"].update(source=str(orig_out / "cohort" / "cohort.lesions.npz"), voxel_size=None)
    cfg["scores"]["direction"] = {"naming": "lower_is_worse", "score_1": "two_sided", "fluency": "two_sided"}
    study = Study(cfg, tmp_path / "s", verbose=False)
    with pytest.raises(DeepLSMError, match=r"scores\.direction names unknown score\(s\) 'naming', "
                                           r"'fluency'; the scores are score_1, score_2, score_3"):
        study.run()
    assert study.ran == ["cohort", "simulate"]  # nothing trained


def test_default_direction_keeps_the_stage_keys(tmp_path):
    """Studies run before directions existed keep their finished stages: with the defaults the
    direction is in no stage key, and the classical tail only when it is one-sided."""
    cfg = _classical_config()
    cfg["classical"]["tail"] = "two-sided"
    base = Study(cfg, tmp_path / "a", verbose=False)
    base.run()
    keys = dict(base.keys)
    for change in ({"scores": {"direction": "higher_is_worse"}},
                   {"scores": {"direction": {"score_2": "higher_is_worse"}}}):
        c = _classical_config()
        c["classical"]["tail"] = "two-sided"
        c["scores"].update(change["scores"])
        again = Study(c, tmp_path / "a", verbose=False)
        again.run()
        assert again.keys == keys and again.ran == []
    c = _classical_config()
    c["classical"]["tail"] = "two-sided"
    c["scores"]["direction"] = "two_sided"
    turned = Study(c, tmp_path / "a", verbose=False)
    turned.run()
    assert turned.keys["simulate"] == keys["simulate"]  # the scores do not change
    assert all(turned.keys[m] != keys[m] for m in CLASSICAL)
    assert {"vlsm", "svr", "ridge", "evaluate", "clusters"} <= set(turned.ran)

"""``deeplsm demo --quick`` end to end; the metrics schema; caching; interrupt and resume."""

from __future__ import annotations

import json
import math
import re
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from deeplsm.cli import main
from deeplsm.exceptions import DeepLSMError
from deeplsm.report import METRIC_KEYS
from deeplsm.study import Study, demo_config, load_config, make_config, run_study

METHODS = {f"{m}_{x}" for m in ("multi", "single") for x in ("ig", "gradshap", "occlusion")} | {
    "vlsm", "svr"}


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    assert main(["demo", "--quick", "--out", str(out), "--quiet"]) == 0
    return out


def _finite(v) -> bool:
    return isinstance(v, int | float) and math.isfinite(v)


def test_metrics_schema_is_complete_and_finite(quick_demo):
    m = json.loads((quick_demo / "metrics.json").read_text())
    assert set(m) >= {"prediction", "localization", "timings_s", "config", "versions"}
    scores = ["score_1", "score_2", "score_3"]
    for mode in ("multi", "single"):
        for s in scores:
            entry = m["prediction"][mode][s]
            assert set(entry) == {"mse", "r2_pearson", "p_value", "r2"}
            assert all(_finite(v) for v in entry.values()), entry
    assert set(m["localization"]) == METHODS
    for method, per in m["localization"].items():
        for s in scores:
            assert set(per[s]) == set(METRIC_KEYS)
            assert all(_finite(v) for v in per[s].values()), (method, s, per[s])
    for stage in ("cohort", "simulate", "train_multi", "train_single", "explain_multi",
                  "explain_single", "vlsm", "svr", "evaluate", "report"):
        assert _finite(m["timings_s"][stage])
    assert "torch" in m["versions"] and m["config"]["cohort"]["n_subjects"] == 120


def _brain_mask_like(img) -> np.ndarray:
    """nilearn's MNI152 brain mask, nearest-resampled to the grid of ``img`` (as documented)."""
    from nilearn.datasets import load_mni152_brain_mask
    from nilearn.image import resample_to_img

    res = resample_to_img(load_mni152_brain_mask(resolution=1), img, interpolation="nearest",
                          force_resample=True, copy_header=True)
    return np.asarray(res.dataobj) > 0


def test_metrics_recomputed_from_the_written_files(quick_demo):
    """metrics.json against the written maps, ROI image and predictions, recomputed with
    sklearn/numpy directly (not with deeplsm.evaluate)."""
    from sklearn.metrics import average_precision_score

    m = json.loads((quick_demo / "metrics.json").read_text())
    rois_img = nib.load(quick_demo / "simulation" / "rois.nii.gz")
    labels = np.asarray(rois_img.dataobj)
    mask = _brain_mask_like(rois_img)
    checked = 0
    for method, path in (("vlsm", "maps/classical/vlsm_{}.nii.gz"),
                         ("multi_occlusion", "maps/multi/occlusion_{}.nii.gz")):
        for k in (1, 2, 3):
            score = f"score_{k}"
            values = np.asarray(nib.load(quick_demo / path.format(score)).dataobj, dtype=np.float64)
            y = labels[mask] == k
            ap = average_precision_score(y, values[mask])
            loc = m["localization"][method][score]
            assert loc["pr_auc"] == pytest.approx(ap, abs=1e-9), (method, score)
            assert loc["prevalence"] == pytest.approx(y.mean(), abs=1e-12)
            b, a = np.maximum(values[mask], 0), y.astype(float)
            if (a * b).sum() > 0:  # continuous Dice, Shamir et al.
                c = (a * b).sum() / (a * np.sign(b)).sum()
                assert loc["cdc"] == pytest.approx(2 * (a * b).sum() / (c * a.sum() + b.sum()), abs=1e-9)
            checked += 1
    assert checked == 6
    for mode in ("multi", "single"):
        preds = pd.read_csv(quick_demo / "train" / mode / "predictions.csv")
        test = preds[preds["split"] == "test"]
        assert len(test) == round(0.2 * 120)
        for k in (1, 2, 3):
            t, p = test[f"score_{k}_true"].to_numpy(), test[f"score_{k}_pred"].to_numpy()
            entry = m["prediction"][mode][f"score_{k}"]
            # the run computed them from float32 arrays; the CSV holds 8 digits
            assert entry["mse"] == pytest.approx(np.mean((t - p) ** 2), rel=1e-4)
            assert entry["r2_pearson"] == pytest.approx(np.corrcoef(t, p)[0, 1] ** 2, rel=1e-4)


def test_report_embeds_the_figures(quick_demo):
    html = (quick_demo / "report.html").read_text()
    alts = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', html)
    for fig in ("frequency map", "score distributions", "example subject", "learning curves multi",
                "predicted vs true", "group maps", "PR curves"):
        assert fig in alts
    for table in ("Table IV", "Table V", "Table VI", "Table VII"):
        assert table in html
    assert "best localised by" in html
    assert (quick_demo / "README.txt").exists()
    for mode in ("multi", "single"):
        assert (quick_demo / "maps" / mode / "occlusion_score_1.nii.gz").exists()
    assert (quick_demo / "classical" / "vlsm" / "score_1_stat.nii.gz").exists()


def test_rerun_skips_finished_stages(quick_demo):
    before = json.loads((quick_demo / "metrics.json").read_text())
    study = Study(demo_config(quick=True), quick_demo, verbose=False)
    after = study.run()
    assert study.ran == []
    assert set(study.skipped) == {"cohort", "simulate", "train_multi", "train_single",
                                  "explain_multi", "explain_single", "vlsm", "svr", "evaluate"}
    assert after["prediction"] == before["prediction"]
    assert after["localization"] == before["localization"]


def test_changed_setting_redoes_only_downstream(quick_demo, tmp_path):
    cfg = demo_config(quick=True)
    cfg["classical"]["permutations"] = 20
    study = Study(cfg, quick_demo, verbose=False)
    study.run()
    assert set(study.ran) == {"vlsm", "svr", "evaluate"}


def test_interrupted_run_resumes(tmp_path, monkeypatch):
    cfg = demo_config(quick=True)
    cfg["models"]["modes"] = ["multi"]
    cfg["explain"]["methods"] = ["occlusion"]
    cfg["classical"]["methods"] = ["vlsm"]
    out = tmp_path / "run"
    real = Study._explain

    def boom(self, mode):
        raise KeyboardInterrupt

    monkeypatch.setattr(Study, "_explain", boom)
    with pytest.raises(KeyboardInterrupt):
        run_study(cfg, out, verbose=False)
    assert (out / "stages" / "train_multi.json").exists()
    assert not (out / "maps" / "multi").exists()  # nothing half-written
    monkeypatch.setattr(Study, "_explain", real)
    study = Study(cfg, out, verbose=False)
    metrics = study.run()
    assert {"cohort", "simulate", "train_multi"} <= set(study.skipped)
    assert "explain_multi" in study.ran
    assert "multi_occlusion" in metrics["localization"]


def test_config_validation(tmp_path, capsys):
    with pytest.raises(DeepLSMError, match=r"unknown setting models.epochs"):
        make_config({"models": {"epochs": 3}})
    with pytest.raises(DeepLSMError, match=r"unknown section \[modles\]"):
        make_config({"modles": {}})
    bad = tmp_path / "s.toml"
    bad.write_text("[cohort\nsource=1")
    assert main(["study", "--config", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "not valid TOML" in capsys.readouterr().err
    assert main(["study", "--config", str(tmp_path / "missing.toml"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    good = tmp_path / "g.toml"
    good.write_text('[cohort]\nsource = "lesions"\n[models]\nmodes = ["multi"]\n')
    cfg = load_config(good)
    assert cfg["cohort"]["source"] == str((tmp_path / "lesions").resolve())
    assert cfg["models"]["preset"] == "fast"


def test_example_config_loads():
    from pathlib import Path

    cfg = load_config(Path(__file__).resolve().parents[2] / "examples" / "study.toml")
    assert cfg["models"]["modes"] == ["multi", "single"] and cfg["explain"]["window"] == 4


def test_user_lesions_scores_and_truth(quick_demo, tmp_path):
    """The path a user takes: their own lesions (here a cache), a score CSV and a ROI image."""
    cfg = demo_config(quick=True)
    cfg["cohort"].update(source=str(quick_demo / "cohort" / "cohort.lesions.npz"), voxel_size=None)
    cfg["scores"].update(source=str(quick_demo / "simulation" / "scores.csv"),
                         columns=["score_2", "score_3"],
                         truth=str(quick_demo / "simulation" / "rois.nii.gz"))
    cfg["models"]["modes"] = ["multi"]
    cfg["explain"]["methods"] = ["occlusion"]
    cfg["classical"]["methods"] = ["vlsm"]
    metrics = run_study(cfg, tmp_path / "user", verbose=False)
    assert set(metrics["prediction"]["multi"]) == {"score_2", "score_3"}
    # score_2 is matched to ROI label 2 by its trailing number, and VLSM on the same subjects
    # gives the same map as in the simulated study.
    demo = json.loads((quick_demo / "metrics.json").read_text())["localization"]["vlsm"]["score_2"]
    loc = metrics["localization"]["vlsm"]["score_2"]
    assert loc["prevalence"] == pytest.approx(demo["prevalence"])
    assert loc["pr_auc"] == pytest.approx(demo["pr_auc"])
    assert (tmp_path / "user" / "report.html").exists()


def test_rerun_reports_only_this_runs_numbers(tmp_path):
    """A rerun in the same folder without a method, or without ground truth, must not report
    the earlier run's localisation numbers (they came from a stale evaluation.json)."""
    cfg = demo_config(quick=True)
    cfg["models"]["modes"] = []  # classical methods only: fast
    out = tmp_path / "study"
    first = run_study(cfg, out, verbose=False)
    assert set(first["localization"]) == {"vlsm", "svr"}
    assert json.loads((out / "evaluation.json").read_text())["key"]

    cfg["classical"]["methods"] = ["vlsm"]  # svr's maps stay on disk, but not in this run
    second = run_study(cfg, out, verbose=False)
    assert set(second["localization"]) == {"vlsm"}
    assert second["localization"]["vlsm"] == first["localization"]["vlsm"]
    assert "svr" not in json.loads((out / "evaluation.json").read_text())["results"]
    assert "<td>svr</td>" not in (out / "report.html").read_text()

    scores = tmp_path / "scores.csv"  # the same scores, but this time without a ROI image
    shutil.copy(out / "simulation" / "scores.csv", scores)
    cfg["scores"]["source"] = str(scores)
    third = run_study(cfg, out, verbose=False)
    assert third["localization"] == {}
    assert json.loads((out / "metrics.json").read_text())["localization"] == {}
    assert not (out / "evaluation.json").exists()
    assert "Localisation" not in (out / "report.html").read_text()


def test_build_metrics_matches_stage_keys(tmp_path):
    """Numbers on disk count only when the stage that wrote them carries this run's key."""
    from deeplsm.report import build_metrics

    cfg = make_config({"models": {"modes": ["multi"]}, "explain": {"methods": ["ig"]},
                       "classical": {"methods": ["vlsm"]}})
    out = tmp_path / "s"
    (out / "stages").mkdir(parents=True)
    (out / "train" / "multi").mkdir(parents=True)
    (out / "train" / "multi" / "metrics.json").write_text(json.dumps(
        {"test": {"score_1": {"mse": 0.5, "r2_pearson": 0.25, "pearson_p": 0.01, "r2_score": 0.2}}}))
    (out / "stages" / "train_multi.json").write_text(json.dumps({"stage": "train_multi", "key": "t1"}))
    loc = {"pr_auc": 0.3, "cdc": 0.2}
    (out / "evaluation.json").write_text(json.dumps(
        {"key": "e1", "results": {"multi_ig": {"score_1": loc}, "svr": {"score_1": loc}}}))
    study = Study(cfg, out, verbose=False)
    study.keys = {"train_multi": "t1", "evaluate": "e1"}
    m = build_metrics(study)
    assert m["prediction"]["multi"]["score_1"] == {"mse": 0.5, "r2_pearson": 0.25, "p_value": 0.01,
                                                   "r2": 0.2}
    assert set(m["localization"]) == {"multi_ig"}  # svr is not in this configuration
    assert m["localization"]["multi_ig"]["score_1"]["pr_auc"] == 0.3
    study.keys = {"train_multi": "t2", "evaluate": "e2"}  # another run's stages
    assert build_metrics(study) == {"prediction": {}, "localization": {}}
    study.keys = {"train_multi": "t1"}  # this run has no evaluate stage (no ground truth)
    assert build_metrics(study)["localization"] == {}

"""``deeplsm demo --quick`` end to end; the metrics schema; caching; interrupt and resume."""

from __future__ import annotations

import json
import math
import re

import pytest

from deeplsm.cli import main
from deeplsm.exceptions import DeepLSMError
from deeplsm.report import METRIC_KEYS
from deeplsm.study import Study, demo_config, load_config, make_config, run_study

METHODS = {f"{m}_{x}" for m in ("multi", "single") for x in ("ig", "gradshap", "occlusion")} | {
    "vlsm", "svr", "ridge"}


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
    assert list(m["prediction"]) == ["multi", "single", "ridge", "svr"]
    for mode in ("multi", "single", "ridge", "svr"):
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
                  "explain_single", "vlsm", "svr", "ridge", "evaluate", "report"):
        assert _finite(m["timings_s"][stage])
    assert "torch" in m["versions"] and m["config"]["cohort"]["n_subjects"] == 120


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
                                  "explain_multi", "explain_single", "vlsm", "svr", "ridge",
                                  "evaluate"}
    assert after["prediction"] == before["prediction"]
    assert after["localization"] == before["localization"]


def test_changed_setting_redoes_only_downstream(quick_demo, tmp_path):
    cfg = demo_config(quick=True)
    cfg["classical"]["permutations"] = 20
    study = Study(cfg, quick_demo, verbose=False)
    study.run()
    assert set(study.ran) == {"vlsm", "svr", "ridge", "evaluate"}


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

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
                  "explain_single", "vlsm", "svr", "evaluate", "clusters", "report"):
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


def test_every_map_has_a_cluster_table_shown_in_the_report(quick_demo):
    import pandas as pd

    maps = sorted((quick_demo / "maps").glob("*/*.nii.gz"))
    assert len(maps) == 3 * 8  # {multi,single} x {ig,gradshap,occlusion} + {vlsm,svr}, 3 scores
    html = (quick_demo / "report.html").read_text()
    section = html[html.index("<h2>Clusters and peaks</h2>"):html.index("<h2>Timings</h2>")]
    for m in maps:
        t = pd.read_csv(str(m).replace(".nii.gz", "_clusters.tsv"), sep="\t")
        assert len(t) > 0, m  # every map has a peak above half its maximum
        assert t["peak_value"].iloc[0] == pytest.approx(1.0)  # normalised maps peak at 1
        top = t[t["peak"] == 0].iloc[0]
        xyz = ", ".join(f"{top[c]:.0f}" for c in ("x_mm", "y_mm", "z_mm"))
        assert xyz in section
    for name in ("score_1", "score_2", "score_3"):
        assert f"<h3>{name}</h3><table>" in section
    for method in METHODS:
        assert f"<td>{method}</td>" in section
    assert (quick_demo / "classical" / "vlsm" / "score_1_stat_clusters.tsv").exists()
    assert (quick_demo / "classical" / "vlsm" / "score_1_z_clusters.tsv").exists()


def test_rerun_skips_finished_stages(quick_demo):
    before = json.loads((quick_demo / "metrics.json").read_text())
    study = Study(demo_config(quick=True), quick_demo, verbose=False)
    after = study.run()
    assert study.ran == []
    assert set(study.skipped) == {"cohort", "simulate", "train_multi", "train_single",
                                  "explain_multi", "explain_single", "vlsm", "svr", "evaluate",
                                  "clusters"}
    assert after["prediction"] == before["prediction"]
    assert after["localization"] == before["localization"]


def test_changed_setting_redoes_only_downstream(quick_demo, tmp_path):
    cfg = demo_config(quick=True)
    cfg["classical"]["permutations"] = 20
    study = Study(cfg, quick_demo, verbose=False)
    study.run()
    assert set(study.ran) == {"vlsm", "svr", "evaluate", "clusters"}


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
    with pytest.raises(DeepLSMError, match=r"report\.atlas and report\.atlas_labels go together"):
        make_config({"report": {"atlas": "atlas.nii.gz"}})
    with pytest.raises(DeepLSMError, match=r"classical\.svr_volume_correction: volume_correction must"):
        make_config({"classical": {"svr_volume_correction": "sideways"}})
    assert make_config({"classical": {"volume_correction": "Regress on Both"}})
    good.write_text('[report]\natlas = "a/atlas.nii.gz"\natlas_labels = "a/labels.tsv"\n')
    assert load_config(good)["report"]["atlas"] == str((tmp_path / "a" / "atlas.nii.gz").resolve())
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
    # an atlas added afterwards: only the cluster tables are redone, and they carry its labels
    import nibabel as nib
    import numpy as np
    import pandas as pd

    from deeplsm.cohort import LesionCohort

    grid = LesionCohort.load(quick_demo / "cohort" / "cohort.lesions.npz")
    x = (grid.affine[:3, :3] @ np.indices(grid.shape).reshape(3, -1))[0] + grid.affine[0, 3]
    nib.Nifti1Image(np.where(x < 0, 1, 2).reshape(grid.shape).astype(np.int16),
                    grid.affine).to_filename(tmp_path / "atlas.nii.gz")
    (tmp_path / "labels.tsv").write_text("index\tname\n1\tleft <hemisphere>\n2\tright & rest\n")
    cfg["report"].update(atlas=str(tmp_path / "atlas.nii.gz"), atlas_labels=str(tmp_path / "labels.tsv"))
    study = Study(cfg, tmp_path / "user", verbose=False)
    study.run()
    assert study.ran == ["clusters"]
    for f in (tmp_path / "user").glob("*/*/*_clusters.tsv"):
        t = pd.read_csv(f, sep="\t")
        assert "label" in t.columns, f
        # every peak is in one hemisphere or the other, by the sign of its x
        want = np.where(t["x_mm"] < 0, "left <hemisphere>", "right & rest")
        assert list(t["label"]) == list(want), f
    html = (tmp_path / "user" / "report.html").read_text()
    assert "&lt;hemisphere&gt;" in html or "right &amp; rest" in html
    assert "<hemisphere>" not in html and "right & rest" not in html

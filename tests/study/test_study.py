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
                  "explain_single", "vlsm", "svr", "ridge", "evaluate", "clusters", "report"):
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


def test_every_map_has_a_cluster_table_shown_in_the_report(quick_demo):
    import pandas as pd

    maps = sorted((quick_demo / "maps").glob("*/*.nii.gz"))
    assert len(maps) == 3 * 9  # {multi,single} x {ig,gradshap,occlusion} + {vlsm,svr,ridge}, 3 scores
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
                                  "explain_multi", "explain_single", "vlsm", "svr", "ridge",
                                  "evaluate", "clusters"}
    assert after["prediction"] == before["prediction"]
    assert after["localization"] == before["localization"]


def test_changed_setting_redoes_only_downstream(quick_demo, tmp_path):
    cfg = demo_config(quick=True)
    cfg["classical"]["permutations"] = 20
    study = Study(cfg, quick_demo, verbose=False)
    study.run()
    assert set(study.ran) == {"vlsm", "svr", "ridge", "evaluate", "clusters"}


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
    with pytest.raises(DeepLSMError, match=r"classical\.svr_volume_correction = 'sideways': must be one of"):
        make_config({"classical": {"svr_volume_correction": "sideways"}})
    assert make_config({"classical": {"volume_correction": "Regress on Both", "vlsm_test": "regression"}})
    good.write_text('[report]\natlas = "a/atlas.nii.gz"\natlas_labels = "a/labels.tsv"\n')
    assert load_config(good)["report"]["atlas"] == str((tmp_path / "a" / "atlas.nii.gz").resolve())
    assert cfg["models"]["preset"] == "fast"


def test_ridge_is_a_classical_method_by_default():
    assert make_config()["classical"]["methods"] == ["vlsm", "svr", "ridge"]
    assert demo_config()["classical"]["methods"] == ["vlsm", "svr", "ridge"]
    assert make_config({"classical": {"methods": ["ridge"]}})["classical"]["methods"] == ["ridge"]
    with pytest.raises(DeepLSMError,
                       match=r"classical.methods\[0\] = 'lasso': must be one of 'vlsm', 'svr', 'ridge'"):
        make_config({"classical": {"methods": ["lasso"]}})


def test_example_config_loads():
    from pathlib import Path

    cfg = load_config(Path(__file__).resolve().parents[2] / "examples" / "study.toml")
    assert cfg["models"]["modes"] == ["multi", "single"] and cfg["explain"]["window"] == 4


def test_paper_values_beside_the_papers_scores_only(quick_demo):
    """The demo's scores are the paper's (linear, score_1..3, ROI k for score k): its report shows the
    paper's values by score name; a score table with the same names does not (below)."""
    m = json.loads((quick_demo / "metrics.json").read_text())
    assert m["truth_labels"] == {"score_1": [1], "score_2": [2], "score_3": [3]}
    html = (quick_demo / "report.html").read_text(encoding="utf-8")
    assert html.count("paper (score_1 / score_2 / score_3)") == 3  # Table IV, VI and VII
    assert "paper r² (score_1 / score_2 / score_3)" in html


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
    assert metrics["truth_labels"] == {"score_2": [2], "score_3": [3]}
    assert "paper (" not in (tmp_path / "user" / "report.html").read_text(encoding="utf-8")
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


def _demo_inputs(out):
    import pandas as pd

    from deeplsm.cohort import LesionCohort

    cohort = LesionCohort.load(out / "cohort" / "cohort.lesions.npz")
    split = pd.read_csv(out / "train" / "multi" / "split.csv").set_index("subject")["split"]
    scores = pd.read_csv(out / "simulation" / "scores.csv", index_col=0)
    return cohort, split.loc[cohort.subject_ids], scores.loc[cohort.subject_ids]


def _masked(out, method, cohort):
    import nibabel as nib
    import numpy as np

    mask = np.asarray(nib.load(out / "classical" / method / "mask.nii.gz").dataobj).astype(bool).ravel()
    return cohort.data.reshape(cohort.n_subjects, -1)[:, mask].astype(float)


def test_ridge_and_svr_predict_the_cnn_test_subjects(quick_demo):
    """Fitted on the CNN's train + validation subjects (its own split.csv), scored on its test
    subjects with sklearn/scipy, and the same predictions as sklearn's Ridge and SVR directly."""
    import numpy as np
    import pandas as pd
    from scipy.stats import pearsonr
    from sklearn.linear_model import Ridge
    from sklearn.metrics import mean_squared_error, r2_score
    from sklearn.svm import SVR

    cohort, split, scores = _demo_inputs(quick_demo)
    m = json.loads((quick_demo / "metrics.json").read_text())["prediction"]
    tv = (split != "test").to_numpy()
    tables = {}
    for method in ("ridge", "svr"):
        table = pd.read_csv(quick_demo / "classical" / method / "predictions.csv")
        assert list(table["subject"]) == cohort.subject_ids
        assert list(table["split"]) == list(split)
        test = table[table["split"] == "test"]
        for s in scores.columns:
            t, p = test[f"{s}_true"].to_numpy(), test[f"{s}_pred"].to_numpy()
            np.testing.assert_allclose(t, scores.loc[test["subject"], s])
            entry = m[method][s]
            assert entry["r2"] == pytest.approx(r2_score(t, p))
            assert entry["r2_pearson"] == pytest.approx(pearsonr(t, p)[0] ** 2)
            assert entry["p_value"] == pytest.approx(pearsonr(t, p)[1])
            assert entry["mse"] == pytest.approx(mean_squared_error(t, p))
        tables[method] = table
    summary = json.loads((quick_demo / "classical" / "ridge" / "summary.json").read_text())["outputs"]
    assert {v["n_subjects"] for v in summary.values()} == {int(tv.sum())}
    X = _masked(quick_demo, "ridge", cohort)
    Xs = _masked(quick_demo, "svr", cohort)
    norm = np.linalg.norm(Xs, axis=1, keepdims=True)
    Xs = np.divide(Xs, norm, out=np.zeros_like(Xs), where=norm > 0)  # DTLVC
    for s in scores.columns:
        y = scores[s].to_numpy()
        ref = Ridge(alpha=summary[s]["penalty"], solver="cholesky").fit(X[tv], y[tv]).predict(X)
        np.testing.assert_allclose(tables["ridge"][f"{s}_pred"], ref, atol=1e-6)
        k = 100 / np.abs(y[tv]).max()
        svr = SVR(C=30, gamma=5, epsilon=0.1).fit(Xs[tv], y[tv] * k).predict(Xs) / k
        np.testing.assert_allclose(tables["svr"][f"{s}_pred"], svr, atol=1e-3 * np.ptp(y))


def test_summary_and_report_put_every_predictor_side_by_side(quick_demo, capsys):
    from deeplsm.cli._study import print_summary

    m = json.loads((quick_demo / "metrics.json").read_text())
    print_summary(m, quick_demo)
    lines = capsys.readouterr().out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("prediction on the test split"))
    assert lines[head + 1].split() == ["score", "method", "MSE", "r²", "R²"]
    rows = [line.split() for line in lines[head + 2:head + 14]]
    assert [r[0] for r in rows[::4]] == ["score_1", "score_2", "score_3"]
    assert [r[-4] for r in rows] == ["multi", "single", "ridge", "svr"] * 3
    for k, s in enumerate(["score_1", "score_2", "score_3"]):
        block = rows[4 * k:4 * k + 4]
        r2 = {r[-4]: m["prediction"][r[-4]][s]["r2"] for r in block}
        best = max(r2, key=r2.get)
        assert [r[-1].startswith("*") for r in block] == [r[-4] == best for r in block]
        assert {float(r[-1].lstrip("*")) for r in block} == {round(v, 3) for v in r2.values()}
    html = (quick_demo / "report.html").read_text()
    table_v = html[html.index("(Table V)"):html.index("</table>", html.index("(Table V)"))]
    assert "<th>score_1 r² (p)</th><th>score_1 R²</th>" in table_v
    for method in ("multi", "single", "ridge", "svr"):
        assert f"<tr><td>{method}</td>" in table_v
    assert table_v.count('class="best"') == 6  # one best r² and one best R² per score
    assert html.count("best predicted by") == 3


def test_no_held_out_prediction_when_classical_methods_see_every_subject(quick_demo, tmp_path):
    import shutil

    out = tmp_path / "all"
    shutil.copytree(quick_demo, out)
    cfg = demo_config(quick=True)
    cfg["classical"]["subjects"] = "all"
    metrics = Study(cfg, out, verbose=False).run()
    assert set(metrics["prediction"]) == {"multi", "single"}
    assert "ridge" in metrics["localization"]
    assert not (out / "classical" / "ridge" / "predictions.csv").exists()


def test_svr_score_volume_correction_predicts_on_the_score_scale(quick_demo, tmp_path):
    """SVR-LSM predicts the volume-corrected score; the study adds the volume trend back."""
    import shutil

    import numpy as np
    import pandas as pd
    from sklearn.svm import SVR

    out = tmp_path / "svr"
    shutil.copytree(quick_demo, out)
    cfg = demo_config(quick=True)
    cfg["classical"].update(methods=["svr"], svr_volume_correction="score")
    Study(cfg, out, verbose=False).run()
    cohort, split, scores = _demo_inputs(out)
    tv = (split != "test").to_numpy()
    X = _masked(out, "svr", cohort)
    vol = cohort.lesion_volumes_ml()
    table = pd.read_csv(out / "classical" / "svr" / "predictions.csv")
    for s in scores.columns:
        y = scores[s].to_numpy()
        b = np.polyfit(vol[tv], y[tv], 1)
        resid = y[tv] - np.polyval(b, vol[tv]) + y[tv].mean()
        k = 100 / np.abs(resid).max()
        pred = SVR(C=30, gamma=5, epsilon=0.1).fit(X[tv], resid * k).predict(X) / k
        expected = pred + np.polyval(b, vol) - y[tv].mean()
        np.testing.assert_allclose(table[f"{s}_pred"], expected, atol=1e-3 * np.ptp(y))


def test_rerun_reports_only_this_runs_numbers(tmp_path):
    """A rerun in the same folder without a method, or without ground truth, must not report
    the earlier run's localisation numbers (they came from a stale evaluation.json)."""
    cfg = demo_config(quick=True)
    cfg["models"]["modes"] = []  # classical methods only: fast
    cfg["classical"]["methods"] = ["vlsm", "svr"]
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
        {"key": "e1", "results": {"multi_ig": {"score_1": loc}, "svr": {"score_1": loc}},
         "truth_labels": {"score_1": [1, 2]}}))
    study = Study(cfg, out, verbose=False)
    study.keys = {"train_multi": "t1", "evaluate": "e1"}
    m = build_metrics(study)
    assert m["prediction"]["multi"]["score_1"] == {"mse": 0.5, "r2_pearson": 0.25, "p_value": 0.01,
                                                   "r2": 0.2}
    assert set(m["localization"]) == {"multi_ig"}  # svr is not in this configuration
    assert m["localization"]["multi_ig"]["score_1"]["pr_auc"] == 0.3
    assert m["truth_labels"] == {"score_1": [1, 2]}
    study.keys = {"train_multi": "t2", "evaluate": "e2"}  # another run's stages
    assert build_metrics(study) == {"prediction": {}, "localization": {}, "truth_labels": None}
    study.keys = {"train_multi": "t1"}  # this run has no evaluate stage (no ground truth)
    assert build_metrics(study)["localization"] == {}

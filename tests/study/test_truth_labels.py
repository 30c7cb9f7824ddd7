"""A score table with a ROI image: each score's truth is matched by NAME (``scores.truth_labels``,
the trailing number of its name), never by the position of its column, and bad mappings are
one-line errors before any training."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from deeplsm.cli import main
from deeplsm.cohort import LesionCohort
from deeplsm.evaluate import evaluate_map
from deeplsm.exceptions import DeepLSMError
from deeplsm.study import Study, make_config, run_study
from deeplsm.study._truth import resolve_truth_labels

SHAPE = (14, 17, 14)
AFFINE = np.array([[8.0, 0, 0, -56], [0, 8.0, 0, -80], [0, 0, 8.0, -48], [0, 0, 0, 1]])


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """60 subjects with random boxes on an 8 mm grid over the MNI brain, a 3-label ROI image and
    scores named naming (label 2) and fluency (labels 1 or 3), plus a third, memory (label 1)."""
    tmp = tmp_path_factory.mktemp("truth_inputs")
    rng = np.random.default_rng(0)
    data = np.zeros((60, *SHAPE), np.uint8)
    for i in range(60):
        c = rng.integers([4, 4, 4], [10, 13, 10])
        data[i, c[0] - 2:c[0] + 2, c[1] - 3:c[1] + 2, c[2] - 2:c[2] + 3] = 1
    ids = [f"s{i:02d}" for i in range(60)]
    LesionCohort(ids, data, AFFINE).save(tmp / "c.lesions.npz")
    labels = np.zeros(SHAPE, np.int16)
    labels[5:7, 6:8, 6:8] = 1
    labels[7:9, 9:11, 5:7] = 2
    labels[9:11, 6:8, 6:8] = 3
    nib.save(nib.Nifti1Image(labels, AFFINE), tmp / "rois.nii.gz")
    frac = {k: data[:, labels == k].mean(1) for k in (1, 2, 3)}
    pd.DataFrame({"subject": ids, "naming": frac[2], "fluency": np.maximum(frac[1], frac[3]),
                  "memory": frac[1]}).to_csv(tmp / "scores.csv", index=False)
    return tmp


def _config(inputs, **scores) -> dict:
    return make_config({
        "cohort": {"source": str(inputs / "c.lesions.npz"), "voxel_size": None},
        "scores": {"source": str(inputs / "scores.csv"), "truth": str(inputs / "rois.nii.gz"),
                   "columns": ["naming", "fluency"], **scores},
        "models": {"modes": []},
        "classical": {"methods": ["vlsm"], "permutations": 0, "min_subjects": 3, "subjects": "all"},
    })


@pytest.fixture(scope="module")
def named_study(inputs, tmp_path_factory):
    cfg = _config(inputs, truth_labels={"naming": 2, "fluency": [1, 3]})
    out = tmp_path_factory.mktemp("named") / "study"
    metrics = run_study(cfg, out, verbose=False)
    return cfg, out, metrics


def test_truth_labels_match_scores_by_name(named_study, inputs):
    _, out, metrics = named_study
    ev = json.loads((out / "evaluation.json").read_text())
    assert ev["truth_labels"] == metrics["truth_labels"] == {"naming": [2], "fluency": [1, 3]}
    lab = np.asarray(nib.load(inputs / "rois.nii.gz").dataobj)
    for name, ks in (("naming", [2]), ("fluency", [1, 3])):
        roi = nib.Nifti1Image(np.isin(lab, ks).astype(np.uint8), AFFINE)
        ref = evaluate_map(out / "maps" / "classical" / f"vlsm_{name}.nii.gz", roi)
        got = ev["results"]["vlsm"][name]
        assert got["mask"]["roi_voxels"] == ref["mask"]["roi_voxels"] == 8 * len(ks)
        for key in ("pr_auc", "prevalence", "cdc", "peak_distance_mm", "com_distance_mm"):
            assert got[key] == pytest.approx(ref[key]), (name, key)
            assert metrics["localization"]["vlsm"][name][key] == pytest.approx(ref[key])
    assert ev["results"]["vlsm"]["fluency"]["truth_components"] == 2
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "naming = label 2; fluency = labels 1+3" in html
    assert "paper (" not in html  # not the paper's scores: no paper column


def test_a_new_mapping_redoes_only_the_evaluation(named_study, inputs):
    _, out, _ = named_study
    cfg = _config(inputs, truth_labels={"naming": 2, "fluency": 1})
    study = Study(cfg, out, verbose=False)
    metrics = study.run()
    assert study.ran == ["evaluate"]
    assert metrics["truth_labels"] == {"naming": [2], "fluency": [1]}
    lab = np.asarray(nib.load(inputs / "rois.nii.gz").dataobj)
    ref = evaluate_map(out / "maps" / "classical" / "vlsm_fluency.nii.gz",
                       nib.Nifti1Image((lab == 1).astype(np.uint8), AFFINE))
    assert metrics["localization"]["vlsm"]["fluency"]["pr_auc"] == pytest.approx(ref["pr_auc"])


def test_scores_left_out_of_the_mapping_are_not_scored(inputs, tmp_path):
    metrics = run_study(_config(inputs, truth_labels={"fluency": [1, 3]}), tmp_path / "s", verbose=False)
    assert metrics["truth_labels"] == {"fluency": [1, 3]}
    assert set(metrics["localization"]["vlsm"]) == {"fluency"}


def _door_error(inputs, tmp_path, match: str, **scores) -> None:
    out = tmp_path / "study"
    with pytest.raises(DeepLSMError, match=match):
        run_study(_config(inputs, **scores), out, verbose=False)
    assert not (out / "cohort").exists() and not (out / "stages").exists()  # nothing ran


def test_without_a_mapping_names_without_numbers_are_an_error_at_the_door(inputs, tmp_path):
    # three scores, three labels: still never matched by column position
    _door_error(inputs, tmp_path, r"cannot tell which labels .* 'naming', 'fluency', 'memory' do not "
                r"end in a label number .*a column's position is never used.*set scores\.truth_labels",
                columns=["naming", "fluency", "memory"])


def test_unknown_names_and_missing_labels_are_errors_at_the_door(inputs, tmp_path):
    _door_error(inputs, tmp_path, r"scores\.truth_labels names 'memory', which is not a score; the "
                r"scores are naming, fluency", truth_labels={"naming": 2, "memory": 1})
    _door_error(inputs, tmp_path, r"scores\.truth_labels\.fluency = 1\+7: scores\.truth \(rois\.nii\.gz\) "
                r"has no label 7 \(it has labels 1, 2, 3\)", truth_labels={"naming": 2, "fluency": [1, 7]})


def test_truth_labels_need_a_score_table_with_a_truth_image(inputs, tmp_path):
    with pytest.raises(DeepLSMError, match=r"scores\.truth_labels needs a score table"):
        run_study(make_config({"scores": {"truth_labels": {"score_1": 1}}, "models": {"modes": []}}),
                  tmp_path / "sim", verbose=False)
    _door_error(inputs, tmp_path, r"scores\.truth_labels needs a score table", truth=None,
                truth_labels={"naming": 2})


def test_a_label_lost_on_the_analysis_grid_is_an_error_before_the_maps(inputs, tmp_path):
    """A 4 mm truth whose label 3 is one voxel that no 8 mm voxel centre falls in."""
    fine = np.zeros((28, 34, 28), np.int16)
    fine[10:14, 12:16, 12:16] = 1
    fine[14:18, 18:22, 10:14] = 2
    fine[19, 13, 13] = 3  # odd indices: between the 8 mm voxel centres
    aff = AFFINE.copy()
    aff[:3, :3] /= 2
    nib.save(nib.Nifti1Image(fine, aff), tmp_path / "fine.nii.gz")
    out = tmp_path / "study"
    cfg = _config(inputs, truth=str(tmp_path / "fine.nii.gz"), truth_labels={"naming": 2, "fluency": [1, 3]})
    with pytest.raises(DeepLSMError, match=r"scores\.truth_labels\.fluency = 1\+3: the truth image on the "
                                           r"analysis grid has no label 3 \(it has labels 1, 2\)"):
        run_study(cfg, out, verbose=False)
    assert (out / "simulation" / "rois.nii.gz").exists() and not (out / "classical").exists()


def test_cli_reads_the_toml_mapping_and_reports_errors_in_one_line(inputs, tmp_path, capsys):
    toml = tmp_path / "study.toml"
    body = (f'[cohort]\nsource = "{inputs / "c.lesions.npz"}"\n'
            f'[scores]\nsource = "{inputs / "scores.csv"}"\ntruth = "{inputs / "rois.nii.gz"}"\n'
            'columns = ["naming", "fluency", "memory"]\n{mapping}'
            '[models]\nmodes = []\n[classical]\nmethods = ["vlsm"]\npermutations = 0\n')
    toml.write_text(body.replace("{mapping}", ""))
    assert main(["study", "--config", str(toml), "--out", str(tmp_path / "a"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("deeplsm: error: cannot tell which labels")
    from deeplsm.study import load_config

    mapping = "truth_labels = { naming = 2, fluency = [1, 3], memory = 1 }\n"
    toml.write_text(body.replace("{mapping}", mapping))
    assert load_config(toml)["scores"]["truth_labels"] == {"naming": 2, "fluency": [1, 3], "memory": 1}


# --- the rules, without a study ------------------------------------------------------------
def test_rules_in_order():
    assert resolve_truth_labels(["naming", "fluency"], [1, 2, 3], given={"fluency": [3, 1], "naming": 2},
                                simulated={"naming": [1]}) == ({"naming": [2], "fluency": [3, 1]},
                                                               "scores.truth_labels")
    assert resolve_truth_labels(["score_1", "score_2"], [1, 2, 3, 4],
                                simulated={"score_1": [1, 2], "score_2": [3, 4]}) == (
        {"score_1": [1, 2], "score_2": [3, 4]}, "simulation")
    assert resolve_truth_labels(["bnt3", "score_1"], [1, 2, 3]) == ({"bnt3": [3], "score_1": [1]},
                                                                    "trailing number")
    assert resolve_truth_labels(["naming"], [4]) == ({"naming": [4]}, "single ROI")


@pytest.mark.parametrize(("scores", "labels", "match"), [
    (["naming", "fluency"], [1, 2], "position is never used"),
    (["naming", "score_2"], [1, 2], r"'naming' does not end in a label number \(it has labels 1, 2\)"),
    (["naming", "fluency"], [1], "set scores.truth_labels"),
    (["score_7"], [1, 2], r"score 'score_7' ends in 7, but the truth image has no label 7"),
])
def test_ambiguous_matches_ask_for_truth_labels(scores, labels, match):
    with pytest.raises(DeepLSMError, match=match):
        resolve_truth_labels(scores, labels)

"""The study scores each map against its score's ground truth: the union of the labels the
simulation records for it (``truth_labels``), falling back to label k for ``..._score_k``."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from deeplsm.cohort import LesionCohort
from deeplsm.evaluate import evaluate_map
from deeplsm.study import Study, make_config


@pytest.fixture(scope="module")
def or_study(tmp_path_factory):
    """60 subjects with random boxes on an 8 mm grid over the MNI brain; VLSM only."""
    tmp = tmp_path_factory.mktemp("or")
    rng = np.random.default_rng(0)
    data = np.zeros((60, 14, 17, 14), np.uint8)
    for i in range(60):
        c = rng.integers([4, 4, 4], [10, 13, 10])
        data[i, c[0] - 2:c[0] + 2, c[1] - 3:c[1] + 2, c[2] - 2:c[2] + 3] = 1
    aff = np.diag([8.0, 8.0, 8.0, 1.0])
    aff[:3, 3] = [-56, -80, -48]
    cache = LesionCohort([f"s{i:02d}" for i in range(60)], data, aff).save(tmp / "c.lesions.npz")
    cfg = make_config({
        "cohort": {"source": str(cache), "voxel_size": None},
        "scores": {"scenario": "or", "n_rois": 1, "roi_size": 1, "min_patients": 4},
        "models": {"modes": []},
        "classical": {"methods": ["vlsm"], "permutations": 0, "min_subjects": 3},
    })
    study = Study(cfg, tmp / "study", verbose=False)
    study.run()
    return study


def test_union_truth_is_used(or_study):
    out = or_study.out
    sim = json.loads((out / "simulation" / "simulation.json").read_text())
    assert sim["truth_labels"] == {"score_1": [1, 2]}
    lab = nib.load(out / "simulation" / "rois.nii.gz")
    union = nib.Nifti1Image(np.isin(np.asarray(lab.dataobj), [1, 2]).astype(np.uint8), lab.affine)
    ref = evaluate_map(out / "maps" / "classical" / "vlsm_score_1.nii.gz", union)
    got = json.loads((out / "evaluation.json").read_text())["results"]["vlsm"]["score_1"]
    assert got["mask"]["roi_voxels"] == ref["mask"]["roi_voxels"] == 2
    for key in ("pr_auc", "average_precision", "prevalence", "cdc", "peak_distance_mm"):
        assert got[key] == pytest.approx(ref[key]), key
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["localization"]["vlsm"]["score_1"]["pr_auc"] == pytest.approx(ref["pr_auc"])
    assert metrics["config"]["scores"]["scenario"] == "or"


def test_without_the_mapping_label_k_is_the_truth(or_study):
    """Old simulation folders (no ``truth_labels``) keep the trailing-number rule."""
    sim_json = or_study.out / "simulation" / "simulation.json"
    meta = json.loads(sim_json.read_text())
    meta.pop("truth_labels")
    sim_json.write_text(json.dumps(meta))
    truth, labels = or_study.truth_per_score()
    assert labels == {"score_1": [1]} and truth == or_study.truth_path
    or_study._evaluate()
    got = json.loads((or_study.out / "evaluation.json").read_text())["results"]["vlsm"]["score_1"]
    assert got["mask"]["roi_voxels"] == 1 and got["label"] == 1


def test_scenario_is_checked_at_the_door():
    from deeplsm.exceptions import DeepLSMError

    with pytest.raises(DeepLSMError, match=r"scores\.scenario = 'xor': must be one of 'linear'"):
        make_config({"scores": {"scenario": "xor"}})

"""The report: the paper's values only beside the paper's own simulated scores, matched by name;
figures that outline each score's whole truth (the union of its labels) at slices through its
regions."""

from __future__ import annotations

import json
import types

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nilearn import plotting
from nilearn.plotting.displays import BaseSlicer

from deeplsm.report import _figures as figs
from deeplsm.report._report import PAPER, _prediction_tables, paper_values
from deeplsm.study import make_config

PAPER_TRUTH = {"score_1": [1], "score_2": [2], "score_3": [3]}


def _fake_study(tmp_path, scores: dict, names, truth):
    sim = tmp_path / "simulation"
    sim.mkdir()
    pd.DataFrame({"subject": ["a", "b"], **{n: [0.1, 0.2] for n in names}}).to_csv(sim / "scores.csv",
                                                                                  index=False)
    if truth is not None:
        (sim / "simulation.json").write_text(json.dumps({"truth_labels": truth}))
    return types.SimpleNamespace(config=make_config({"scores": scores}), sim_dir=sim)


def test_paper_values_for_the_papers_scores(tmp_path):
    assert paper_values(_fake_study(tmp_path, {}, list(PAPER_TRUTH), PAPER_TRUTH)) is PAPER


@pytest.mark.parametrize(("scores", "names", "truth"), [
    ({"scenario": "and"}, list(PAPER_TRUTH), {"score_1": [1, 2], "score_2": [3, 4], "score_3": [5, 6]}),
    ({"scenario": "threshold"}, list(PAPER_TRUTH), PAPER_TRUTH),
    ({"noise": 0.2}, list(PAPER_TRUTH), PAPER_TRUTH),
    ({"volume_weight": 0.5}, list(PAPER_TRUTH), PAPER_TRUTH),
    ({"weights": [[1, 1, 0], [0, 1, 0], [0, 0, 1]]}, list(PAPER_TRUTH),
     {"score_1": [1, 2], "score_2": [2], "score_3": [3]}),
    ({"n_rois": 2}, ["score_1", "score_2"], {"score_1": [1], "score_2": [2]}),
    ({"source": "my_scores.csv", "truth": "rois.nii.gz"}, list(PAPER_TRUTH), None),
    ({}, list(PAPER_TRUTH), {"score_1": [2], "score_2": [1], "score_3": [3]}),
])
def test_no_paper_values_for_other_scores(tmp_path, scores, names, truth):
    assert paper_values(_fake_study(tmp_path, scores, names, truth)) is None


def test_paper_columns_are_matched_by_name_not_position():
    pred = {m: {n: {"mse": 0.01, "r2_pearson": 0.9, "p_value": 1e-3, "r2": 0.8} for n in PAPER_TRUTH}
            for m in ("multi", "ridge")}
    outputs = ["score_2", "score_1", "score_3"]
    mse, r2 = _prediction_tables(pred, outputs, PAPER)
    assert mse["header"][-1] == "paper (score_2 / score_1 / score_3)"
    # the paper's multi-output MSE is 0.0061 / 0.0034 / 0.0066 for scores 1 / 2 / 3
    assert str(mse["rows"][0][-1]) == '<span class="paper">0.0034 / 0.0061 / 0.0066</span>'
    assert str(r2["rows"][0][-1]) == '<span class="paper">0.94 / 0.94 / 0.97</span>'
    assert mse["rows"][1][-1] == "–"  # the paper has no ridge
    mse, r2 = _prediction_tables(pred, outputs, None)
    assert mse["header"] == ["method", *outputs] and not any("paper" in h for h in r2["header"])


# --- figures ----------------------------------------------------------------------------------
AFFINE = np.array([[6.0, 0, 0, -90], [0, 6.0, 0, -126], [0, 0, 6.0, -72], [0, 0, 0, 1]])
SHAPE = (31, 37, 31)


@pytest.fixture
def labels_img():
    lab = np.zeros(SHAPE, np.int16)
    lab[10:12, 15:17, 15:17] = 1  # centre y voxel 15.5 -> -33 mm
    lab[20:22, 22:24, 15:17] = 2  # 22.5 -> 9 mm
    lab[15:17, 10:12, 20:22] = 3  # 10.5 -> -63 mm
    lab[17:19, 12:14, 22:24] = 4  # not a truth here; touches label 3 at a corner
    return nib.Nifti1Image(lab, AFFINE)


TRUTHS = {"naming": [1, 2], "fluency": [3]}


@pytest.fixture
def spy(monkeypatch):
    """Record every outline nilearn draws and the slices every brain plot is cut at."""
    rec = {"contours": [], "cuts": []}
    add = BaseSlicer.add_contours

    def add_contours(self, img, *args, **kwargs):
        rec["contours"].append((np.asarray(img.dataobj) > 0.5, kwargs.get("colors")))
        return add(self, img, *args, **kwargs)

    monkeypatch.setattr(BaseSlicer, "add_contours", add_contours)
    for name in ("plot_stat_map", "plot_roi"):
        orig = getattr(plotting, name)

        def wrapped(*args, _orig=orig, **kwargs):
            rec["cuts"].append(list(kwargs["cut_coords"]))
            return _orig(*args, **kwargs)

        monkeypatch.setattr(plotting, name, wrapped)
    return rec


def _unions(labels_img):
    lab = np.asarray(labels_img.dataobj)
    return [np.isin(lab, ks) for ks in TRUTHS.values()]


def test_cohort_figures_outline_each_scores_union(labels_img, spy):
    freq = nib.Nifti1Image(np.ones(SHAPE, np.float32), AFFINE)
    png = figs.frequency_figure(freq, labels_img, TRUTHS)
    assert png.startswith(b"\x89PNG")
    figs.example_subject_figure(freq, labels_img, TRUTHS, {"naming": 0.5, "fluency": 0.0}, "sub-1")
    assert spy["cuts"] == [[-63.0, -33.0, 9.0]] * 2  # through every region's centre
    unions = _unions(labels_img)
    assert len(spy["contours"]) == 4
    for i, (mask, colours) in enumerate(spy["contours"]):
        assert np.array_equal(mask, unions[i % 2]) and colours == [figs.ROI_COLOURS[i % 2]]


def test_group_maps_cut_through_each_scores_regions(labels_img, spy, tmp_path):
    maps = {}
    for method in ("vlsm", "multi_ig"):
        maps[method] = {}
        for name in TRUTHS:
            path = tmp_path / f"{method}_{name}.nii.gz"
            nib.save(nib.Nifti1Image(np.random.default_rng(0).random(SHAPE).astype(np.float32), AFFINE), path)
            maps[method][name] = str(path)
    figs.maps_figure(maps, labels_img, TRUTHS, ["naming", "fluency"])
    assert spy["cuts"] == [[-33.0, 9.0], [-63.0]] * 2
    unions = _unions(labels_img)
    assert [np.array_equal(m, unions[i % 2]) for i, (m, _) in enumerate(spy["contours"])] == [True] * 4


def test_truth_cuts(labels_img):
    assert figs.truth_cuts(labels_img, [1, 2]) == [-33.0, 9.0]
    assert figs.truth_cuts(labels_img, [1, 2], max_cuts=1) == [-33.0]  # equal sizes: scan order
    # touching: one region, one cut through its centre (y voxels 10.5 and 12.5 -> 11.5)
    assert figs.truth_cuts(labels_img, [3, 4]) == [-57.0]

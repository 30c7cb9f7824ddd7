"""The issue's "done when" on real stroke masks: the 131 LESYMAP masks get a ``lower_is_worse``
score (``1 - fraction of ROI 1 lesioned``, like an accuracy that drops with damage) next to a
``higher_is_worse`` one (the fraction of ROI 2), and ``deeplsm study`` gives every method a
non-empty positive map of each score, and VLSM, SVR-LSM and ridge peak within 10 mm of the
centre of the lower-is-worse score's ROI (that is, inside the 16 mm cube: its voxel centres are
6.9 mm from it, the next voxels 13.3 mm). The CNNs, at this test-sized budget (8 mm grid, 79
training subjects, 2 epochs, 8 subjects explained), are checked for a non-empty map whose raw
attributions have the deficit's sign in the ROI and which is higher in the ROI than outside; the
budget they need to peak there too is measured with ``benchmarks/bench_direction_lesymap.py``
(see the README).

Skipped when ``../shared/data/lesymap-lesions`` is absent (a user's clone has no such folder).
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from deeplsm.study import make_config, run_study

LESYMAP = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "lesymap-lesions"
VOXEL_MM = 8.0

pytestmark = pytest.mark.skipif(not LESYMAP.is_dir(), reason="../shared/data/lesymap-lesions not present")


def lesymap_direction_inputs(folder: Path, voxel_size: float = VOXEL_MM, seed: int = 0) -> dict:
    """Scores and ROIs for the 131 masks at ``voxel_size``: ``score_1 = 1 - fraction of ROI 1
    lesioned`` (lower is worse), ``score_2 = fraction of ROI 2 lesioned`` (higher is worse); two
    cubes of 16 mm where at least 15 subjects have lesions (``deeplsm.simulate``)."""
    from deeplsm.cohort import load_lesions
    from deeplsm.simulate import simulate

    cohort = load_lesions(str(LESYMAP), grid="mni", voxel_size=voxel_size, verbose=False)
    sim = simulate(cohort, n_rois=2, roi_size_mm=16.0, min_patients=15, random_state=seed)
    folder.mkdir(parents=True, exist_ok=True)
    scores = pd.DataFrame({"score_1": 1.0 - sim.scores[:, 0], "score_2": sim.scores[:, 1]},
                          index=pd.Index(cohort.subject_ids, name="subject"))
    scores.to_csv(folder / "scores.csv")
    cohort.to_img(sim.labels, dtype=np.int16).to_filename(folder / "rois.nii.gz")
    return {"scores": folder / "scores.csv", "truth": folder / "rois.nii.gz",
            "centres_mm": sim.to_json()["centres_mm"], "subjects": cohort.n_subjects}


def lesymap_direction_config(inputs: dict) -> dict:
    return make_config({
        "cohort": {"source": str(LESYMAP), "grid": "mni", "voxel_size": VOXEL_MM},
        "scores": {"source": str(inputs["scores"]), "truth": str(inputs["truth"]),
                   "direction": {"score_1": "lower_is_worse"}},
        "models": {"modes": ["multi", "single"], "overrides": {"max_epochs": 2, "batch_size": 16},
                   "single_overrides": {"max_epochs": 1}},
        "explain": {"max_subjects": 8, "n_steps": 4, "n_samples": 4, "window": 2, "stride": 2},
        "classical": {"permutations": 200, "tail": "one-sided"},
    })


@pytest.fixture(scope="module")
def lesymap_study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lesymap_direction")
    inputs = lesymap_direction_inputs(tmp / "inputs")
    out = tmp / "study"
    metrics = run_study(lesymap_direction_config(inputs), out, verbose=False)
    return out, metrics, inputs


def test_every_method_has_a_positive_map_of_the_lower_is_worse_score(lesymap_study):
    out, metrics, inputs = lesymap_study
    assert inputs["subjects"] == 131
    assert metrics["directions"] == {"score_1": "lower_is_worse", "score_2": "higher_is_worse"}
    scores = pd.read_csv(inputs["scores"], index_col=0)
    assert scores["score_1"].between(0, 1).all() and (scores["score_1"] < 1).sum() >= 15
    loc = metrics["localization"]
    methods = {f"{m}_{a}" for m in ("multi", "single") for a in ("ig", "gradshap", "occlusion")}
    assert set(loc) == methods | {"vlsm", "svr", "ridge"}
    rois = np.asarray(nib.load(inputs["truth"]).dataobj)
    for folder in ("multi", "single", "classical"):
        files = sorted((out / "maps" / folder).glob("*_score_*.nii.gz"))
        assert len(files) == 6, folder  # 3 methods x 2 scores
        for f in files:
            m = np.asarray(nib.load(f).dataobj)
            assert m.max() == pytest.approx(1.0) and m.min() >= 0, f  # non-empty, positive
    # classical methods: the peak of the turned map of score_1 lies in its ROI (within 10 mm of
    # the centre), and both scores' maps find their ROIs far above chance
    for method in ("vlsm", "svr", "ridge"):
        d = loc[method]["score_1"]["peak_distance_mm"]
        assert d is not None and d <= 10.0, (method, d)
        for score in ("score_1", "score_2"):
            assert loc[method][score]["pr_auc"] > 10 * loc[method][score]["prevalence"], (method, score)
    # CNNs: where ROI 1 is damaged the network lowers score_1, so the raw (unturned) attribution
    # sums are negative there; the turned map is what makes that side its positive map
    for mode in ("multi", "single"):
        for method in ("ig", "gradshap", "occlusion"):
            raw = np.asarray(nib.load(out / "maps" / mode / "sums" / f"{method}_score_1.nii.gz").dataobj)
            assert raw[rois == 1].sum() < 0, (mode, method)
            turned = np.asarray(nib.load(out / "maps" / mode / f"{method}_score_1.nii.gz").dataobj)
            assert turned[rois == 1].mean() > turned[rois == 0].mean(), (mode, method)
        manifest = json.loads((out / "maps" / mode / "maps.json").read_text())
        assert {e["output"]: e["direction"] for e in manifest["maps"]} == {
            "score_1": "lower_is_worse", "score_2": "higher_is_worse"}
    summary = json.loads((out / "classical" / "vlsm" / "summary.json").read_text())["outputs"]
    assert summary["score_1"]["params"]["tail"] == "less"
    assert summary["score_1"]["max_tail_statistic"] > 3  # strongly negative t in the ROI
    html = (out / "report.html").read_text()
    assert "<li>score_1: lower is worse" in html and "<li>score_2: higher is worse" in html

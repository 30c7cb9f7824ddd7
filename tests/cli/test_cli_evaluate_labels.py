"""``deeplsm evaluate --labels``: output names to one label or a union of labels, as
``naming=1+3,fluency=2`` or as the JSON of a study's ``scores.truth_labels``."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from deeplsm.cli import main
from deeplsm.evaluate import evaluate_map

SHAPE = (9, 8, 7)


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(1)
    labels = np.zeros(SHAPE, np.int16)
    labels[1:3, 1:3, 1:3] = 1
    labels[4:6, 4:6, 4:6] = 2
    labels[6:8, 1:3, 1:3] = 3
    nib.save(nib.Nifti1Image(labels, np.eye(4)), tmp_path / "rois.nii.gz")
    maps = tmp_path / "maps"
    maps.mkdir()
    for name in ("naming", "fluency"):
        m = rng.random(SHAPE) * 0.3 + (labels == 3) * 0.8
        nib.save(nib.Nifti1Image(m.astype(np.float32), np.eye(4)), maps / f"vlsm_{name}.nii.gz")
    return tmp_path


@pytest.mark.parametrize("spec", ["naming=1+3, fluency=2", '{"naming": [1, 3], "fluency": 2}'])
def test_labels_union_by_name(folder, spec, capsys):
    out = folder / "ev.json"
    rc = main(["evaluate", "--maps", str(folder / "maps"), "--truth", str(folder / "rois.nii.gz"),
               "--out", str(out), "--labels", spec, "--mask", "none", "--no-plot"])
    assert rc == 0, capsys.readouterr().err
    ev = json.loads(out.read_text())
    assert ev["truth_labels"] == {"fluency": [2], "naming": [1, 3]}
    lab = np.asarray(nib.load(folder / "rois.nii.gz").dataobj)
    for name, ks in (("naming", [1, 3]), ("fluency", [2])):
        roi = nib.Nifti1Image(np.isin(lab, ks).astype(np.uint8), np.eye(4))
        ref = evaluate_map(folder / "maps" / f"vlsm_{name}.nii.gz", roi, "none")
        got = ev["results"]["vlsm"][name]
        for key in ("pr_auc", "prevalence", "cdc", "peak_distance_mm", "com_distance_mm"):
            assert got[key] == pytest.approx(ref[key]), (name, key)
    assert ev["results"]["vlsm"]["naming"]["label"] == [1, 3]


@pytest.mark.parametrize("spec", ["naming=1+x", "naming=0", "naming=1+1", "naming", '{"naming": []}',
                                  '{"naming": [1,'])
def test_bad_label_specs_are_usage_errors(folder, spec, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "--maps", str(folder / "maps"), "--truth", str(folder / "rois.nii.gz"),
              "--out", str(folder / "ev.json"), "--labels", spec])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--labels" in err and ("expected NAME=K" in err or "must be a label" in err)
    assert not (folder / "ev.json").exists()


def test_a_label_the_truth_lacks_is_one_error_line(folder, capsys):
    rc = main(["evaluate", "--maps", str(folder / "maps"), "--truth", str(folder / "rois.nii.gz"),
               "--out", str(folder / "ev.json"), "--labels", "naming=1+9,fluency=2"])
    err = capsys.readouterr().err
    assert rc == 2 and err.strip().splitlines() == [
        "deeplsm: error: labels naming=1+9: the truth has no label 9 (it has 1, 2, 3)"]
    assert not (folder / "ev.json").exists() and not (folder / "ev.png").exists()

"""What the classical methods leave out, and why: counts against a direct count, one line each,
recorded in ``summary.json``."""

from __future__ import annotations

import json
import logging
import warnings

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from deeplsm.classical import SVRLSM, MassUnivariateLSM, RidgeLSM
from deeplsm.classical._mask import exclusion_lines, mask_exclusions, voxel_mask
from deeplsm.cli import main

M = 3


def _cohort(rng, n=24, v=60):
    """Random maps plus designed voxels: never lesioned, lesioned in 1-2 subjects (too few),
    in all but one or two (too many); two empty maps; one subject lesioned only in untested voxels."""
    data = (rng.random((n, v)) < 0.3).astype(np.uint8)
    data[:, 0] = 0  # never lesioned
    data[:, 1] = 0
    data[:2, 1] = 1  # lesioned in 2 < M subjects
    data[:, 2] = 1
    data[0, 2] = 0  # lesioned in n - 1: spared in 1 < M
    data[:2] = 0  # two empty maps
    return data


def _direct(data, m):
    """The expected counts, voxel by voxel and subject by subject."""
    n, v = data.shape
    counts = [int(data[:, j].sum()) for j in range(v)]
    tested = [c >= m and n - c >= m for c in counts]
    out = {"lesioned": sum(c > 0 for c in counts), "tested": sum(tested),
           "too_few": sum(0 < c < m for c in counts),
           "too_many": sum(c >= m and n - c < m for c in counts)}
    out["no_tested"] = [i for i in range(n) if not any(data[i, j] for j in range(v) if tested[j])]
    out["empty"] = [i for i in range(n) if not data[i].any()]
    return out


def test_mask_exclusions_match_a_direct_count():
    rng = np.random.default_rng(3)
    data = _cohort(rng)
    data[2, :] = 0
    data[2, 1] = 1  # lesioned only in an untested voxel
    mask, m = voxel_mask(data, M)
    ex = mask_exclusions(data, mask, m, [f"s{i}" for i in range(len(data))])
    d = _direct(data, M)
    v = ex["voxels"]
    assert (v["lesioned"], v["tested"], v["lesioned_in_too_few"], v["lesioned_in_too_many"]) == (
        d["lesioned"], d["tested"], d["too_few"], d["too_many"])
    assert v["lesioned"] == v["tested"] + v["lesioned_in_too_few"] + v["lesioned_in_too_many"]
    assert (v["n_voxels"], v["min_subjects"], v["n_subjects"]) == (data.shape[1], M, len(data))
    s = ex["subjects_without_tested_voxel"]
    assert s["subjects"] == [f"s{i}" for i in d["no_tested"]] and s["count"] == len(d["no_tested"])
    assert s["empty_maps"] == len(d["empty"]) == 2 and 2 in d["no_tested"]
    lines = exclusion_lines(ex, "vlsm")
    assert len(lines) == 2 and all("\n" not in line for line in lines)
    assert f"testing {d['tested']} of the {d['lesioned']} voxels" in lines[0]
    assert f"{d['too_few']} lesioned in fewer than {M}" in lines[0]
    assert f"{d['too_many']} lesioned in more than {len(data) - M}" in lines[0]
    assert lines[1].startswith(f"vlsm: {len(d['no_tested'])} of {len(data)} subjects have no lesioned")


@pytest.mark.parametrize("est", [
    MassUnivariateLSM(n_permutations=0, correction="fdr", min_subjects=M),
    SVRLSM(n_permutations=0, min_subjects=M),
    RidgeLSM(n_permutations=0, min_subjects=M),
], ids=["vlsm", "svr", "ridge"])
def test_estimators_record_exclusions_without_a_warning_per_fit(est):
    rng = np.random.default_rng(1)
    data = _cohort(rng)
    y = data[:, 5:10].sum(axis=1) + rng.normal(size=len(data))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the subjects without a tested voxel are recorded, not warned
        est.fit(data, y)
    d = _direct(data, M)
    assert est.exclusions_["voxels"]["tested"] == d["tested"] == int(est.mask_.sum())
    assert est.exclusions_["subjects_without_tested_voxel"]["count"] == len(d["no_tested"])
    assert est.summary()["exclusions"] == est.exclusions_


# --- the commands -------------------------------------------------------------------------------
@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    data = _cohort(rng, n=24, v=7 * 8 * 9).reshape(24, 7, 8, 9)
    les = tmp_path / "lesions"
    les.mkdir()
    ids = [f"sub-{i:02d}" for i in range(len(data))]
    for sid, d in zip(ids, data):
        nib.save(nib.Nifti1Image(d.astype(np.float32), np.eye(4)), les / f"{sid}_lesion.nii.gz")
    y = data[:, 3, 4, :].sum(axis=1) + rng.normal(size=len(data))
    extra = ["sub-98", "sub-99"]  # score rows without a lesion map
    pd.DataFrame({"subject": ids + extra, "score": np.r_[y, 1.0, 2.0]}).to_csv(tmp_path / "scores.csv",
                                                                             index=False)
    return tmp_path, data.reshape(len(data), -1), ids, extra


@pytest.mark.parametrize("command", ["vlsm", "svr", "ridge"])
def test_commands_say_what_they_left_out_once_and_record_it(files, command, caplog):
    tmp, data, ids, extra = files
    out = tmp / command
    with caplog.at_level(logging.INFO, logger="deeplsm"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rc = main([command, "--lesions", str(tmp / "lesions"), "--scores", str(tmp / "scores.csv"),
                   "--min-subjects", str(M), "--permutations", "0", "--out", str(out), "--quiet"])
    assert rc == 0
    d = _direct(data, M)
    ex = json.loads((out / "summary.json").read_text())["exclusions"]
    assert ex["score_rows_without_lesion_map"]["subjects"] == extra
    assert ex["empty_lesion_maps"]["subjects"] == [ids[i] for i in d["empty"]]
    assert ex["missing_scores"]["count"] == 0
    v = ex["voxels"]
    got = (v["lesioned"], v["tested"], v["lesioned_in_too_few"], v["lesioned_in_too_many"], v["min_subjects"])
    assert got == (d["lesioned"], d["tested"], d["too_few"], d["too_many"], M)
    assert int(np.asarray(nib.load(out / "mask.nii.gz").dataobj).sum()) == d["tested"]
    assert ex["subjects_without_tested_voxel"]["subjects"] == [ids[i] for i in d["no_tested"]]
    assert len(ex["lines"]) == 4
    # each reason once on the terminal: warnings for the inputs, log lines for the voxel mask
    said = [str(w.message) for w in caught] + [r.getMessage() for r in caplog.records]
    for phrase in ("score rows with no lesion map", "lesion maps are empty",
                   "voxels lesioned in any of the", "no lesioned voxel among the tested voxels"):
        assert sum(phrase in s for s in said) == 1, (phrase, said)

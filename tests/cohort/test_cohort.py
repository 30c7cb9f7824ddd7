"""Loading from folders, globs and tables; resampling; the cache; score tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deeplsm.cohort import (
    PAPER_VOXEL_SIZE,
    LesionCohort,
    load_lesions,
    load_scores,
    mni_brain_grid,
    resolve_grid,
)
from deeplsm.exceptions import DeepLSMError
from tests.conftest import SHAPE, write_nifti


def test_folder_bids_names(lesion_folder):
    cohort = load_lesions(lesion_folder, verbose=False)
    assert cohort.subject_ids == [f"sub-{i:02d}" for i in range(1, 7)]
    assert cohort.data.shape == (6, *SHAPE) and cohort.data.dtype == np.uint8
    assert cohort.voxel_size == (1.0, 1.0, 1.0)


def test_folder_any_nifti_and_glob(tmp_path, rng):
    for name in ("patientA.nii", "patientB.nii.gz"):
        write_nifti(tmp_path / name, (rng.random(SHAPE) < 0.2).astype(np.float32))
    assert load_lesions(tmp_path, verbose=False).subject_ids == ["patientA", "patientB"]
    assert load_lesions(str(tmp_path / "*B.nii.gz"), verbose=False).subject_ids == ["patientB"]


def test_table_source(lesion_folder, tmp_path):
    table = tmp_path / "list.tsv"
    table.write_text("participant_id\tpath\nP2\tlesions/sub-02_lesion.nii.gz\n"
                     f"P1\t{lesion_folder / 'sub-01_lesion.nii.gz'}\n")
    cohort = load_lesions(table, verbose=False)
    ref = load_lesions(lesion_folder, verbose=False)
    assert cohort.subject_ids == ["P2", "P1"]
    np.testing.assert_array_equal(cohort.data, ref.data[[1, 0]])


def test_cache_roundtrip(lesion_folder, tmp_path):
    cohort = load_lesions(lesion_folder, verbose=False)
    path = cohort.save(tmp_path / "c")
    assert path.name == "c.lesions.npz"
    back = load_lesions(path, verbose=False)
    np.testing.assert_array_equal(back.data, cohort.data)
    np.testing.assert_array_equal(back.affine, cohort.affine)
    assert back.subject_ids == cohort.subject_ids


def test_resample_keeps_world_position():
    """A block at known MNI coordinates lands at the same coordinates on a 2 mm grid."""
    aff = np.diag([1.0, 1.0, 1.0, 1.0])
    aff[:3, 3] = [-20, -20, -20]
    data = np.zeros((1, 41, 41, 41), np.uint8)
    data[0, 10:20, 20:30, 24:34] = 1  # world x -10..-1, y 0..9, z 4..13
    cohort = LesionCohort(["s"], data, aff)
    out = load_lesions(cohort, voxel_size=2.0, grid="native", verbose=False)
    assert out.voxel_size == (2.0, 2.0, 2.0)
    ijk = np.argwhere(out.data[0])
    xyz = ijk * 2.0 + out.affine[:3, 3]
    assert np.allclose(xyz.mean(0), [-5.5, 4.5, 8.5], atol=1.01)
    # Lesion volume is preserved to within one voxel layer of the block.
    assert abs(out.data.sum() * 8 - 1000) <= 300


def test_paper_grid_shape():
    grid = resolve_grid("paper", None, mni_brain_grid(1.0))
    assert grid.voxel_size == pytest.approx((PAPER_VOXEL_SIZE,) * 3)
    assert grid.shape == (87, 109, 93)  # the paper's crop was 91 x 107 x 86


def test_scores_alignment_and_errors(tmp_path):
    p = tmp_path / "scores.csv"
    pd.DataFrame({"subject": ["b", "a", "c"], "s1": [1.0, 2.0, 3.0], "s2": [4, 5, 6]}).to_csv(p, index=False)
    df = load_scores(p, ["a", "b"], ["s2"])
    assert list(df.index) == ["a", "b"] and df["s2"].tolist() == [5.0, 4.0]
    with pytest.raises(DeepLSMError, match="1 of 2 lesion subjects have no score"):
        load_scores(p, ["a", "zz"])
    with pytest.raises(DeepLSMError, match="missing score column"):
        load_scores(p, ["a"], ["s3"])
    bad = tmp_path / "bad.csv"
    bad.write_text("subject,s1\na,1\nb,oops\n")
    with pytest.raises(DeepLSMError, match="not numeric"):
        load_scores(bad)
    nan = tmp_path / "nan.csv"
    nan.write_text("subject,s1\na,1\nb,\n")
    with pytest.raises(DeepLSMError, match="NaN or missing"):
        load_scores(nan)

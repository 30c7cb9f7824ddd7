"""Every bad-input case from issue #2, with real broken files, through the CLI and the API."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from deeplsm.cli import main
from deeplsm.cohort import load_lesions
from deeplsm.exceptions import DeepLSMError
from tests.conftest import SHAPE, write_nifti


def run_cli_error(capsys, lesions: Path | str, out: Path, *extra: str) -> str:
    rc = main(["simulate", "--lesions", str(lesions), "--out", str(out), "--quiet",
               "--roi-size", "1", "--min-patients", "1", "--n-rois", "1", *extra])
    err = capsys.readouterr().err
    assert rc == 2
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("deeplsm: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert not out.exists(), "no partial output on error"
    return lines[0]


def test_missing_path(tmp_path, capsys):
    msg = run_cli_error(capsys, tmp_path / "nope", tmp_path / "out")
    assert "does not exist" in msg and "nope" in msg


def test_not_nifti(lesion_folder, tmp_path, capsys):
    (lesion_folder / "sub-99_lesion.nii.gz").write_text("this is not an image")
    msg = run_cli_error(capsys, lesion_folder, tmp_path / "out")
    assert "sub-99_lesion.nii.gz" in msg and "corrupt" in msg


def test_wrong_extension_in_table(lesion_folder, tmp_path, capsys):
    (tmp_path / "scan.txt").write_text("x")
    table = tmp_path / "list.csv"
    table.write_text(f"subject,path\nsub-01,{lesion_folder / 'sub-01_lesion.nii.gz'}\nx,scan.txt\n")
    msg = run_cli_error(capsys, table, tmp_path / "out")
    assert "scan.txt" in msg and "not a NIfTI" in msg


def test_truncated_gz(lesion_folder, tmp_path, capsys):
    good = (lesion_folder / "sub-01_lesion.nii.gz").read_bytes()
    (lesion_folder / "sub-07_lesion.nii.gz").write_bytes(good[: len(good) // 2])
    msg = run_cli_error(capsys, lesion_folder, tmp_path / "out")
    assert "sub-07_lesion.nii.gz" in msg


def test_corrupt_gz_payload(lesion_folder, tmp_path, capsys):
    (lesion_folder / "sub-08_lesion.nii.gz").write_bytes(gzip.compress(b"\x00" * 40))
    msg = run_cli_error(capsys, lesion_folder, tmp_path / "out")
    assert "sub-08_lesion.nii.gz" in msg


def test_4d_image(lesion_folder, tmp_path, capsys):
    write_nifti(lesion_folder / "sub-09_lesion.nii.gz", np.zeros((*SHAPE, 2), np.float32))
    msg = run_cli_error(capsys, lesion_folder, tmp_path / "out")
    assert "sub-09" in msg and "4D" in msg


def test_4d_singleton_is_accepted(tmp_path):
    write_nifti(tmp_path / "a.nii.gz", np.ones((*SHAPE, 1), np.float32))
    assert load_lesions(tmp_path, verbose=False).shape == SHAPE


def test_shape_mismatch(lesion_folder, tmp_path, capsys):
    write_nifti(lesion_folder / "sub-10_lesion.nii.gz", np.zeros((7, 8, 10), np.float32))
    msg = run_cli_error(capsys, lesion_folder, tmp_path / "out")
    assert "sub-10" in msg and "(7, 8, 10)" in msg and "shape" in msg


def test_affine_mismatch(lesion_folder, tmp_path, capsys):
    aff = np.eye(4)
    aff[0, 3] = 2e-3
    write_nifti(lesion_folder / "sub-11_lesion.nii.gz", np.zeros(SHAPE, np.float32), aff)
    msg = run_cli_error(capsys, lesion_folder, tmp_path / "out")
    assert "sub-11" in msg and "affine" in msg


def test_tiny_affine_difference_is_accepted(lesion_folder):
    aff = np.eye(4)
    aff[:3, 3] = 1e-8
    aff[0, 0] = 1 + 5e-4
    write_nifti(lesion_folder / "sub-12_lesion.nii.gz", np.ones(SHAPE, np.float32), aff)
    assert load_lesions(lesion_folder, verbose=False).n_subjects == 7


def test_non_binary_values(lesion_folder, tmp_path, capsys):
    write_nifti(lesion_folder / "sub-13_lesion.nii.gz", np.full(SHAPE, 2.0, np.float32))
    msg = run_cli_error(capsys, lesion_folder, tmp_path / "out")
    assert "sub-13" in msg and "binary" in msg


def test_probabilistic_needs_threshold(lesion_folder, tmp_path, capsys):
    prob = np.linspace(0, 1, np.prod(SHAPE), dtype=np.float32).reshape(SHAPE)
    write_nifti(lesion_folder / "sub-14_lesion.nii.gz", prob)
    msg = run_cli_error(capsys, lesion_folder, tmp_path / "out")
    assert "sub-14" in msg and "--threshold" in msg
    cohort = load_lesions(lesion_folder, threshold=0.5, verbose=False)
    i = cohort.subject_ids.index("sub-14")
    np.testing.assert_array_equal(cohort.data[i], (prob >= 0.5).astype(np.uint8))


def test_0_255_is_binary(tmp_path):
    data = np.zeros(SHAPE, np.uint8)
    data[2:4, 3:5, 1:3] = 255
    write_nifti(tmp_path / "s.nii.gz", data)
    cohort = load_lesions(tmp_path, verbose=False)
    np.testing.assert_array_equal(cohort.data[0], data // 255)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_inf(lesion_folder, tmp_path, capsys, bad):
    data = np.zeros(SHAPE, np.float32)
    data[1, 1, 1] = bad
    write_nifti(lesion_folder / "sub-15_lesion.nii.gz", data)
    msg = run_cli_error(capsys, lesion_folder, tmp_path / "out")
    assert "sub-15" in msg and ("1 NaN value" if np.isnan(bad) else "1 infinite value") in msg


def test_empty_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    msg = run_cli_error(capsys, tmp_path / "empty", tmp_path / "out")
    assert "no NIfTI files" in msg and "empty" in msg


def test_all_zero_maps_warn_with_count(lesion_folder):
    for i in (20, 21):
        write_nifti(lesion_folder / f"sub-{i}_lesion.nii.gz", np.zeros(SHAPE, np.float32))
    with pytest.warns(UserWarning, match="2 of 8 lesion maps are empty"):
        cohort = load_lesions(lesion_folder, verbose=False)
    assert cohort.n_subjects == 8


def test_bad_threshold():
    with pytest.raises(DeepLSMError, match="threshold must be in"):
        load_lesions("whatever", threshold=1.5)

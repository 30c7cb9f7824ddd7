"""BIDS lesion masks: names, raw and derivatives layouts, sessions, spaces, participants.tsv."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deeplsm.cohort import (
    find_lesion_files,
    is_mni_space,
    load_lesions,
    load_scores,
    parse_bids_name,
)
from deeplsm.exceptions import DeepLSMError
from tests.conftest import SHAPE, write_nifti

MNI = "MNI152NLin2009cAsym"

# name -> (subject, session, space, is a lesion mask)
NAMES = {
    f"sub-01_ses-1_space-{MNI}_label-lesion_mask.nii.gz": ("sub-01", "1", MNI, True),
    # ATLAS v2.0
    "sub-r001s001_ses-1_space-MNI152NLin2009aSym_label-L_desc-T1lesion_mask.nii.gz":
        ("sub-r001s001", "1", "MNI152NLin2009aSym", True),
    "sub-01_T1w_label-lesion_roi.nii.gz": ("sub-01", None, None, True),
    "sub-02_label-lesion_roi.nii": ("sub-02", None, None, True),
    "sub-03_acq-flair_desc-lesion_mask.nii.gz": ("sub-03", None, None, True),
    "sub-04_space-MNI152NLin6Asym_desc-strokeLesion_mask.NII.GZ": ("sub-04", None, "MNI152NLin6Asym", True),
    "sub-0001_lesion.nii.gz": ("sub-0001", None, None, True),
    "sub-05_ses-pre_lesion.nii": ("sub-05", "pre", None, True),
    # BIDS, but not lesion masks
    "sub-01_ses-2_T1w.nii.gz": ("sub-01", "2", None, False),
    f"sub-01_space-{MNI}_desc-brain_mask.nii.gz": ("sub-01", None, MNI, False),
    "sub-01_space-T1w_label-WM_probseg.nii.gz": ("sub-01", None, "T1w", False),
    "sub-01_label-lesion_dseg.nii.gz": ("sub-01", None, None, False),
}
NOT_BIDS = ["patient_3.nii", "sub-01.nii.gz", "sub-01_ses-1_ses-2_label-lesion_mask.nii.gz",
            "sub-0 1_lesion.nii", "sub-01_label-lesion_mask.txt", "Subject_001.nii.gz"]


@pytest.mark.parametrize("name", list(NAMES))
def test_parse_bids_name(name):
    ref = parse_bids_name(name)
    assert ref is not None
    assert (ref.subject, ref.session, ref.space, ref.is_lesion_mask) == NAMES[name]


@pytest.mark.parametrize("name", list(NAMES))
def test_parser_agrees_with_nilearn(name):
    """nilearn's own BIDS parser (0.13+) reads the same entities and suffix."""
    from nilearn.interfaces.bids import parse_bids_filename

    theirs = parse_bids_filename(name)
    if "entities" not in theirs:
        pytest.skip("nilearn < 0.13 returns another format")
    ours = parse_bids_name(name)
    expected = {**ours.entities, **dict.fromkeys(ours.bare)}
    assert theirs["entities"] == expected
    assert theirs["suffix"] == ours.suffix


@pytest.mark.parametrize("name", NOT_BIDS)
def test_not_bids(name):
    assert parse_bids_name(name) is None


def test_mni_spaces():
    for label in ("MNI152NLin2009cAsym", "MNI152NLin6Asym", "MNI152Lin", "MNI305", "MNIColin27",
                  "IXI549Space"):
        assert is_mni_space(label)
    for label in ("T1w", "orig", "fsaverage", "Talairach", "individual"):
        assert not is_mni_space(label)


def _mask(rng, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_nifti(path, (rng.random(SHAPE) < 0.3).astype(np.float32))


def test_raw_layout(tmp_path, rng):
    """``sub-*/anat/`` in a BIDS root: masks found, T1w images and other files left alone."""
    root = tmp_path / "bids"
    for i in (3, 1, 2):
        _mask(rng, root / f"sub-0{i}" / "anat" / f"sub-0{i}_T1w_label-lesion_roi.nii.gz")
        _mask(rng, root / f"sub-0{i}" / "anat" / f"sub-0{i}_T1w.nii.gz")
    (root / "participants.tsv").write_text("participant_id\tage\nsub-01\t50\n")
    ids, paths = find_lesion_files(root)
    assert ids == ["sub-01", "sub-02", "sub-03"]
    assert all(p.name.endswith("_label-lesion_roi.nii.gz") for p in paths)


def _sessions_tree(root: Path, rng) -> dict[str, Path]:
    """derivatives/lesions: sub-01..04 in ses-1, sub-02 and sub-04 also in ses-2."""
    files = {}
    for sub, ses in [(1, 1), (2, 1), (2, 2), (3, 1), (4, 1), (4, 2)]:
        name = f"sub-0{sub}_ses-{ses}_space-{MNI}_label-lesion_mask.nii.gz"
        files[f"sub-0{sub}_ses-{ses}"] = _mask(
            rng, root / "derivatives" / "lesions" / f"sub-0{sub}" / f"ses-{ses}" / "anat" / name)
    return files


def test_sessions(tmp_path, rng):
    files = _sessions_tree(tmp_path, rng)
    with pytest.raises(DeepLSMError, match=r"sub-02 has lesion masks from 2 sessions \(1, 2\) "
                       r"\(and 1 other subject\(s\)\); choose one with --session"):
        find_lesion_files(tmp_path)
    ids, paths = find_lesion_files(tmp_path, session="1")
    assert ids == ["sub-01", "sub-02", "sub-03", "sub-04"]
    assert paths == [files[f"{s}_ses-1"] for s in ids]
    ids, paths = find_lesion_files(tmp_path, session="ses-2")
    assert ids == ["sub-02", "sub-04"] and paths == [files["sub-02_ses-2"], files["sub-04_ses-2"]]
    ids, paths = find_lesion_files(tmp_path, session="all")
    assert ids == sorted(files) and paths == [files[s] for s in ids]
    with pytest.raises(DeepLSMError, match=r"no lesion masks of session '3'.*sessions found: 1, 2"):
        find_lesion_files(tmp_path, session="3")
    cohort = load_lesions(tmp_path, session="2", verbose=False)
    assert cohort.subject_ids == ["sub-02", "sub-04"]


def test_one_session_per_subject_needs_no_selector(tmp_path, rng):
    _mask(rng, tmp_path / "sub-01" / "ses-acute" / "anat" / "sub-01_ses-acute_label-lesion_roi.nii.gz")
    _mask(rng, tmp_path / "sub-02" / "ses-chronic" / "anat" / "sub-02_ses-chronic_label-lesion_roi.nii")
    assert find_lesion_files(tmp_path)[0] == ["sub-01", "sub-02"]


def test_raw_and_derivatives_together_is_ambiguous(tmp_path, rng):
    raw = _mask(rng, tmp_path / "sub-01" / "anat" / "sub-01_T1w_label-lesion_roi.nii.gz")
    der = _mask(rng, tmp_path / "derivatives" / "masks" / "sub-01" / "anat"
                / f"sub-01_space-{MNI}_label-lesion_mask.nii.gz")
    with pytest.raises(DeepLSMError, match="sub-01 has 2 lesion maps") as err:
        find_lesion_files(tmp_path)
    assert str(raw) in str(err.value) and str(der) in str(err.value)
    assert find_lesion_files(tmp_path / "derivatives" / "masks")[1] == [der]


def test_atlas_names_and_glob(tmp_path, rng):
    for s in ("r001s001", "r001s002"):
        _mask(rng, tmp_path / f"sub-{s}" / "ses-1" / "anat"
              / f"sub-{s}_ses-1_space-MNI152NLin2009aSym_label-L_desc-T1lesion_mask.nii.gz")
        _mask(rng, tmp_path / f"sub-{s}" / "ses-1" / "anat"
              / f"sub-{s}_ses-1_space-MNI152NLin2009aSym_T1w.nii.gz")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # MNI spaces: no warning
        assert find_lesion_files(tmp_path)[0] == ["sub-r001s001", "sub-r001s002"]
    ids, _ = find_lesion_files(str(tmp_path / "sub-*" / "ses-1" / "anat" / "*T1lesion_mask.nii.gz"))
    assert ids == ["sub-r001s001", "sub-r001s002"]


def test_non_mni_space_warns(tmp_path, rng):
    for i, space in enumerate(["T1w", MNI, "T1w"]):
        _mask(rng, tmp_path / f"sub-0{i}_space-{space}_label-lesion_mask.nii.gz")
    with pytest.warns(UserWarning, match=r"2 of 3 lesion masks are not in an MNI space.*"
                      r"sub-00 \(space-T1w\), sub-02 \(space-T1w\)"):
        find_lesion_files(tmp_path)
    (tmp_path / "sub-00_space-T1w_label-lesion_mask.nii.gz").unlink()
    (tmp_path / "sub-02_space-T1w_label-lesion_mask.nii.gz").unlink()
    _mask(rng, tmp_path / "sub-03_space-MNI152NLin6Asym_label-lesion_mask.nii.gz")
    with pytest.warns(UserWarning, match="several MNI spaces"):
        find_lesion_files(tmp_path)


def test_legacy_names_still_win_and_any_nifti_fallback(tmp_path, rng):
    _mask(rng, tmp_path / "sub-01_lesion.nii.gz")
    _mask(rng, tmp_path / "sub-02_ses-1_lesion.nii.gz")
    _mask(rng, tmp_path / "other.nii.gz")  # not a lesion name: ignored while lesion names exist
    assert find_lesion_files(tmp_path)[0] == ["sub-01", "sub-02"]
    flat = tmp_path / "flat"
    _mask(rng, flat / "patient_B.nii")
    _mask(rng, flat / "patient_A.nii.gz")
    assert find_lesion_files(flat)[0] == ["patient_A", "patient_B"]


def test_session_needs_bids_names(tmp_path, rng, lesion_folder):
    table = tmp_path / "list.csv"
    table.write_text(f"subject,path\nP1,{lesion_folder / 'sub-01_lesion.nii.gz'}\n")
    with pytest.raises(DeepLSMError, match="--session picks BIDS-named files"):
        load_lesions(table, session="1", verbose=False)
    with pytest.raises(DeepLSMError, match=r"no lesion masks of session '1'.*found: none"):
        load_lesions(lesion_folder, session="1", verbose=False)


# --- participants.tsv ---------------------------------------------------------------------
PARTICIPANTS = (
    "group\tparticipant_id\tage\tsex\tnaming\tfluency\n"
    "patient\tsub-003\t61\tF\t12.5\tn/a\n"
    "patient\tsub-001\tn/a\tM\t7\t3\n"
    "control\tsub-009\t40\tn/a\tn/a\t5\n"
    "patient\tsub-002\t70\tF\t9.25\t4\n"
)


def test_participants_tsv(tmp_path, caplog):
    p = tmp_path / "participants.tsv"
    p.write_text(PARTICIPANTS)
    ref = pd.read_csv(p, sep="\t", dtype={"participant_id": str}).set_index("participant_id")
    ids = ["sub-001", "sub-002", "sub-003"]
    with pytest.warns(UserWarning, match="ignoring 1 score rows"):
        df = load_scores(p, ids, ["naming"])
    np.testing.assert_array_equal(df["naming"].to_numpy(), ref.loc[ids, "naming"].to_numpy())
    assert list(df.index) == ids  # IDs keep their leading zeros, though not in the first column
    # n/a in a column the user asked for, for a lesion subject: an error naming both.
    with pytest.raises(DeepLSMError, match=r"NaN or missing scores for 1 subject\(s\), e\.g\. "
                       r"sub-003 in column 'fluency'"):
        load_scores(p, ids, ["naming", "fluency"])
    with pytest.raises(DeepLSMError, match=r"e\.g\. sub-001 in column 'age'"):
        load_scores(p, ids, ["age"])
    # Default columns: the numeric ones; text-only 'group' and 'sex' are left out.
    caplog.set_level(logging.INFO, logger="deeplsm")
    with pytest.warns(UserWarning, match="ignoring 3 score rows"):
        df = load_scores(p, ["sub-002"], None)
    assert list(df.columns) == ["age", "naming", "fluency"]
    assert df.loc["sub-002"].tolist() == [70.0, 9.25, 4.0]
    assert "left out column(s) with no numbers: group, sex" in caplog.text
    with pytest.raises(DeepLSMError, match=r"e\.g\. sub-001 in column 'age'"):
        load_scores(p, ["sub-001"], None)


def test_participants_join_with_bids_masks(tmp_path, rng):
    """Masks found in a derivatives tree line up with participants.tsv rows by ``sub-<label>``."""
    for s in ("001", "002", "003"):
        _mask(rng, tmp_path / "derivatives" / "x" / f"sub-{s}" / "anat"
              / f"sub-{s}_space-{MNI}_label-lesion_mask.nii.gz")
    (tmp_path / "participants.tsv").write_text(PARTICIPANTS)
    cohort = load_lesions(tmp_path, verbose=False)
    with pytest.warns(UserWarning, match="ignoring 1 score rows"):
        df = load_scores(tmp_path / "participants.tsv", cohort.subject_ids, ["naming"])
    assert df["naming"].tolist() == [7.0, 9.25, 12.5]

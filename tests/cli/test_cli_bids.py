"""``deeplsm vlsm`` on a BIDS tree: derivatives with sessions, scores from participants.tsv."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from deeplsm.cli import main

SHAPE = (7, 8, 9)
SPACE = "MNI152NLin2009cAsym"


@pytest.fixture
def bids(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """A BIDS root: raw T1w images, derivatives/lesions/sub-*/ses-*/anat masks (ses-1 for every
    subject, ses-2 for some), participants.tsv in another order with n/a and text columns."""
    rng = np.random.default_rng(3)
    root = tmp_path / "bids"
    n = 24
    ids = [f"sub-{i:03d}" for i in range(1, n + 1)]
    masks = {}
    for i, sid in enumerate(ids):
        for ses in (1, 2) if i % 5 == 0 else (1,):
            data = (rng.random(SHAPE) < 0.35).astype(np.uint8)
            folder = root / "derivatives" / "lesions" / sid / f"ses-{ses}" / "anat"
            folder.mkdir(parents=True)
            nib.save(nib.Nifti1Image(data, np.eye(4)),
                     folder / f"{sid}_ses-{ses}_space-{SPACE}_label-lesion_mask.nii.gz")
            masks[f"{sid}_ses-{ses}"] = data
        raw = root / sid / "ses-1" / "anat"
        raw.mkdir(parents=True)
        nib.save(nib.Nifti1Image(rng.random(SHAPE).astype(np.float32), np.eye(4)),
                 raw / f"{sid}_ses-1_T1w.nii.gz")  # not a lesion mask: ignored
    ses1 = np.stack([masks[f"{s}_ses-1"] for s in ids])
    naming = 20 - 6 * ses1[:, 3, 4, 5] + rng.normal(size=n)
    table = pd.DataFrame({
        "participant_id": [*ids, "sub-999"],  # sub-999 has no mask
        "age": [f"{a:.0f}" for a in rng.normal(60, 8, n)] + ["n/a"],
        "sex": [*rng.choice(["M", "F"], n), "n/a"],
        "naming": [f"{v:.4f}" for v in naming] + ["n/a"],
    })
    table.loc[4, "age"] = "n/a"  # missing in a column nobody asks for
    table = table.sample(frac=1.0, random_state=1)  # rows in another order than the files
    table.to_csv(root / "participants.tsv", sep="\t", index=False)
    (root / "dataset_description.json").write_text('{"Name": "test", "BIDSVersion": "1.9.0"}')
    return root, masks


def test_vlsm_on_bids_derivatives_with_sessions(bids, tmp_path, capsys):
    root, masks = bids
    out = tmp_path / "vlsm"
    args = ["vlsm", "--lesions", str(root), "--scores", str(root / "participants.tsv"),
            "--outputs", "naming", "--permutations", "0", "--min-subjects", "3", "--quiet",
            "--out", str(out)]
    # sub-001 has masks from two sessions: one clear error, nothing written.
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("deeplsm: error:") == 1 and "Traceback" not in err
    assert "sub-001 has lesion masks from 2 sessions (1, 2)" in err and "--session" in err
    assert not out.exists()

    assert main([*args, "--session", "1"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["session"] == "1"
    # Independent check of the join: scipy's t-test per voxel on the masks read by nibabel and
    # the scores read by pandas, matched by participant_id.
    ref = pd.read_csv(root / "participants.tsv", sep="\t", na_values="n/a").set_index("participant_id")
    ids = sorted(s for s in ref.index if f"{s}_ses-1" in masks)
    X = np.stack([masks[f"{s}_ses-1"] for s in ids]).reshape(len(ids), -1)
    y = ref.loc[ids, "naming"].to_numpy(float)
    stat = nib.load(out / "naming_stat.nii.gz").get_fdata().reshape(-1)
    tested = nib.load(out / "mask.nii.gz").get_fdata().reshape(-1) > 0
    assert tested.sum() > 100
    for v in np.flatnonzero(tested):
        expected = stats.ttest_ind(y[X[:, v] == 1], y[X[:, v] == 0]).statistic
        assert stat[v] == pytest.approx(expected, rel=1e-4, abs=1e-4)
    assert stat.reshape(SHAPE)[3, 4, 5] < -3  # the voxel that drives the score

    # Each session as its own subject: IDs sub-001_ses-1 are not in participants.tsv.
    assert main([*args, "--session", "all", "--overwrite"]) == 2
    assert "lesion subjects have no score, e.g. sub-001_ses-1" in capsys.readouterr().err


def test_relative_bids_paths(bids, tmp_path, monkeypatch):
    root, _ = bids
    monkeypatch.chdir(root / "derivatives")
    assert main(["vlsm", "--lesions", "lesions", "--scores", "../participants.tsv",
                 "--outputs", "naming", "--session", "ses-2", "--permutations", "0",
                 "--min-subjects", "1", "--quiet", "--out", "out"]) == 0
    s = json.loads((root / "derivatives" / "out" / "summary.json").read_text())
    assert s["outputs"]["naming"]["n_subjects"] == 5

"""``deeplsm synth`` and ``deeplsm simulate`` end to end, and the real LESYMAP masks."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from deeplsm.cli import main
from deeplsm.cohort import load_lesions
from deeplsm.simulate import simulate
from tests.conftest import LESYMAP_DIR


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "synth"
    assert main(["synth", "--n", "150", "--voxel-size", "5", "--seed", "3", "--out", str(out),
                 "--quiet"]) == 0
    return out


def test_synth_writes_bids_folder(synth_dir):
    files = sorted(synth_dir.glob("sub-*_lesion.nii.gz"))
    assert len(files) == 150
    tsv = pd.read_csv(synth_dir / "participants.tsv", sep="\t")
    img = nib.load(files[0])
    assert img.header.get_zooms() == (5.0, 5.0, 5.0)
    vol_ml = np.asarray(img.dataobj).sum() * 125 / 1000
    assert tsv.loc[0, "lesion_volume_ml"] == pytest.approx(vol_ml, abs=1e-3)


def test_simulate_outputs_and_determinism(synth_dir, tmp_path, capsys):
    args = ["simulate", "--lesions", str(synth_dir), "--n-rois", "2", "--roi-size", "2",
            "--min-patients", "10", "--seed", "5", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    for name in ("scores.csv", "rois.nii.gz"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    scores = pd.read_csv(tmp_path / "a" / "scores.csv")
    assert list(scores.columns) == ["subject", "score_1", "score_2"]
    rois = nib.load(tmp_path / "a" / "rois.nii.gz")
    labels = np.asarray(rois.dataobj)
    assert sorted(np.unique(labels)) == [0, 1, 2] and (labels == 1).sum() == 8
    meta = json.loads((tmp_path / "a" / "simulation.json").read_text())
    assert meta["seed"] == 5 and len(meta["centres_vox"]) == 2 and len(meta["centres_mm"]) == 2
    assert "nibabel" in meta["versions"]
    cohort = load_lesions(synth_dir, verbose=False)
    mask = labels == 2
    np.testing.assert_allclose(scores["score_2"], cohort.data[:, mask].sum(1) / 8, atol=1e-7)
    # Centre in mm is the cube's geometric centre through the affine (side 2: half-voxel shift).
    c = np.asarray(meta["centres_vox"][0]) - 0.5
    np.testing.assert_allclose(meta["centres_mm"][0], rois.affine[:3, :3] @ c + rois.affine[:3, 3],
                               atol=1e-3)


def test_simulate_bad_option(capsys, synth_dir, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["simulate", "--lesions", str(synth_dir), "--roi-size", "0", "--out", str(tmp_path / "x")])
    assert exc.value.code == 2
    assert "argument --roi-size: must be an integer >= 1, got '0'" in capsys.readouterr().err



@pytest.mark.skipif(not LESYMAP_DIR.is_dir(), reason="../shared/data/lesymap-lesions not present")
def test_real_lesymap_masks_on_the_paper_grid():
    """131 real 1 mm stroke masks → the paper grid → 3 ROIs of 8 voxels."""
    cohort = load_lesions(LESYMAP_DIR, grid="paper", verbose=False)
    assert cohort.n_subjects == 131 and cohort.shape == (87, 109, 93)
    vol = cohort.lesion_volumes_ml()
    assert 40 < np.median(vol) < 120  # README: median ~76,000 mm^3
    sim = simulate(cohort, n_rois=3, roi_size=8, min_patients=10, random_state=0)
    freq = cohort.frequency_map()
    for k in (1, 2, 3):
        assert freq[sim.labels == k].min() >= 10
    assert all(c[0] < 0 for c in sim.centres_mm)  # left-hemisphere strokes

"""Number options of every command: the shared ranges, one line, exit code 2, nothing written."""

from __future__ import annotations

import pytest

from deeplsm.cli import main

SOURCES = ["--lesions", "x", "--scores", "y"]


@pytest.mark.parametrize(("argv", "message"), [
    (["synth", "--n", "0"], "argument --n: must be an integer >= 1, got '0'"),
    (["synth", "--seed", "-1"], "argument --seed: must be an integer from 0 to 4294967295, got '-1'"),
    (["synth", "--voxel-size", "inf"], "argument --voxel-size: must be a number > 0, got 'inf'"),
    (["simulate", "--lesions", "x", "--noise", "-0.5"],
     "argument --noise: must be a number >= 0, got '-0.5'"),
    (["simulate", "--lesions", "x", "--volume-weight", "nan"],
     "argument --volume-weight: must be a number, got 'nan'"),
    (["simulate", "--lesions", "x", "--n-rois", "2.5"],
     "argument --n-rois: must be an integer >= 1, got '2.5'"),
    (["simulate", "--lesions", "x", "--threshold", "0"],
     "argument --threshold: must be a number > 0 and <= 1, got '0'"),
    (["explain", "--run", "r", "--stdevs", "-1"], "argument --stdevs: must be a number >= 0, got '-1'"),
    (["explain", "--run", "r", "--occlusion-window", "0"],
     "argument --occlusion-window: must be an integer >= 1 (voxels) or a length in mm such as '12mm', "
     "got '0'"),
    (["explain", "--run", "r", "--occlusion-stride", "2.5"],
     "argument --occlusion-stride: must be an integer"),
    (["explain", "--run", "r", "--seed", "x"], "argument --seed: must be an integer from 0 to 4294967295"),
    (["vlsm", *SOURCES, "--alpha", "1"], "argument --alpha: must be a number > 0 and < 1, got '1'"),
    (["vlsm", *SOURCES, "--cluster-p", "0"], "argument --cluster-p: must be a number > 0 and < 1, got '0'"),
    (["vlsm", *SOURCES, "--min-subjects", "1.5"],
     "argument --min-subjects: must be an integer >= 1, or a number > 0 and < 1, got '1.5'"),
    (["vlsm", *SOURCES, "--permutations", "-5"],
     "argument --permutations: must be an integer >= 0, got '-5'"),
    (["svr", *SOURCES, "--cv", "1"], "argument --cv: must be an integer >= 2, got '1'"),
    (["svr", *SOURCES, "--epsilon", "-0.1"], "argument --epsilon: must be a number >= 0, got '-0.1'"),
    (["faces", "--synthetic", "--n-explain", "-1"],
     "argument --n-explain: must be an integer >= 0, got '-1'"),
    (["faces", "--synthetic", "--lr", "0"], "argument --lr: must be a number > 0, got '0'"),
])
def test_bad_number_option(tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--out", str(out)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert "Traceback" not in err
    assert not out.exists()


def test_simulate_roi_larger_than_the_grid_is_caught_at_the_door(lesion_folder, tmp_path, capsys):
    out = tmp_path / "sim"
    rc = main(["simulate", "--lesions", str(lesion_folder), "--roi-size", "100", "--min-patients", "1",
               "--out", str(out), "--quiet"])
    assert rc == 2
    err = capsys.readouterr().err
    assert err == ("deeplsm: error: roi_size = 100: the cube side must be from 1 to 6 voxels, smaller "
                   "than the 7x8x9 analysis grid\n")
    assert not out.exists()

"""``--direction`` on ``vlsm``, ``svr``, ``ridge`` and ``explain``."""

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from deeplsm.cli import main
from deeplsm.explain import load_group_sums
from tests.cli.test_cli_explain_evaluate import tiny_run  # noqa: F401  (fixture)


@pytest.fixture
def files(tmp_path):
    """30 random maps on a (7, 8, 9) grid; ``naming`` is lower where (3, 4, 5) is lesioned."""
    rng = np.random.default_rng(0)
    n, shape = 30, (7, 8, 9)
    (tmp_path / "lesions").mkdir()
    data = (rng.random((n, *shape)) < 0.3).astype(np.uint8)
    ids = [f"sub-{i:02d}" for i in range(n)]
    for sid, d in zip(ids, data):
        nib.save(nib.Nifti1Image(d.astype(np.float32), np.eye(4)),
                 tmp_path / "lesions" / f"{sid}_lesion.nii.gz")
    pd.DataFrame({"subject": ids, "naming": -2.0 * data[:, 3, 4, 5] + rng.normal(size=n),
                  "motor score": rng.normal(size=n)}).to_csv(tmp_path / "scores.csv", index=False)
    return tmp_path


def _fit(command, files, scores, out, *extra):
    return main([command, "--lesions", str(files / "lesions"), "--scores", str(scores),
                 "--out", str(files / out), "--quiet", "--min-subjects", "3", "--permutations", "19",
                 *extra])


def _img(path):
    return np.asarray(nib.load(path).dataobj, dtype=np.float64)


@pytest.mark.parametrize("command", ["vlsm", "svr", "ridge"])
def test_direction_picks_the_one_sided_tail_and_is_recorded(files, command):
    """``naming`` is lower when (3, 4, 5) is lesioned. With ``--direction naming=lower_is_worse
    --tail one-sided`` it is tested with tail 'less' (and 'motor score' with 'greater'): the same
    p-values as the negated naming score tested with 'greater'."""
    table = pd.read_csv(files / "scores.csv")
    table["naming"] = -table["naming"]
    table.to_csv(files / "negated.csv", index=False)
    assert _fit(command, files, files / "scores.csv", "a", "--direction", "naming=lower-is-worse",
                "--tail", "one-sided") == 0
    assert _fit(command, files, files / "negated.csv", "b", "--tail", "one-sided") == 0
    sa = json.loads((files / "a" / "summary.json").read_text())["outputs"]
    sb = json.loads((files / "b" / "summary.json").read_text())["outputs"]
    assert sa["naming"]["direction"] == "lower_is_worse" and sa["naming"]["params"]["tail"] == "less"
    assert sa["motor score"]["direction"] == "higher_is_worse"
    assert sa["motor score"]["params"]["tail"] == "greater"
    assert sb["naming"]["direction"] == "higher_is_worse" and sb["naming"]["params"]["tail"] == "greater"
    # the maps keep the estimator's sign; the p-values are those of the negated score
    tol = 1e-4 if command == "svr" else 1e-6
    stat_a, stat_b = _img(files / "a" / "naming_stat.nii.gz"), _img(files / "b" / "naming_stat.nii.gz")
    np.testing.assert_allclose(stat_a, -stat_b, atol=tol * np.abs(stat_a).max())
    assert stat_a[3, 4, 5] < 0
    pa, pb = _img(files / "a" / "naming_p.nii.gz"), _img(files / "b" / "naming_p.nii.gz")
    if command == "svr":  # libsvm's tolerance may flip a near-tie of one permutation
        assert np.mean(pa != pb) < 0.02
    else:
        np.testing.assert_array_equal(pa, pb)
    assert pa[3, 4, 5] < 0.1


def test_vlsm_one_sided_p_values_match_scipy(files):
    """Independent check of the tail VLSM gets: scipy's one-sided t-test, 'less' for naming."""
    assert _fit("vlsm", files, files / "scores.csv", "a", "--direction", "lower_is_worse",
                "--tail", "one-sided", "--outputs", "naming") == 0
    from deeplsm.cohort import load_lesions

    data = load_lesions(str(files / "lesions")).data
    y = pd.read_csv(files / "scores.csv")["naming"].to_numpy()
    p = _img(files / "a" / "naming_p.nii.gz")
    mask = _img(files / "a" / "mask.nii.gz") > 0
    checked = 0
    for v in zip(*np.nonzero(mask)):
        les = data[(slice(None), *v)] == 1
        want = stats.ttest_ind(y[les], y[~les], alternative="less").pvalue
        assert p[v] == pytest.approx(want, rel=1e-4)
        checked += 1
    assert checked > 100


def test_direction_errors_are_one_line(files, capsys):
    rc = _fit("vlsm", files, files / "scores.csv", "out", "--direction",
              "memory=lower_is_worse,naming=two_sided")
    assert rc == 2
    err = capsys.readouterr().err
    assert err == ("deeplsm: error: --direction names unknown score(s) 'memory'; the scores are "
                   "naming, motor score\n")
    assert not (files / "out").exists()
    for bad in ("down", "naming=down", "=lower_is_worse"):
        with pytest.raises(SystemExit) as exit_info:
            _fit("ridge", files, files / "scores.csv", "out", "--direction", bad)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert "argument --direction" in err and len(err.strip().splitlines()) == 1, err
    assert not (files / "out").exists()


def test_explain_direction(tiny_run, capsys):  # noqa: F811
    rc = main(["explain", "--run", str(tiny_run), "--methods", "ig,occlusion", "--occlusion-window",
               "3", "--occlusion-stride", "2", "--n-steps", "4", "--quiet",
               "--direction", "score_1=lower_is_worse,score_2=two_sided"])
    assert rc == 0
    maps = tiny_run / "maps"
    sums = load_group_sums(maps)
    for method in ("ig", "occlusion"):
        for output, turn in (("score_1", np.negative), ("score_2", np.abs)):
            s = turn(sums[(method, output)])
            want = np.maximum(s, 0) / s.max() if method == "ig" else (s - s.min()) / np.ptp(s)
            np.testing.assert_allclose(_img(maps / f"{method}_{output}.nii.gz"), want, atol=1e-6)
    entries = json.loads((maps / "maps.json").read_text())["maps"]
    assert {e["output"]: e["direction"] for e in entries} == {"score_1": "lower_is_worse",
                                                              "score_2": "two_sided"}
    capsys.readouterr()
    assert main(["explain", "--run", str(tiny_run), "--methods", "ig", "--direction",
                 "naming=lower_is_worse"]) == 2
    assert "error: direction names unknown score(s) 'naming'" in capsys.readouterr().err

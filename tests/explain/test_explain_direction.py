"""Score direction in the group maps: a network whose output is negated (or 1 - output), explained
with ``lower_is_worse``, gives the original network's maps and localisation metrics."""

import json
import sys

import nibabel as nib
import numpy as np
import pytest
import torch
from test_group_and_run import make_fake_run

from deeplsm.exceptions import DeepLSMError
from deeplsm.explain import explain_run, load_group_sums, normalise_map, save_group_maps

METHODS = ("ig", "gradshap", "occlusion")
PARAMS = {"n_steps": 6, "n_samples": 3, "random_state": 0, "window": 3, "stride": 2}


class Turned(torch.nn.Module):
    """``offset - f(x)``: the same network, its score reversed (``-f``, or ``1 - f`` for a
    score in [0, 1] such as ``1 - fraction of the ROI lesioned``)."""

    def __init__(self, net, offset=0.0):
        super().__init__()
        self.net, self.offset = net, offset

    def forward(self, x):
        return self.offset - self.net(x)


def _turn(run, offset):
    """Wrap every network of a fake run, keeping shared networks shared (multi-output)."""
    wrapped = {}
    for name, (net, col) in run._nets.items():
        wrapped.setdefault(id(net), Turned(net, offset))
        run._nets[name] = (wrapped[id(net)], col)


def _maps(folder):
    return {f.name: np.asarray(nib.load(f).dataobj) for f in sorted(folder.glob("*.nii.gz"))}


def _truth(run, tmp_path, rng):
    """Two random ROIs (labels 1, 2 for score_1, score_2) on the run's grid."""
    lab = np.zeros(run.cohort.shape, np.int16)
    lab[2:5, 2:5, 2:5] = 1
    lab[4:7, 5:8, 5:8] = 2
    path = tmp_path / "rois.nii.gz"
    nib.Nifti1Image(lab, run.cohort.affine).to_filename(path)
    return path


def test_normalise_map_direction_by_hand():
    a = np.array([[-4.0, 0.0], [1.0, 2.0]])
    # lower_is_worse: the negative part, negated, over its maximum
    np.testing.assert_allclose(normalise_map(a, direction="lower_is_worse"), [[1, 0], [0, 0]])
    # two_sided: |a| over max |a|
    np.testing.assert_allclose(normalise_map(a, direction="two_sided"), [[1, 0], [0.25, 0.5]])
    # linear normalisation of -a: (max(a) - a) / (max(a) - min(a))
    np.testing.assert_allclose(normalise_map(a, positive=False, direction="lower_is_worse"),
                               (2 - a) / 6)
    np.testing.assert_allclose(normalise_map(a, positive=False, direction="two_sided"), np.abs(a) / 4)
    np.testing.assert_array_equal(normalise_map(a), normalise_map(a, direction="higher_is_worse"))
    assert not normalise_map(np.ones(3), direction="lower_is_worse").any()  # no deficit side
    with pytest.raises(DeepLSMError, match="must be one of higher_is_worse"):
        normalise_map(a, direction="down")


@pytest.mark.parametrize("multi", [True, False], ids=["multi", "single"])
@pytest.mark.parametrize("offset", [0.0, 1.0], ids=["minus_f", "one_minus_f"])
def test_reversed_network_with_lower_is_worse_gives_the_same_maps(tmp_path, rng, monkeypatch,
                                                                  multi, offset):
    """The issue's test for the CNN maps: the same network with its output reversed has IG,
    GradientSHAP and occlusion attributions of the opposite sign; ``lower_is_worse`` must turn
    them back, so every group map (IG and GS positive part, occlusion min-max and positive part)
    and every localisation metric equals the original's within float error: exact for ``-f``;
    for ``1 - f`` float32 rounds each output near 1 (about 6e-8), which a tiny random net's small
    output differences turn into up to ~1e-4 of a normalised map."""
    from deeplsm.evaluate import evaluate_maps

    run, fake = make_fake_run(tmp_path / "run", rng, multi=multi)
    monkeypatch.setitem(sys.modules, "deeplsm.train", fake)
    truth = _truth(run, tmp_path, rng)
    tol = 1e-6 if offset == 0 else 2e-4
    occ_pos = offset != 0  # occlusion's min-max normalisation, then its positive part
    kw = dict(methods=METHODS, occlusion_positive=occ_pos, verbose=False, **PARAMS)
    explain_run(tmp_path / "run", out_dir=tmp_path / "orig", **kw)
    _turn(run, offset)
    explain_run(tmp_path / "run", direction="lower_is_worse", out_dir=tmp_path / "turned", **kw)
    # without the direction, the reversed network's maps are other maps
    explain_run(tmp_path / "run", out_dir=tmp_path / "ignored", **kw)
    orig, turned, ignored = (_maps(tmp_path / k) for k in ("orig", "turned", "ignored"))
    assert len(orig) == 6 and orig.keys() == turned.keys()
    for name in orig:
        assert orig[name].max() == pytest.approx(1.0), name  # not a blank map
        np.testing.assert_allclose(turned[name], orig[name], atol=tol, err_msg=name)
        assert not np.allclose(ignored[name], orig[name], atol=1e-3), name
    # the raw sums stay unturned: the negated original sums
    so, st = load_group_sums(tmp_path / "orig"), load_group_sums(tmp_path / "turned")
    for key in so:
        np.testing.assert_allclose(st[key], -so[key], atol=tol * np.abs(so[key]).max())
    res = {k: evaluate_maps(tmp_path / k, truth, mask="none")["results"] for k in ("orig", "turned")}
    n = 0
    for method, per in res["orig"].items():
        for output, m in per.items():
            t = res["turned"][method][output]
            for k in ("pr_auc", "pr_auc_trapezoid", "cdc", "dice_best", "peak_distance_mm",
                      "com_distance_mm"):
                assert t[k] == pytest.approx(m[k], rel=10 * tol, abs=10 * tol), (method, output, k)
                n += 1
    assert n == 6 * 6
    manifest = json.loads((tmp_path / "turned" / "maps.json").read_text())
    assert {e["direction"] for e in manifest["maps"]} == {"lower_is_worse"}
    assert "negated where direction is lower_is_worse" in manifest["normalisation"]


def test_two_sided_and_per_output_directions(tmp_path, rng, monkeypatch):
    """A mapping sets each output's direction (the others keep the default); two_sided is the
    absolute value of the sum, worked out here from the written sums."""
    _, fake = make_fake_run(tmp_path / "run", rng, multi=True)
    monkeypatch.setitem(sys.modules, "deeplsm.train", fake)
    out = tmp_path / "maps"
    explain_run(tmp_path / "run", methods=("ig", "occlusion"), direction={"score_2": "two-sided"},
                out_dir=out, verbose=False, **PARAMS)
    sums = load_group_sums(out)
    for method in ("ig", "occlusion"):
        s1, s2 = sums[(method, "score_1")], sums[(method, "score_2")]
        m1 = np.asarray(nib.load(out / f"{method}_score_1.nii.gz").dataobj)
        m2 = np.asarray(nib.load(out / f"{method}_score_2.nii.gz").dataobj)
        want1 = np.maximum(s1, 0) / s1.max() if method == "ig" else (s1 - s1.min()) / np.ptp(s1)
        a2 = np.abs(s2)
        want2 = a2 / a2.max() if method == "ig" else (a2 - a2.min()) / np.ptp(a2)
        np.testing.assert_allclose(m1, want1, atol=1e-6)
        np.testing.assert_allclose(m2, want2, atol=1e-6)
    entries = {e["file"]: e["direction"] for e in json.loads((out / "maps.json").read_text())["maps"]}
    assert entries["ig_score_1.nii.gz"] == "higher_is_worse" and entries["ig_score_2.nii.gz"] == "two_sided"


def test_unknown_output_in_direction_is_an_error_before_any_work(tmp_path, rng, monkeypatch):
    _, fake = make_fake_run(tmp_path / "run", rng)
    monkeypatch.setitem(sys.modules, "deeplsm.train", fake)

    def boom(*args, **kwargs):
        raise AssertionError("attributions computed despite a bad direction")

    monkeypatch.setattr("deeplsm.explain._run.explain_cohort", boom)
    with pytest.raises(DeepLSMError, match=r"direction names unknown score\(s\) 'naming', 'x'; "
                                           r"the scores are score_1, score_2"):
        explain_run(tmp_path / "run", direction={"naming": "lower_is_worse", "x": "two_sided",
                                                 "score_1": "lower_is_worse"}, verbose=False)
    with pytest.raises(DeepLSMError, match="direction = 'down': must be one of"):
        explain_run(tmp_path / "run", direction="down", verbose=False)
    # an output the run has but that is not explained this time may be named
    monkeypatch.undo()
    monkeypatch.setitem(sys.modules, "deeplsm.train", fake)
    paths = explain_run(tmp_path / "run", methods=("occlusion",), outputs=["score_1"],
                        direction={"score_2": "lower_is_worse"}, verbose=False, **PARAMS)
    assert set(paths["occlusion"]) == {"score_1"}


def test_multiclass_columns_take_their_outputs_direction(tmp_path, rng, monkeypatch):
    run, fake = make_fake_run(tmp_path / "run", rng)
    net = run.model_for("score_1")[0]
    run._nets = {"grade": (net, [0, 1])}
    run.task.names = ["grade"]
    monkeypatch.setitem(sys.modules, "deeplsm.train", fake)
    out = tmp_path / "maps"
    explain_run(tmp_path / "run", methods=("occlusion",), direction={"grade": "lower_is_worse"},
                out_dir=out, verbose=False, **PARAMS)
    sums = load_group_sums(out)
    for k in (0, 1):
        s = -sums[("occlusion", f"grade_class{k}")]
        np.testing.assert_allclose(np.asarray(nib.load(out / f"occlusion_grade_class{k}.nii.gz").dataobj),
                                   (s - s.min()) / np.ptp(s), atol=1e-6)


def test_save_group_maps_directions(tmp_path, rng):
    """save_group_maps on its own: outputs not in ``directions`` keep the default."""
    s = rng.normal(size=(5, 6, 7))
    paths = save_group_maps({("ig", "a"): s, ("ig", "b"): s}, np.eye(4), tmp_path / "m",
                            n_subjects=2, directions={"b": "lower_is_worse"})
    a = np.asarray(nib.load(paths["ig"]["a"]).dataobj)
    b = np.asarray(nib.load(paths["ig"]["b"]).dataobj)
    np.testing.assert_allclose(a, np.maximum(s, 0) / s.max(), atol=1e-6)
    np.testing.assert_allclose(b, np.maximum(-s, 0) / (-s).max(), atol=1e-6)
    with pytest.raises(DeepLSMError, match="direction of 'a'"):
        save_group_maps({("ig", "a"): s}, np.eye(4), tmp_path / "m2", n_subjects=2,
                        directions={"a": "sideways"})

import json
import sys
import types

import nibabel as nib
import numpy as np
import pytest
import torch
from _tiny_nets import SHAPE, TinyNet

from deeplsm.cohort import LesionCohort
from deeplsm.exceptions import DeepLSMError
from deeplsm.explain import (
    explain_cohort,
    explain_run,
    load_group_sums,
    normalise_map,
    save_group_maps,
)


def test_normalise_map():
    a = np.array([[-3.0, 0.0], [1.0, 2.0]])
    np.testing.assert_allclose(normalise_map(a), [[0, 0], [0.5, 1]])
    np.testing.assert_allclose(normalise_map(a, positive=False), [[0, 0.6], [0.8, 1]])
    assert not normalise_map(-np.ones(3)).any()
    assert not normalise_map(np.ones(3), positive=False).any()
    with pytest.raises(DeepLSMError, match="NaN"):
        normalise_map(np.array([np.nan]))


def test_save_and_reload_group_maps(tmp_path, rng):
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    sums = {("ig", "score_1"): rng.normal(size=SHAPE), ("occlusion", "score_1"): rng.normal(size=SHAPE)}
    paths = save_group_maps(sums, affine, tmp_path / "maps", n_subjects=4)
    img = nib.load(paths["ig"]["score_1"])
    np.testing.assert_allclose(img.affine, affine)
    d = np.asarray(img.dataobj)
    assert d.min() == 0 and d.max() == pytest.approx(1)
    assert np.all(d[sums[("ig", "score_1")] <= 0] == 0)  # positive part for IG
    occ = np.asarray(nib.load(paths["occlusion"]["score_1"]).dataobj)
    assert occ.min() == 0 and np.sum(occ > 0) == occ.size - 1  # min-max for occlusion
    back = load_group_sums(tmp_path / "maps")
    np.testing.assert_allclose(back[("ig", "score_1")], sums[("ig", "score_1")], rtol=1e-6)
    manifest = json.loads((tmp_path / "maps" / "maps.json").read_text())
    assert manifest["n_subjects"] == 4 and len(manifest["maps"]) == 2


def _vols(rng, n=3):
    return (rng.random((n, *SHAPE)) < 0.05).astype(np.uint8)


def test_explain_cohort_sums_subjects(rng):
    torch.manual_seed(0)
    net = TinyNet()
    vols = _vols(rng)
    sums, seconds = explain_cohort({"a": (net, 0), "b": (net, 2)}, vols, methods=("ig", "occlusion"),
                                   n_steps=4, window=3, stride=2, subject_batch=2, verbose=False)
    assert set(sums) == {("ig", "a"), ("ig", "b"), ("occlusion", "a"), ("occlusion", "b")}
    assert set(seconds) == {"ig", "occlusion"}
    from deeplsm.explain import LesionAwareOcclusion

    per = LesionAwareOcclusion(net).attribute(torch.from_numpy(vols[:, None].astype(np.float32)),
                                              target=2, window=3, stride=2)
    np.testing.assert_allclose(sums[("occlusion", "b")], per.double().sum((0, 1)).numpy(), atol=1e-6)
    with pytest.raises(DeepLSMError, match="unknown method 'shap'"):
        explain_cohort({"a": (net, 0)}, vols, methods=("shap",))


class _FakeRun:
    """Stands in for deeplsm.train.TrainedRun (the run-directory contract)."""

    def __init__(self, cohort, split, nets):
        self.cohort, self.split, self._nets = cohort, split, nets
        self.task = types.SimpleNamespace(names=list(nets))

    def model_for(self, name):
        return self._nets[name]


def make_fake_run(run_dir, rng, n=6, multi=True):
    """A run folder plus a fake ``deeplsm.train`` module whose load_trained reads it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    affine[:3, 3] = [-10, -12, -8]
    cohort = LesionCohort([f"sub-{i:02d}" for i in range(n)], _vols(rng, n), affine)
    split = {s: ("test" if i % 2 else "train") for i, s in enumerate(cohort.subject_ids)}
    torch.manual_seed(0)
    net = TinyNet(n_out=2)
    nets = ({"score_1": (net, 0), "score_2": (net, 1)} if multi
            else {"score_1": (TinyNet(1), 0), "score_2": (TinyNet(1), 0)})
    run = _FakeRun(cohort, split, nets)

    def load_trained(path):
        if str(path) != str(run_dir):
            raise DeepLSMError(f"not a run: {path}")
        return run

    return run, types.SimpleNamespace(load_trained=load_trained)


def test_explain_run_writes_maps(tmp_path, rng, monkeypatch):
    run, fake = make_fake_run(tmp_path / "run", rng, multi=False)
    monkeypatch.setitem(sys.modules, "deeplsm.train", fake)
    paths = explain_run(tmp_path / "run", methods=("gradshap", "occlusion"), window="6mm", stride=1,
                        n_samples=2, random_state=0, verbose=False)
    assert set(paths) == {"gradshap", "occlusion"} and set(paths["occlusion"]) == {"score_1", "score_2"}
    img = nib.load(tmp_path / "run" / "maps" / "occlusion_score_2.nii.gz")
    np.testing.assert_allclose(img.affine, run.cohort.affine)
    assert img.shape == SHAPE
    manifest = json.loads((tmp_path / "run" / "maps" / "maps.json").read_text())
    assert manifest["subject_ids"] == ["sub-01", "sub-03", "sub-05"]
    assert manifest["parameters"]["window"] == [2, 2, 2]
    with pytest.raises(DeepLSMError, match="unknown output 'x'"):
        explain_run(tmp_path / "run", outputs=["x"], verbose=False)
    with pytest.raises(DeepLSMError, match="subjects must be"):
        explain_run(tmp_path / "run", subjects="val", verbose=False)


@pytest.mark.parametrize(("subjects", "expected"), [
    ("trainval", ["sub-00", "sub-02", "sub-04"]),  # the fake split: even = train, odd = test
    ("all", [f"sub-{i:02d}" for i in range(6)]),
])
def test_explain_run_subject_sets(tmp_path, rng, monkeypatch, subjects, expected):
    run, fake = make_fake_run(tmp_path / "run", rng)
    run.split["sub-02"] = "val"
    monkeypatch.setitem(sys.modules, "deeplsm.train", fake)
    explain_run(tmp_path / "run", methods=("occlusion",), window=3, stride=2, subjects=subjects,
                verbose=False)
    manifest = json.loads((tmp_path / "run" / "maps" / "maps.json").read_text())
    assert manifest["subject_ids"] == expected and manifest["subjects"] == subjects
    # The summed map is the sum over exactly those subjects (checked against the explainer).
    from deeplsm.explain import LesionAwareOcclusion

    idx = [run.cohort.subject_ids.index(s) for s in expected]
    vols = torch.from_numpy(run.cohort.data[idx][:, None].astype(np.float32))
    net, col = run.model_for("score_2")
    ref = LesionAwareOcclusion(net).attribute(vols, target=col, window=3, stride=2).double().sum((0, 1))
    np.testing.assert_allclose(load_group_sums(tmp_path / "run" / "maps")[("occlusion", "score_2")],
                               ref.numpy(), rtol=1e-5, atol=1e-7)


def test_explain_run_multiclass_output_per_class(tmp_path, rng, monkeypatch):
    run, fake = make_fake_run(tmp_path / "run", rng)
    net = run.model_for("score_1")[0]
    run._nets = {"grade": (net, [0, 1])}
    run.task.names = ["grade"]
    monkeypatch.setitem(sys.modules, "deeplsm.train", fake)
    paths = explain_run(tmp_path / "run", methods=("occlusion",), window=3, stride=2, verbose=False)
    assert set(paths["occlusion"]) == {"grade_class0", "grade_class1"}

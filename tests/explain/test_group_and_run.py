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


@pytest.mark.parametrize("content", ['{"maps": [{"method": "ig", "out', "[]", '{"maps": [{"file": 1}]}'])
def test_corrupt_manifest_is_an_error_before_anything_is_written(tmp_path, rng, content):
    """A maps.json that cannot be read used to be dropped silently (and the maps it listed with
    it); now saving into, or loading from, that folder says so and changes nothing."""
    maps = tmp_path / "maps"
    maps.mkdir()
    (maps / "maps.json").write_text(content)
    sums = {("ig", "score_1"): rng.normal(size=SHAPE)}
    with pytest.raises(DeepLSMError, match=r"maps\.json: the maps manifest is unreadable"):
        save_group_maps(sums, np.eye(4), maps, n_subjects=2)
    assert sorted(p.name for p in maps.iterdir()) == ["maps.json"]  # nothing written
    assert (maps / "maps.json").read_text() == content
    with pytest.raises(DeepLSMError, match="unreadable"):
        load_group_sums(maps)


def test_manifest_keeps_maps_written_earlier(tmp_path, rng):
    maps = tmp_path / "maps"
    save_group_maps({("ig", "score_1"): rng.normal(size=SHAPE)}, np.eye(4), maps, n_subjects=2)
    save_group_maps({("occlusion", "score_1"): rng.normal(size=SHAPE)}, np.eye(4), maps, n_subjects=2)
    assert set(load_group_sums(maps)) == {("ig", "score_1"), ("occlusion", "score_1")}


def test_explain_run_stops_on_a_corrupt_manifest_before_computing(tmp_path, rng, monkeypatch):
    _, fake = make_fake_run(tmp_path / "run", rng, multi=False)
    monkeypatch.setitem(sys.modules, "deeplsm.train", fake)
    (tmp_path / "run" / "maps").mkdir()
    (tmp_path / "run" / "maps" / "maps.json").write_text("{not json")

    def boom(*args, **kwargs):
        raise AssertionError("attributions computed despite the corrupt manifest")

    monkeypatch.setattr("deeplsm.explain._run.explain_cohort", boom)
    with pytest.raises(DeepLSMError, match="unreadable"):
        explain_run(tmp_path / "run", methods=("occlusion",), window=3, stride=2, verbose=False)


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

    def load_trained(path, map_location="cpu"):
        if str(path) != str(run_dir):
            raise DeepLSMError(f"not a run: {path}")
        run.map_location = map_location
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


def test_group_maps_get_cluster_tables(tmp_path, rng):
    import pandas as pd
    from scipy import ndimage

    affine = np.diag([-4.0, 4.0, 4.0, 1.0])
    affine[:3, 3] = [40, -60, -30]
    s = ndimage.gaussian_filter(rng.normal(size=(9, 10, 8)), 1.0)
    paths = save_group_maps({("ig", "score_1"): s, ("occlusion", "score_1"): s}, affine,
                            tmp_path / "maps", n_subjects=4)
    for method in ("ig", "occlusion"):
        norm = np.asarray(nib.load(paths[method]["score_1"]).dataobj)
        t = pd.read_csv(tmp_path / "maps" / f"{method}_score_1_clusters.tsv", sep="\t")
        top = t.iloc[0]
        # the top peak is the normalised map's maximum (1.0), at its voxel, in mm
        ijk = np.unravel_index(np.argmax(norm), norm.shape)
        assert top["peak_value"] == pytest.approx(1.0)
        np.testing.assert_allclose(top[["x_mm", "y_mm", "z_mm"]].to_numpy(dtype=float),
                                   affine[:3, :3] @ ijk + affine[:3, 3])
        # the default rule: face-connected voxels above half the maximum, >= 100 mm³ (2 voxels)
        lab, _ = ndimage.label(norm > 0.5)
        sizes = np.bincount(lab.ravel())[1:]
        assert sorted(t.loc[t["peak"] == 0, "size_voxels"]) == sorted(sizes[sizes >= 2])
    assert not list((tmp_path / "maps" / "sums").glob("*.tsv"))
    save_group_maps({("gradshap", "score_2"): s}, affine, tmp_path / "maps2", n_subjects=4,
                    clusters=False)
    assert not list((tmp_path / "maps2").glob("*.tsv"))

"""Training, metrics and explanations of the 2D part."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from deeplsm.exceptions import DeepLSMError
from deeplsm.faces import (
    explain_images,
    face_task,
    localisation,
    make_synthetic_faces,
    occlusion_geometry,
    region_masks,
    run_faces,
    table3,
)
from deeplsm.faces._run import pick_images, table3_markdown
from deeplsm.models import build_net


def test_occlusion_geometry_scales_the_paper():
    assert occlusion_geometry(200) == (15, 8)
    assert occlusion_geometry(64) == (5, 3)
    assert occlusion_geometry(16) == (3, 2)


def test_localisation_of_a_perfect_and_a_wrong_map():
    m = region_masks(32)["sex"]
    good = localisation(m.astype(float) + 0.01, m)
    assert good["peak_inside"] and good["pr_auc"] == pytest.approx(1.0)
    assert good["cdc"] > 0.9
    wrong = localisation(region_masks(32)["age"].astype(float), m)
    assert not wrong["peak_inside"] and wrong["pr_auc"] < 0.2
    assert wrong["peak_distance_px"] > 10


def test_table3_picks_the_paper_metric_per_kind():
    task = face_task()
    metrics = {g: {"test": {"age": {"mse": 10.0 * k}, "sex": {"accuracy": 0.5 + k / 10},
                            "ethnicity": {"balanced_accuracy": 0.25 * k, "accuracy": 0.9}}}
               for k, g in enumerate(("single", "multi"), start=1)}
    tab = table3(task, metrics)
    assert tab["metric"].tolist() == ["mse", "accuracy", "balanced_accuracy"]
    assert tab["multi"].tolist() == [20.0, 0.7, 0.5]
    md = table3_markdown(tab)
    assert "| age (mse) | 10.00 | 20.00 |" in md and "50.00%" in md


def test_pick_images_prefers_present_evidence_in_the_test_split():
    ds = make_synthetic_faces(40, image_size=16, random_state=0)
    split = np.array(["train", "val", "test", "test"] * 10)
    idx = pick_images(ds, split, 3)
    assert len(idx) == 3 and all(split[i] == "test" for i in idx)
    lab = ds.labels.iloc[idx[0]]
    assert lab["sex"] == 1 and lab["age"] >= ds.labels["age"].median()
    assert pick_images(ds, split, 2, image=ds.ids[0])[0] == 0
    with pytest.raises(DeepLSMError, match="not in the data set"):
        pick_images(ds, split, 1, image="nope")


def test_explain_images_shapes_and_predicted_class():
    torch.manual_seed(0)
    task = face_task()
    net = build_net(task, dims=2).eval()
    ds = make_synthetic_faces(2, image_size=16, random_state=0)
    maps = explain_images({"multi": net}, task, ds.images, window=3, stride=2, nt_samples=2,
                          gs_samples=2, ig_steps=4)
    assert set(maps) == {(o, m) for o in task.names for m in ("ig", "gradshap", "occlusion")}
    for v in maps.values():
        assert v.shape == (2, 16, 16) and (v >= 0).all() and np.isfinite(v).all()
    # one net per output gives the same keys
    singles = {o.name: build_net(task.subset([o.name]), dims=2).eval() for o in task}
    maps1 = explain_images(singles, task, ds.images[:1], methods=("occlusion",), window=3, stride=3)
    assert set(maps1) == {(o, "occlusion") for o in task.names}


@pytest.mark.parametrize("predicted", [1, 3])
def test_multiclass_output_is_explained_for_the_predicted_class(predicted):
    """The ethnicity map is captum's occlusion of the class the network predicts (its softmax
    column), not of class 0: checked against captum.attr.Occlusion on the 2D net directly."""
    from captum.attr import Occlusion

    torch.manual_seed(0)
    task = face_task()
    net = build_net(task, dims=2).eval()
    cols = task.columns["ethnicity"]
    ds = make_synthetic_faces(2, image_size=16, random_state=0)
    x = torch.from_numpy(ds.images.astype(np.float32) / 255.0)
    with torch.no_grad():  # just enough bias for class `predicted` to win on every image
        z = net.logits(x)[:, cols]
        gap = (z.max(1).values - z[:, predicted]).max()
        net.head.branches[task.names.index("ethnicity")][-1].bias[predicted] += gap + 0.05
        assert (net(x)[:, cols].argmax(1) == predicted).all()
    maps = explain_images({"multi": net}, task, ds.images, methods=("occlusion",), window=3, stride=2)
    occ = Occlusion(net)

    def reference(target):
        a = occ.attribute(x, sliding_window_shapes=(3, 3, 3), strides=(3, 2, 2), baselines=0.0,
                          target=target)
        return a.sum(1).abs().numpy()

    got = maps[("ethnicity", "occlusion")]
    np.testing.assert_allclose(got, reference(cols[predicted]), atol=1e-6)
    assert np.abs(got - reference(cols[0])).max() > 1e-4  # class 0's map is another map


def test_run_faces_rejects_bad_settings(tmp_path):
    ds = make_synthetic_faces(20, image_size=16, random_state=0)
    with pytest.raises(DeepLSMError, match="mode must be one of"):
        run_faces(tmp_path / "a", ds, mode="dual")
    with pytest.raises(DeepLSMError, match="unknown method"):
        run_faces(tmp_path / "a", ds, methods=("lime",))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x").write_text("")
    with pytest.raises(DeepLSMError, match="not written by deeplsm"):
        run_faces(tmp_path / "b", ds)
    with pytest.raises(DeepLSMError, match="weights file does not exist"):
        run_faces(tmp_path / "c", ds, weights=tmp_path / "none.pth")
    with pytest.raises(DeepLSMError, match="do not fit"):
        run_faces(tmp_path / "d", ds, occlusion_window=20)
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()


def test_multi_output_occlusion_peaks_inside_each_region(tmp_path):
    """After a short training, the multi-output model's occlusion map of every label peaks in that
    label's region.

    Explained are test images whose evidence stands out from the zero baseline (cross present,
    disc at least median brightness). A majority of the three images is required per label:
    with a zero baseline a class the network treats as its default (after a short training,
    sometimes red) has no evidence of its own to occlude.
    """
    ds = make_synthetic_faces(300, image_size=32, random_state=0)
    out = run_faces(tmp_path / "run", ds, mode="multi", epochs=5, lr=2e-3, seed=0, n_explain=3,
                    methods=("occlusion",), verbose=False)
    m = json.loads((out / "metrics.json").read_text())
    test = m["models"]["multi"]["test"]
    assert test["sex"]["accuracy"] > 0.9 and test["ethnicity"]["balanced_accuracy"] > 0.9
    loc = pd.read_csv(out / "localisation.csv")
    assert len(loc) == 9
    for name, g in loc.groupby("output"):
        assert g["peak_inside"].sum() >= 2, (name, g[["image", "peak_inside", "pr_auc"]])
        assert g["pr_auc"].mean() > 2 * g["prevalence"].mean(), name


def test_local_imagenet_weights(tmp_path):
    from deeplsm.models import build_resnet18_2d

    torch.manual_seed(1)
    state = build_resnet18_2d().state_dict()
    state["fc.weight"], state["fc.bias"] = torch.zeros(1000, 512), torch.zeros(1000)  # torchvision's
    torch.save(state, tmp_path / "resnet18.pth")
    torch.save({"conv1.weight": torch.zeros(3, 3)}, tmp_path / "bad.pth")
    ds = make_synthetic_faces(20, image_size=16, random_state=0)
    with pytest.raises(DeepLSMError, match="shape mismatch"):
        run_faces(tmp_path / "bad", ds, weights=tmp_path / "bad.pth")
    assert not (tmp_path / "bad").exists()
    out = run_faces(tmp_path / "ok", ds, mode="multi", epochs=1, weights=tmp_path / "resnet18.pth",
                    n_explain=0, verbose=False)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["weights"].endswith("resnet18.pth")
    assert (out / "metrics.json").is_file() and (out / "report.html").is_file()
    assert not (out / "fig5_predictions.png").exists()

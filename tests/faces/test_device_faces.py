"""The 2D part on a chosen device: explanations equal captum's on the CPU, nets trained and kept
on the device, and the device recorded."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients

from deeplsm._device import module_device, resolve_device
from deeplsm.exceptions import DeepLSMError
from deeplsm.faces import explain_images, face_task, make_synthetic_faces, run_faces
from deeplsm.faces._run import fit_models
from deeplsm.models import build_net
from deeplsm.train import get_preset

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_explain_images_on_device_equals_captum_on_cpu(device):
    torch.manual_seed(0)
    task = face_task()
    net = build_net(task, dims=2).eval()
    ds = make_synthetic_faces(2, image_size=16, random_state=0)
    on_dev = copy.deepcopy(net).to(device)
    maps = explain_images({"multi": on_dev}, task, ds.images, methods=("ig",), window=3, stride=2,
                          ig_steps=4)
    x = torch.from_numpy(ds.images.astype(np.float32) / 255.0)
    with torch.no_grad():
        raw = net(x).numpy()
    ig = IntegratedGradients(net)
    for spec in task:
        col = task.columns[spec.name]
        for i in range(len(ds.images)):
            t = col[int(np.argmax(raw[i, col]))] if spec.kind == "multiclass" else col[0]
            a = ig.attribute(x[i:i + 1], baselines=0.0, target=t, n_steps=4)
            np.testing.assert_allclose(maps[(spec.name, "ig")][i], a[0].sum(0).abs().numpy(),
                                       atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_fit_models_keeps_the_nets_on_the_device(tmp_path, device, monkeypatch):
    import deeplsm.train._run as train_run_module

    loaded = []
    real = train_run_module._load_net

    def spy(ckpt, task, config, dev):
        loaded.append(dev)
        return real(ckpt, task, config, dev)

    monkeypatch.setattr(train_run_module, "_load_net", spy)
    ds = make_synthetic_faces(20, image_size=16, random_state=0)
    split = np.array(["train"] * 12 + ["val"] * 4 + ["test"] * 4)
    hp = get_preset("fast", {"max_epochs": 1, "batch_size": 8, "mixup_alpha": 0.0,
                             "scheduler": "none"})
    models, _ = fit_models(tmp_path, ds, split, mode="multi", hp=hp, seed=0, weights=None,
                           verbose=False, device=device)
    want = resolve_device(device)
    assert module_device(models["multi"]["multi"]) == want
    # the best checkpoint is loaded onto the resolved device given, not onto a fixed "cpu"
    assert len(loaded) == 1 and isinstance(loaded[0], torch.device) and loaded[0] == want


def test_run_faces_records_the_device_and_checks_it_first(tmp_path):
    ds = make_synthetic_faces(40, image_size=16, random_state=0)
    with pytest.raises(DeepLSMError, match="device must be auto, cpu"):
        run_faces(tmp_path / "bad", ds, device="banana")
    assert not (tmp_path / "bad").exists()
    out = run_faces(tmp_path / "run", ds, mode="multi", epochs=1, n_explain=1,
                    methods=("occlusion",), device="cpu", verbose=False)
    assert json.loads((out / "config.json").read_text())["device"] == "cpu"

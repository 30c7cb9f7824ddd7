"""Networks: output shapes, column mapping, heads, and local weight loading."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch

from deeplsm.exceptions import DeepLSMError
from deeplsm.models import (
    MultiOutputNet,
    OutputSpec,
    TaskSpec,
    build_net,
    build_resnet10_3d,
    build_resnet18_2d,
    load_medicalnet_weights,
    load_torchvision_resnet18_weights,
)

TASK3 = TaskSpec([OutputSpec("age", "regression"), OutputSpec("sex", "binary"),
                  OutputSpec("grp", "multiclass", n_classes=4)])


@pytest.fixture(autouse=True)
def _fast_cpu():
    # Denormals make these tiny random networks ~10x slower on CPU.
    torch.set_flush_denormal(True)
    yield
    torch.set_flush_denormal(False)


def test_task_columns_and_total():
    task = TaskSpec(["s1", OutputSpec("g", "multiclass", n_classes=3, weight=2),
                     {"name": "b", "kind": "binary"}])
    assert task.total == 5
    assert task.columns == {"s1": [0], "g": [1, 2, 3], "b": [4]}
    assert task.column("s1") == 0 and task.column("b") == 4 and task.column("g") == [1, 2, 3]
    assert TaskSpec(task.to_list()) == task
    assert task.get("g").weight == 2.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "x", "kind": "ordinal"}, "unknown kind 'ordinal'"),
        ({"name": "x", "kind": "multiclass"}, "needs n_classes >= 2"),
        ({"name": "x", "kind": "binary", "n_classes": 3}, "only for multiclass"),
        ({"name": "x", "weight": -1}, "weight must be >= 0"),
    ],
)
def test_output_spec_errors(kwargs, match):
    with pytest.raises(DeepLSMError, match=match):
        OutputSpec(**kwargs)


def test_task_duplicate_names():
    with pytest.raises(DeepLSMError, match="duplicate output names: a"):
        TaskSpec(["a", "b", "a"])


@pytest.mark.parametrize(
    ("shape", "task"),
    [((16, 20, 16), TaskSpec(["a"])), ((7, 8, 9), TaskSpec(["a", "b", "c"])), ((24, 30, 26), TASK3)],
)
def test_3d_output_shape_any_grid(shape, task):
    net = build_net(task, dims=3).eval()
    with torch.no_grad():
        out = net(torch.zeros(2, 1, *shape))
    assert out.shape == (2, task.total)


def test_activations_ranges():
    net = build_net(TASK3, dims=3).eval()
    net.head.scale[0] = 70.0  # age in years
    with torch.no_grad():
        out = net(torch.randint(0, 2, (3, 1, 12, 14, 12)).float())
    cols = TASK3.columns
    assert (out[:, cols["sex"]] > 0).all() and (out[:, cols["sex"]] < 1).all()
    np.testing.assert_allclose(out[:, cols["grp"]].sum(1).numpy(), 1.0, rtol=1e-5)
    # The regression branch is leaky_relu(logit) * scale.
    with torch.no_grad():
        z = net.logits(torch.zeros(1, 1, 12, 14, 12))
        o = net(torch.zeros(1, 1, 12, 14, 12))
    assert torch.allclose(o[0, 0], torch.nn.functional.leaky_relu(z[0, 0]) * 70.0)


def test_head_layout_matches_paper():
    net = build_net(TaskSpec(["a", "b"]), dims=3)
    for branch in net.head.branches:
        assert [type(m).__name__ for m in branch] == ["Linear", "ReLU", "Linear"]
        assert branch[0].in_features == 512 and branch[0].out_features == 512


def test_medicalnet_layout():
    bb = build_resnet10_3d()
    assert bb.conv1.stride == (2, 2, 2) and bb.conv1.kernel_size == (7, 7, 7)
    assert bb.fc is None
    assert bb.layer2[0].downsample[0].bias is None


def test_load_medicalnet_weights(tmp_path):
    src = build_resnet10_3d()
    state = {f"module.{k}": v for k, v in src.state_dict().items()}
    state["module.conv_seg.0.weight"] = torch.zeros(3)  # MedicalNet's segmentation head
    path = tmp_path / "resnet_10.pth"
    torch.save({"state_dict": state}, path)
    dst = load_medicalnet_weights(build_resnet10_3d(), path)
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v), k


def test_load_weights_errors(tmp_path):
    with pytest.raises(DeepLSMError, match="does not exist"):
        load_medicalnet_weights(build_resnet10_3d(), tmp_path / "nope.pth")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(DeepLSMError, match="cannot read weights"):
        load_medicalnet_weights(build_resnet10_3d(), bad)
    # 2D weights are not a 3D network's.
    path2d = tmp_path / "r18.pth"
    torch.save(build_resnet18_2d().state_dict(), path2d)
    with pytest.raises(DeepLSMError, match="shape mismatch"):
        load_medicalnet_weights(build_resnet10_3d(), path2d)


def test_load_torchvision_names(tmp_path):
    # torchvision's resnet18 state dict: MONAI's key names plus the ImageNet classifier.
    src = build_resnet18_2d()
    state = dict(src.state_dict())
    state["fc.weight"] = torch.zeros(1000, 512)
    state["fc.bias"] = torch.zeros(1000)
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save(state, path)
    dst = load_torchvision_resnet18_weights(build_resnet18_2d(), path)
    assert torch.equal(dst.conv1.weight, src.conv1.weight)
    assert torch.equal(dst.layer4[0].downsample[0].weight, src.layer4[0].downsample[0].weight)


def test_2d_three_outputs_train_one_step():
    """A regression / binary / 4-class model trains one step on random 64x64 RGB images."""
    from deeplsm.train import ArrayDataModule, LSMModule

    rng = np.random.default_rng(0)
    n = 12
    x = rng.integers(0, 256, (n, 3, 64, 64), dtype=np.uint8)
    y = np.stack([rng.uniform(20, 80, n), rng.integers(0, 2, n), rng.integers(0, 4, n)], 1)
    module = LSMModule(TASK3.to_list(), dims=2, input_scale=1 / 255, scheduler="none",
                       regression_scale=[50.0, 1.0, 1.0])
    dm = ArrayDataModule(x, y, ["train"] * 8 + ["val"] * 2 + ["test"] * 2, batch_size=4)
    before = [p.detach().clone() for p in module.net.parameters()]
    trainer = L.Trainer(max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(module, datamodule=dm)
    assert trainer.global_step == 1
    assert any(not torch.equal(a, b) for a, b in zip(before, module.net.parameters()))
    with torch.no_grad():
        out = module(torch.from_numpy(x[:2]))
    assert out.shape == (2, TASK3.total)
    assert isinstance(module.net, MultiOutputNet)

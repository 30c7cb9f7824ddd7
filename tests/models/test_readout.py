"""Heads that read a feature map: shapes, the readout's arithmetic, captum targets, weight loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients

from deeplsm.exceptions import DeepLSMError
from deeplsm.models import (
    FlatLinearHead,
    OutputSpec,
    ResNetStages,
    SpatialReadoutHead,
    TaskSpec,
    activate_output,
    build_net,
    build_resnet10_3d,
    build_resnet18_2d,
)

SHAPE = (20, 24, 20)
TASK = TaskSpec([OutputSpec("a"), OutputSpec("b"), OutputSpec("g", "multiclass", n_classes=3)])


@pytest.fixture(autouse=True)
def _fast_cpu():
    torch.set_flush_denormal(True)
    yield
    torch.set_flush_denormal(False)


def _ceil_half(n: int, times: int) -> int:
    for _ in range(times):
        n = (n + 1) // 2
    return n


@pytest.mark.parametrize("head", ["spatial", "flat"])
@pytest.mark.parametrize("stage", [1, 2, 3, 4])
def test_feature_map_heads_shapes(head, stage):
    net = build_net(TASK, head=head, head_stage=stage, output01="linear", input_shape=SHAPE).eval()
    # conv1 (stride 2), max-pool (stride 2), then one stride-2 stage per stage after layer1:
    # each halves the grid, rounding up (padding keeps the border voxels).
    expected = tuple(_ceil_half(s, 2 + stage - 1) for s in SHAPE)
    assert net.head.feature_shape == expected
    assert isinstance(net.backbone, ResNetStages) and net.backbone.stage == stage
    assert not hasattr(net.backbone, f"layer{stage + 1}")  # later stages are not built
    with torch.no_grad():
        out = net(torch.zeros(3, 1, *SHAPE))
    assert out.shape == (3, TASK.total)
    np.testing.assert_allclose(out[:, 2:].sum(1).numpy(), 1.0, rtol=1e-5)  # softmax columns


def test_spatial_readout_equals_brute_force():
    """y_k = sum_p w_k(p) sum_c f_c(p) v_k(c) + b_k, computed with explicit loops."""
    torch.manual_seed(0)
    task = TaskSpec(["a", "b"])
    head = SpatialReadoutHead(task, in_channels=4, feature_shape=(2, 3, 2), output01="linear")
    with torch.no_grad():
        head.spatial.normal_()
        head.bias.normal_()
    f = torch.randn(5, 4, 2, 3, 2)
    out = head(f).detach().numpy()
    w = head.spatial.detach().numpy().reshape(2, 2, 3, 2)
    v, b, fn = head.channel.detach().numpy(), head.bias.detach().numpy(), f.numpy()
    ref = np.zeros((5, 2))
    for n in range(5):
        for k in range(2):
            ref[n, k] = b[k] + sum(w[k, i, j, l] * sum(fn[n, c, i, j, l] * v[k, c] for c in range(4))
                                   for i in range(2) for j in range(3) for l in range(2))
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    # A mask on one position reads only that position: the head knows where.
    with torch.no_grad():
        head.spatial.zero_()
        head.spatial[0, 7] = 1.0
        head.bias.zero_()
    g = torch.zeros(1, 4, 2, 3, 2)
    g.view(1, 4, -1)[0, :, 7] = 1.0
    assert head(g)[0, 0].item() == pytest.approx(head.channel[0].sum().item(), rel=1e-6)
    g2 = torch.zeros(1, 4, 2, 3, 2)
    g2.view(1, 4, -1)[0, :, 3] = 1.0  # the same features elsewhere
    assert head(g2)[0, 0].item() == 0.0


def test_spatial_readout_penalty_by_hand():
    torch.manual_seed(1)
    head = SpatialReadoutHead(TaskSpec(["a", "b"]), 3, (2, 2, 2), l1=0.5)
    with torch.no_grad():
        head.spatial.normal_()
    w, v = head.spatial.detach().numpy(), head.channel.detach().numpy()
    ref = 0.5 * np.mean(np.abs(w).sum(1) * np.linalg.norm(v, axis=1))
    assert head.penalty().item() == pytest.approx(ref, rel=1e-6)
    assert SpatialReadoutHead(TaskSpec(["a"]), 3, (2, 2, 2)).penalty().item() == 0.0


def test_flat_head_is_one_linear_layer():
    torch.manual_seed(0)
    head = FlatLinearHead(TaskSpec(["a", "b"]), 3, (2, 2, 1), output01="linear")
    f = torch.randn(4, 3, 2, 2, 1)
    ref = f.reshape(4, -1).numpy() @ head.linear.weight.detach().numpy().T + head.linear.bias.detach().numpy()
    np.testing.assert_allclose(head(f).detach().numpy(), ref, rtol=1e-5, atol=1e-6)


def test_linear_output_is_identity_and_sigmoid_is_not():
    z = torch.tensor([[-0.5], [0.0], [1.7]])
    assert torch.equal(activate_output("regression01", z, "linear"), z)
    assert torch.allclose(activate_output("regression01", z, "sigmoid"), torch.sigmoid(z))
    assert torch.allclose(activate_output("binary", z, "linear"), torch.sigmoid(z))  # only regression01
    net = build_net(TaskSpec(["a"]), output01="linear").eval()
    with torch.no_grad():
        x = torch.zeros(1, 1, 16, 20, 16)
        assert torch.equal(net(x), net.logits(x))


def test_captum_target_picks_the_readout_column():
    """IG with target=k on the multi-output net equals IG on a net that returns only column k,
    and the attributions add up to f(x) - f(0) (completeness)."""
    torch.manual_seed(0)
    task = TaskSpec(["a", "b", "c"])
    net = build_net(task, head="spatial", head_stage=2, output01="linear", input_shape=SHAPE).eval()
    x = (torch.rand(2, 1, *SHAPE) < 0.1).float()

    class Column(torch.nn.Module):
        def __init__(self, k):
            super().__init__()
            self.k = k

        def forward(self, v):
            return net(v)[:, self.k]

    for k in (0, 2):
        att = IntegratedGradients(net).attribute(x, target=k, n_steps=16)
        ref = IntegratedGradients(Column(k)).attribute(x, n_steps=16)
        torch.testing.assert_close(att, ref)
        with torch.no_grad():
            delta = net(x)[:, k] - net(torch.zeros_like(x))[:, k]
        np.testing.assert_allclose(att.sum((1, 2, 3, 4)).numpy(), delta.numpy(), rtol=0.05, atol=1e-3)
    a0 = IntegratedGradients(net).attribute(x, target=0, n_steps=4)
    a1 = IntegratedGradients(net).attribute(x, target=1, n_steps=4)
    assert not torch.allclose(a0, a1)


def test_medicalnet_weights_load_into_the_cut_backbone(tmp_path):
    src = build_resnet10_3d()
    state = {f"module.{k}": v for k, v in src.state_dict().items()}
    path = tmp_path / "resnet_10.pth"
    torch.save({"state_dict": state}, path)
    net = build_net(TaskSpec(["a"]), head="spatial", head_stage=2, input_shape=SHAPE, weights=path)
    own = net.backbone.state_dict()
    assert set(own) < set(src.state_dict())  # MedicalNet's names, minus layer3 and layer4
    for k, v in own.items():
        assert torch.equal(v, src.state_dict()[k]), k


def test_2d_backbone_with_spatial_head():
    net = build_net(TaskSpec(["a", "b"]), dims=2, head="spatial", head_stage=3, input_shape=(64, 64)).eval()
    assert net.backbone.out_channels == build_resnet18_2d().layer3[-1].bn2.num_features
    with torch.no_grad():
        assert net(torch.zeros(2, 3, 64, 64)).shape == (2, 2)


def test_bad_head_options():
    with pytest.raises(DeepLSMError, match="unknown head 'conv'"):
        build_net(TASK, head="conv")
    with pytest.raises(DeepLSMError, match="needs the 3D input shape"):
        build_net(TASK, head="spatial", head_stage=2)
    with pytest.raises(DeepLSMError, match="head_stage must be 0, 1, 2, 3 or 4"):
        build_net(TASK, head="flat", head_stage=5, input_shape=SHAPE)
    with pytest.raises(DeepLSMError, match="unknown output01 'relu'"):
        build_net(TASK, output01="relu")


def test_subtract_empty_reads_features_relative_to_an_empty_map():
    torch.manual_seed(0)
    kw = {"head": "spatial", "head_stage": 0, "no_max_pool": True, "output01": "linear",
          "input_shape": SHAPE}
    net = build_net(TaskSpec(["a", "b"]), subtract_empty=True, **kw).eval()
    # As after training: batch norm's running mean is not zero, so an empty map's features aren't.
    net.backbone.bn1.running_mean.fill_(-0.1)
    plain = build_net(TaskSpec(["a", "b"]), **kw).eval()
    plain.load_state_dict(net.state_dict())
    with torch.no_grad():
        net.head.bias.copy_(torch.tensor([0.25, -0.5]))
        plain.head.bias.copy_(net.head.bias)
        empty = torch.zeros(2, 1, *SHAPE)
        x = (torch.rand(3, 1, *SHAPE) < 0.1).float()
        # An empty map gives exactly the bias; without the subtraction it does not (the
        # background features after batch norm and ReLU are not zero).
        assert torch.equal(net(empty), net.head.bias.expand(2, 2))
        assert not torch.allclose(plain(empty), plain.head.bias.expand(2, 2))
        ref = net.backbone(x) - net.backbone(torch.zeros(1, 1, *SHAPE))
        torch.testing.assert_close(net.features(x), ref)
        torch.testing.assert_close(net(x) - net.head.bias, plain(x) - plain(empty[:1]))

import itertools

import numpy as np
import pytest
import torch
from _tiny_nets import SHAPE, LinearNet, TinyNet

from deeplsm.exceptions import DeepLSMError
from deeplsm.explain import (
    GradientShapMap,
    IntegratedGradientsMap,
    LesionAwareOcclusion,
    OcclusionMap,
    mm_to_voxels,
    occlusion_windows,
)

# window/stride pairs; (3, 2) and (4, 3) leave a clipped last window on some axes
CASES = [(3, 2), (3, 3), (4, 3), (4, 1), (5, 4), ((2, 3, 4), (2, 2, 3)), (7, 1)]


@pytest.mark.parametrize(("window", "stride"), CASES)
def test_lesion_aware_equals_captum(tiny_net, sparse_volumes, window, stride):
    ours = LesionAwareOcclusion(tiny_net).attribute_targets(
        sparse_volumes, window=window, stride=stride, batch_size=5)
    ref = OcclusionMap(tiny_net).attribute_targets(sparse_volumes, window=window, stride=stride,
                                                   batch_size=7)
    assert ours.shape == (3, 3, 1, *SHAPE) == ref.shape
    assert torch.max(torch.abs(ours - ref)).item() <= 1e-6
    assert ref[:2].abs().max() > 0


@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_lesion_aware_single_target_and_batch_size(tiny_net, sparse_volumes, batch_size):
    from captum.attr import Occlusion

    occ = LesionAwareOcclusion(tiny_net)
    ours = occ.attribute(sparse_volumes, target=1, window=3, stride=2, batch_size=batch_size)
    ref = Occlusion(tiny_net).attribute(sparse_volumes, sliding_window_shapes=(1, 3, 3, 3),
                                        strides=(1, 2, 2, 2), baselines=0.0, target=1)
    assert ours.shape == sparse_volumes.shape
    assert torch.max(torch.abs(ours - ref)).item() <= 1e-6
    # the empty subject needs no forward pass and gets exactly zero
    assert occ.n_evaluated_ < occ.n_windows_ * 2
    assert torch.all(ours[2] == 0)


def test_lesion_aware_random_nets_and_inputs():
    rng = np.random.default_rng(3)
    for seed in range(3):
        torch.manual_seed(seed)
        net = TinyNet(n_out=2)
        x = torch.from_numpy((rng.random((2, 1, *SHAPE)) < 0.02 * (seed + 1)).astype(np.float32))
        ours = LesionAwareOcclusion(net).attribute_targets(x, window=4, stride=3, batch_size=4)
        ref = OcclusionMap(net).attribute_targets(x, window=4, stride=3)
        assert torch.max(torch.abs(ours - ref)).item() <= 1e-6


def test_lesion_aware_by_hand_linear_model(rng):
    """f(x) = sum(W x): a window's value is sum(W x) over it; each voxel averages its windows."""
    w = rng.normal(size=(2, *SHAPE))
    x = (rng.random((1, 1, *SHAPE)) < 0.1).astype(np.float32)
    window, stride = 3, 2
    starts, stops = occlusion_windows(SHAPE, window, stride)
    total = np.zeros((2, *SHAPE))
    count = np.zeros(SHAPE)
    for i, j, k in itertools.product(*[range(len(s)) for s in starts]):
        sl = (slice(starts[0][i], stops[0][i]), slice(starts[1][j], stops[1][j]),
              slice(starts[2][k], stops[2][k]))
        for t in range(2):
            total[t][sl] += (w[t][sl] * x[0, 0][sl]).sum()
        count[sl] += 1
    expected = total / count
    for bs in (1, 2, 50):
        got = LesionAwareOcclusion(LinearNet(w)).attribute_targets(
            torch.from_numpy(x), window=window, stride=stride, batch_size=bs)
        np.testing.assert_allclose(got[0, :, 0].numpy(), expected, atol=1e-5)


def test_occlusion_windows_match_captum_counts():
    starts, stops = occlusion_windows((8, 7, 9), 3, 2)
    assert [len(s) for s in starts] == [4, 3, 4]  # ceil((n - 3) / 2) + 1
    assert stops[0][-1] == 8 and starts[0][-1] == 6  # clipped last window


def test_lesion_aware_4d_input_and_all_targets(tiny_net, sparse_volumes):
    out = LesionAwareOcclusion(tiny_net).attribute_targets(sparse_volumes[:, 0], window=3, stride=2)
    assert out.shape == (3, 3, *SHAPE)
    one = LesionAwareOcclusion(tiny_net).attribute(sparse_volumes[:, 0].numpy(), target=2,
                                                   window=3, stride=2)
    assert one.shape == (3, *SHAPE)
    assert torch.allclose(one, out[:, 2])


@pytest.mark.parametrize(("window", "stride", "match"), [
    (10, 2, "exceeds the volume size 7 along x"),
    (3, 4, "stride 4 is larger than the window 3"),
    (0, 1, "window must be a positive"),
])
def test_occlusion_bad_window(tiny_net, sparse_volumes, window, stride, match):
    with pytest.raises(DeepLSMError, match=match):
        LesionAwareOcclusion(tiny_net).attribute(sparse_volumes, target=0, window=window,
                                                 stride=stride)


def test_bad_inputs(tiny_net):
    with pytest.raises(DeepLSMError, match="volumes must have shape"):
        LesionAwareOcclusion(tiny_net).attribute(torch.zeros(7, 8, 9), target=0)
    with pytest.raises(DeepLSMError, match="target 5 out of range"):
        LesionAwareOcclusion(tiny_net).attribute(torch.zeros(1, 1, *SHAPE), target=5, window=3,
                                                 stride=2)
    with pytest.raises(DeepLSMError, match="model must be a torch"):
        IntegratedGradientsMap("net")
    with pytest.raises(DeepLSMError, match="n_steps must be a positive integer"):
        IntegratedGradientsMap(TinyNet()).attribute(torch.zeros(1, 1, *SHAPE), target=0, n_steps=0)


def test_model_put_in_eval_mode(sparse_volumes):
    net = torch.nn.Sequential(torch.nn.Conv3d(1, 1, 1), torch.nn.Dropout(0.9), torch.nn.Flatten(),
                              torch.nn.Linear(int(np.prod(SHAPE)), 2))
    net.train()
    a = LesionAwareOcclusion(net).attribute(sparse_volumes, target=0, window=3, stride=2)
    b = LesionAwareOcclusion(net).attribute(sparse_volumes, target=0, window=3, stride=2)
    assert not net.training
    assert torch.equal(a, b)


def test_integrated_gradients_shape_and_zero_outside(tiny_net, sparse_volumes):
    ig = IntegratedGradientsMap(tiny_net)
    a = ig.attribute(sparse_volumes, target=1, n_steps=4, internal_batch_size=4, batch_size=2)
    assert a.shape == sparse_volumes.shape
    assert torch.all(a[sparse_volumes == 0] == 0)
    assert a[sparse_volumes == 1].abs().sum() > 0
    all_t = ig.attribute_targets(sparse_volumes, n_steps=4)
    assert all_t.shape == (3, 3, 1, *SHAPE)
    torch.testing.assert_close(all_t[:, 1], a, atol=1e-6, rtol=1e-5)


def test_gradient_shap_shape_zero_outside_and_seeded(tiny_net, sparse_volumes):
    gs = GradientShapMap(tiny_net)
    a = gs.attribute(sparse_volumes, target=0, n_samples=4, random_state=1)
    b = gs.attribute(sparse_volumes, target=0, n_samples=4, random_state=1)
    assert a.shape == sparse_volumes.shape
    assert torch.all(a[sparse_volumes == 0] == 0)
    assert torch.equal(a, b)
    assert gs.attribute_targets(sparse_volumes, targets=[0, 2], n_samples=2).shape == (3, 2, 1, *SHAPE)


def test_gradient_shap_noise_tunnel(tiny_net, sparse_volumes):
    gs = GradientShapMap(tiny_net)
    a = gs.attribute(sparse_volumes, target=0, n_samples=2, nt_samples=3, stdevs=0.1,
                     random_state=0)
    assert a.shape == sparse_volumes.shape
    assert torch.all(a >= 0)  # smoothgrad_sq averages squares
    with pytest.raises(DeepLSMError, match="nt_type must be"):
        gs.attribute(sparse_volumes, target=0, nt_samples=2, nt_type="sq")


@pytest.mark.parametrize(("nt_samples", "stdevs"), [(8, 0.2), (2, 0.4)])
def test_gradient_shap_noise_tunnel_moments_on_a_linear_model(nt_samples, stdevs):
    """For f(x) = sum(W * x), GradientSHAP of a noisy input x + e (zero baseline) is W * (x + e)
    whatever its own samples, so smoothgrad_sq over ``nt_samples`` noise draws of standard
    deviation ``stdevs`` gives W^2 * mean_k (x + e_k)^2: mean W^2 (x^2 + s^2), and at x = 0 a
    variance of 2 s^4 / nt_samples (a scaled chi-square)."""
    rng = np.random.default_rng(0)
    w = rng.uniform(0.5, 1.5, size=(3, *SHAPE))
    x = np.zeros((6, 1, *SHAPE), np.float32)
    x[:, :, ::3] = 1.0  # a third of the voxels lesioned
    a = GradientShapMap(LinearNet(w)).attribute(torch.from_numpy(x), target=1, n_samples=3,
                                                nt_samples=nt_samples, stdevs=stdevs, random_state=0)
    u = (a.numpy() / w[1] ** 2)[:, 0]  # mean_k (x + e_k)^2 per voxel
    off, on = u[x[:, 0] == 0], u[x[:, 0] == 1]
    s2 = stdevs ** 2
    assert off.mean() == pytest.approx(s2, rel=0.05)
    assert on.mean() == pytest.approx(1 + s2, rel=0.02)
    assert off.var() == pytest.approx(2 * s2 ** 2 / nt_samples, rel=0.2)


def test_mm_to_voxels():
    assert mm_to_voxels(13.3, (1.6667, 1.6667, 1.6667)) == (8, 8, 8)
    assert mm_to_voxels(1.0, (3.3, 2.0, 1.0)) == (1, 1, 1)

"""The explainers on a device: results equal captum's on the CPU, batches and sums stay on the
model's device, and the float32 path (Apple MPS has no float64) creates no float64 tensor.

Every available device is tested (the CPU always, CUDA and MPS where present). On a CPU-only
machine the checks that tell "kept on the device" from "copied to and fro" count the transfers
between devices the code asks for, which is the same on every device.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from _tiny_nets import SHAPE, TinyNet
from captum.attr import GradientShap, IntegratedGradients, Occlusion
from torch.overrides import TorchFunctionMode

from deeplsm.explain import (
    GradientShapMap,
    IntegratedGradientsMap,
    LesionAwareOcclusion,
    explain_cohort,
)

DEVICES = ["cpu"]
if torch.cuda.is_available():
    DEVICES.append("cuda")
if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
    DEVICES.append("mps")


def _on(net: torch.nn.Module, device: str) -> torch.nn.Module:
    return copy.deepcopy(net).to(device).eval()


def _captum_occlusion(net, x, targets, window, stride):
    occ = Occlusion(net)
    return torch.stack([occ.attribute(x, sliding_window_shapes=(1, window, window, window),
                                      strides=(1, stride, stride, stride), baselines=0.0, target=t)
                        for t in targets], dim=1)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("on_device_input", [False, True])
def test_lesion_aware_occlusion_on_device_equals_captum_on_cpu(tiny_net, sparse_volumes, device,
                                                               on_device_input):
    x = sparse_volumes.to(device) if on_device_input else sparse_volumes
    ours = LesionAwareOcclusion(_on(tiny_net, device)).attribute_targets(
        x, targets=[0, 2], window=3, stride=2, batch_size=4)
    assert ours.device == x.device  # returned where the inputs live, as captum does
    ref = _captum_occlusion(tiny_net.eval(), sparse_volumes, [0, 2], 3, 2)
    assert ref[:2].abs().max() > 0
    torch.testing.assert_close(ours.cpu(), ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("device", DEVICES)
def test_gradient_methods_on_device_equal_captum_on_cpu(tiny_net, sparse_volumes, device):
    net = _on(tiny_net, device)
    x = sparse_volumes.to(device)
    ig = IntegratedGradientsMap(net).attribute_targets(x, targets=[1], n_steps=6,
                                                       internal_batch_size=3, batch_size=2)
    ref = IntegratedGradients(tiny_net.eval(), multiply_by_inputs=True).attribute(
        sparse_volumes, baselines=torch.zeros_like(sparse_volumes), target=1, n_steps=6)
    assert ig.device == x.device
    torch.testing.assert_close(ig[:, 0].cpu(), ref, atol=1e-5, rtol=1e-5)

    # GradientSHAP draws its points from numpy's RNG, so the same seed gives the same draws on
    # every device; compare subject by subject (batch_size=1) with captum on the CPU
    gs = GradientShapMap(net).attribute_targets(x, targets=[2], n_samples=3, batch_size=1,
                                                random_state=5)
    np.random.seed(5)  # noqa: NPY002 (as GradientShapMap seeds captum)
    torch.manual_seed(5)
    base = torch.zeros_like(sparse_volumes[:1])
    ref = torch.cat([GradientShap(tiny_net.eval(), multiply_by_inputs=True).attribute(
        sparse_volumes[i:i + 1], baselines=base, target=2, n_samples=3) for i in range(3)])
    torch.testing.assert_close(gs[:, 0].cpu(), ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_explain_cohort_on_device_equals_per_subject_captum_sums(tiny_net, sparse_volumes, device):
    vols = sparse_volumes[:, 0].numpy().astype(np.uint8)
    net = _on(tiny_net, device)
    sums, _ = explain_cohort({"a": (net, 0), "c": (net, 2)}, vols, methods=("ig", "occlusion"),
                             n_steps=4, internal_batch_size=4, window=3, stride=2, subject_batch=2,
                             verbose=False)
    cpu = tiny_net.eval()
    for name, t in (("a", 0), ("c", 2)):
        occ = _captum_occlusion(cpu, sparse_volumes, [t], 3, 2).double().sum(dim=(0, 1, 2))
        np.testing.assert_allclose(sums[("occlusion", name)], occ.numpy(), atol=1e-5)
        ig = IntegratedGradients(cpu).attribute(sparse_volumes, baselines=0.0, target=t, n_steps=4)
        np.testing.assert_allclose(sums[("ig", name)], ig.double().sum(dim=(0, 1)).numpy(), atol=1e-5)
        assert sums[("occlusion", name)].dtype == np.float64


# --- transfers between devices ---------------------------------------------------------------
@pytest.fixture
def transfers(monkeypatch):
    """Counts every transfer the code asks for: Tensor.to(<a device>), .cpu(), .cuda(), .numpy()."""
    calls: list[str] = []
    orig = {name: getattr(torch.Tensor, name) for name in ("to", "cpu", "cuda", "numpy")}

    def to(self, *args, **kwargs):
        if "device" in kwargs or any(isinstance(a, torch.device | str) for a in args):
            calls.append("to")
        return orig["to"](self, *args, **kwargs)

    def counted(name):
        def method(self, *args, **kwargs):
            calls.append(name)
            return orig[name](self, *args, **kwargs)
        return method

    monkeypatch.setattr(torch.Tensor, "to", to)
    for name in ("cpu", "cuda", "numpy"):
        monkeypatch.setattr(torch.Tensor, name, counted(name))
    return calls


def test_occlusion_moves_nothing_per_batch(tiny_net, sparse_volumes, transfers):
    """The inputs go to the device once and the result comes back once, however many batches:
    occluded batches are built on the device and window values are kept there."""
    counts = {}
    for bs in (1, 7, 1000):
        transfers.clear()
        occ = LesionAwareOcclusion(tiny_net)
        occ.attribute_targets(sparse_volumes, window=3, stride=2, batch_size=bs)
        counts[bs] = len(transfers)
    assert occ.n_evaluated_ > 20  # so batch_size=1 means many batches
    assert counts[1] == counts[7] == counts[1000] <= 2, counts


def test_explain_cohort_brings_back_only_the_final_sums(tiny_net, sparse_volumes, transfers):
    vols = sparse_volumes[:, 0].numpy().astype(np.uint8)
    to_host = {}
    for sb in (1, 3):
        transfers.clear()
        explain_cohort({"a": (tiny_net, 0), "b": (tiny_net, 1)}, vols, methods=("occlusion",),
                       window=3, stride=2, subject_batch=sb, verbose=False)
        to_host[sb] = sum(c in ("cpu", "numpy") for c in transfers)
    assert to_host[1] == to_host[3] <= 3, to_host  # one sum per network, not one per batch


# --- the float32 path of devices without float64 (Apple MPS) -----------------------------------
class _Float64Watch(TorchFunctionMode):
    """Records every torch call whose result is a float64 tensor."""

    def __init__(self):
        super().__init__()
        self.seen: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, tuple | list) else (out,):
            if isinstance(t, torch.Tensor) and t.dtype == torch.float64:
                self.seen.append(getattr(func, "__name__", str(func)))
        return out


@pytest.fixture
def float32_sums(monkeypatch):
    """Take the path a device without float64 takes (sums in float32), on this machine."""
    import deeplsm.explain._methods as methods
    import deeplsm.explain._run as run

    monkeypatch.setattr(methods, "accumulation_dtype", lambda device: torch.float32)
    monkeypatch.setattr(run, "accumulation_dtype", lambda device: torch.float32)


def test_float32_path_uses_no_float64_and_still_matches_captum(tiny_net, sparse_volumes, float32_sums):
    vols = sparse_volumes[:, 0].numpy().astype(np.uint8)
    with _Float64Watch() as watch:
        occ = LesionAwareOcclusion(tiny_net).attribute_targets(sparse_volumes, targets=[1], window=3,
                                                               stride=2, batch_size=5)
        sums, _ = explain_cohort({"b": (tiny_net, 1)}, vols, methods=("occlusion", "ig", "gradshap"),
                                 window=3, stride=2, n_steps=4, n_samples=2, random_state=0,
                                 subject_batch=2, verbose=False)
    assert watch.seen == []
    ref = _captum_occlusion(tiny_net.eval(), sparse_volumes, [1], 3, 2)
    torch.testing.assert_close(occ, ref, atol=1e-5, rtol=0)
    np.testing.assert_allclose(sums[("occlusion", "b")], ref.double().sum(dim=(0, 1, 2)).numpy(),
                               atol=1e-5)


def test_float64_watch_sees_the_default_path(tiny_net, sparse_volumes):
    """The watch above is not blind: on the CPU the default sums are float64."""
    with _Float64Watch() as watch:
        LesionAwareOcclusion(tiny_net).attribute_targets(sparse_volumes, window=3, stride=2)
    assert watch.seen


def test_batch_size_default_and_record(tiny_net, sparse_volumes):
    occ = LesionAwareOcclusion(tiny_net)
    a = occ.attribute_targets(sparse_volumes, window=3, stride=2)
    assert occ.batch_size_ == 16  # the CPU default; CUDA measures free memory
    b = occ.attribute_targets(sparse_volumes, window=3, stride=2, batch_size=3)
    assert occ.batch_size_ == 3
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_shape_is_kept(tiny_net):
    x = torch.zeros(2, 1, *SHAPE)
    x[0, 0, 1, 2, 3] = 1
    out = LesionAwareOcclusion(TinyNet()).attribute_targets(x, window=2, stride=2)
    assert out.shape == (2, 3, 1, *SHAPE) and out.dtype == torch.float32
    assert torch.all(out[1] == 0)

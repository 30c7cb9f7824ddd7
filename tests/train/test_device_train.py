"""Training and loading on a chosen device: Lightning's accelerator, nets built there, resume
elsewhere, and the ``gpu`` preset."""

from __future__ import annotations

import json
from typing import ClassVar

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch

from deeplsm import _device
from deeplsm._device import module_device, resolve_device
from deeplsm.cli import build_parser
from deeplsm.exceptions import DeepLSMError
from deeplsm.train import _run as train_mod
from deeplsm.train import get_preset, load_trained, resume_run, train_run

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
TINY = {"max_epochs": 1, "batch_size": 8}


class _SeeDevice(L.Callback):
    """Records where Lightning put the model."""

    def __init__(self):
        self.seen = {}

    def on_train_start(self, trainer, pl_module):
        self.seen = {"root": trainer.strategy.root_device, "params": module_device(pl_module),
                     "accelerator": type(trainer.accelerator).__name__}


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory, tiny):
    cohort, scores = tiny
    out = tmp_path_factory.mktemp("dev") / "run"
    train_run(out, cohort, scores, outputs=["score_a", "score_b"], device="cpu", overrides=TINY,
              verbose=False)
    return out


@pytest.mark.parametrize("device", DEVICES)
def test_train_on_the_device_and_record_it(tmp_path, tiny, device):
    cohort, scores = tiny
    see = _SeeDevice()
    out = train_run(tmp_path / "run", cohort, scores, outputs=["score_a"], device=device,
                    overrides=TINY, verbose=False, callbacks=[see])
    want = resolve_device(device)
    assert see.seen["root"] == want and see.seen["params"] == want
    assert see.seen["accelerator"] == ("CPUAccelerator" if want.type == "cpu" else "CUDAAccelerator")
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["trainer"]["device"] == device and cfg["trainer"]["device_used"] == str(want)


@pytest.mark.parametrize("device", DEVICES)
def test_load_trained_returns_nets_on_the_device(cpu_run, device):
    run = load_trained(cpu_run, map_location=device)
    net = run.models["multi"]
    want = resolve_device(device)
    assert {p.device for p in net.parameters()} == {want}
    assert {b.device for b in net.buffers()} == {want}
    assert not net.training
    x = torch.from_numpy(run.cohort.data[:, None]).to(want).float()
    with torch.no_grad():
        out = net(x).cpu().numpy()
    preds = pd.read_csv(cpu_run / "predictions.csv", dtype={"subject": str})
    np.testing.assert_allclose(out[:, 1], preds.score_b_pred, atol=1e-5)


def test_load_trained_moves_the_net_before_loading_the_weights(cpu_run, monkeypatch):
    """The net is built, moved to the device, then given the weights (already on the device),
    not filled on the CPU and left there."""
    events = []
    real_build = train_mod.build_net

    def build_net(*args, **kwargs):
        net = real_build(*args, **kwargs)
        real_to, real_load = net.to, net.load_state_dict

        def to(*a, **k):
            events.append(("to", torch.device(a[0] if a else k["device"])))
            return real_to(*a, **k)

        def load_state_dict(state, *a, **k):
            events.append(("load", {v.device for v in state.values()}))
            return real_load(state, *a, **k)

        net.to, net.load_state_dict = to, load_state_dict
        return net

    monkeypatch.setattr(train_mod, "build_net", build_net)
    load_trained(cpu_run, map_location="cpu")
    assert events == [("to", torch.device("cpu")), ("load", {torch.device("cpu")})]


def test_map_location_is_checked_first(cpu_run, monkeypatch):
    with pytest.raises(DeepLSMError, match="map_location must be auto, cpu, cuda, cuda:N or mps"):
        load_trained(cpu_run, map_location="banana")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeepLSMError, match="map_location cuda:0: no CUDA GPU is available"):
        load_trained(cpu_run, map_location="cuda:0")


class _FakeTrainer:
    """Stands in for lightning.Trainer: records the arguments, then stops."""

    seen: ClassVar[dict] = {}

    def __init__(self, **kwargs):
        _FakeTrainer.seen = kwargs
        raise _Stop


class _Stop(Exception):
    pass


@pytest.mark.parametrize(("device", "devices", "expected"), [
    (torch.device("cpu"), "auto", ("cpu", 1)),
    (torch.device("cuda", 1), "auto", ("gpu", [1])),
    (torch.device("cuda", 0), 4, ("gpu", 4)),
    (torch.device("mps"), "auto", ("mps", 1)),
])
def test_device_becomes_lightnings_accelerator_and_devices(tmp_path, monkeypatch, device, devices,
                                                           expected):
    monkeypatch.setattr(train_mod, "resolve_device", lambda spec, **kw: device)
    monkeypatch.setattr(L, "Trainer", _FakeTrainer)
    config = {"hyperparameters": get_preset("fast"),
              "trainer": {"device": str(device), "accelerator": "auto", "devices": devices,
                          "strategy": "ddp" if devices == 4 else "auto"}}
    with pytest.raises(_Stop):
        train_mod._make_trainer(tmp_path, config, "multi", tmp_path / "ck", (), False)
    assert (_FakeTrainer.seen["accelerator"], _FakeTrainer.seen["devices"]) == expected
    assert _FakeTrainer.seen["strategy"] == ("ddp" if devices == 4 else "auto")


def test_bad_device_or_conflict_is_caught_before_the_run_folder(tmp_path, tiny):
    cohort, scores = tiny
    with pytest.raises(DeepLSMError, match="device must be auto, cpu"):
        train_run(tmp_path / "a", cohort, scores, device="banana")
    with pytest.raises(DeepLSMError, match="accelerator 'gpu' does not match the device cpu"):
        train_run(tmp_path / "b", cohort, scores, device="cpu", accelerator="gpu")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


class _Crash(L.Callback):
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.current_epoch == 1:
            raise RuntimeError("simulated kill")


def test_resume_a_gpu_run_on_the_cpu(tmp_path, tiny, monkeypatch):
    """A run started on a GPU (as config.json says) resumes on a machine without one when told
    where; without being told it says what is missing, and changes nothing."""
    cohort, scores = tiny
    out = tmp_path / "killed"
    with pytest.raises(RuntimeError, match="simulated kill"):
        train_run(out, cohort, scores, outputs=["score_a"], device="cpu",
                  overrides={"max_epochs": 2, "batch_size": 8}, verbose=False, callbacks=[_Crash()])
    cfg = json.loads((out / "config.json").read_text())
    cfg["trainer"]["device"] = "cuda:3"
    (out / "config.json").write_text(json.dumps(cfg))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(_device, "_mps_available", lambda: False)
    with pytest.raises(DeepLSMError, match="device cuda:3: no CUDA GPU is available"):
        resume_run(out, verbose=False)
    with pytest.raises(DeepLSMError, match="device must be auto"):
        resume_run(out, device="banana", verbose=False)
    assert not (out / "metrics.json").exists()
    see = _SeeDevice()
    resume_run(out, device="cpu", verbose=False, callbacks=[see])
    assert see.seen["root"] == torch.device("cpu")
    done = json.loads((out / "checkpoints" / "complete.json").read_text())
    assert done["resumed"] and done["epochs"] == 2 and (out / "metrics.json").is_file()


def test_gpu_preset():
    gpu, fast = get_preset("gpu"), get_preset("fast")
    assert gpu["precision"] == "bf16-mixed"
    assert gpu["batch_size"] > fast["batch_size"] and gpu["max_epochs"] >= 30
    assert (gpu["optimizer"], gpu["scheduler"]) == ("adamw", "onecycle")
    assert set(gpu) == set(fast)
    args = build_parser().parse_args(["train", "--lesions", "x", "--scores", "y", "--out", "o",
                                      "--preset", "gpu", "--device", "cpu"])
    assert args.preset == "gpu" and args.device == "cpu"

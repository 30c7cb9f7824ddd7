"""The one device resolver, its Lightning mapping, and every command's door check of --device."""

from __future__ import annotations

import pytest
import torch

from deeplsm import _device
from deeplsm._device import (
    accumulation_dtype,
    auto_batch_size,
    module_device,
    resolve_device,
    trainer_hardware,
)
from deeplsm.cli import main
from deeplsm.exceptions import DeepLSMError
from deeplsm.study import demo_config, run_study


@pytest.fixture
def no_gpu(monkeypatch):
    """This machine as one without CUDA or MPS, whatever it has."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(_device, "_mps_available", lambda: False)


@pytest.fixture
def two_gpus(monkeypatch):
    """torch as it answers on a machine with two CUDA GPUs (nothing is allocated on them)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)


def test_cpu_and_spellings():
    for spec in ("cpu", " CPU ", torch.device("cpu")):
        assert resolve_device(spec) == torch.device("cpu")


def test_auto_without_a_gpu_is_the_cpu(no_gpu):
    assert resolve_device("auto") == resolve_device(None) == torch.device("cpu")


def test_auto_prefers_cuda_then_mps(two_gpus, monkeypatch):
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("cuda") == torch.device("cuda", 0)  # the index is filled in
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(_device, "_mps_available", lambda: True)
    assert resolve_device("auto") == torch.device("mps")


@pytest.mark.parametrize(("spec", "match"), [
    ("banana", r"device must be auto, cpu, cuda, cuda:N or mps, got 'banana'"),
    ("cuda:x", r"must be auto, cpu, cuda, cuda:N or mps, got 'cuda:x'"),
    ("gpu", r"got 'gpu'"),
    ("cuda", r"device cuda: no CUDA GPU is available .*; use auto or cpu"),
    ("cuda:0", r"device cuda:0: no CUDA GPU is available"),
    ("mps", r"device mps: Apple MPS is not available"),
])
def test_bad_or_missing_devices(no_gpu, spec, match):
    with pytest.raises(DeepLSMError, match=match):
        resolve_device(spec)


def test_gpu_index_that_does_not_exist(two_gpus):
    with pytest.raises(DeepLSMError, match=r"--device cuda:7: there is no such GPU; torch sees 2 "
                                           r"CUDA device\(s\) \(cuda:0 to cuda:1\)"):
        resolve_device("cuda:7", what="--device")


def test_not_a_string():
    with pytest.raises(DeepLSMError, match="must be a string"):
        resolve_device(3)


def test_lightning_mapping():
    cpu, gpu1 = torch.device("cpu"), torch.device("cuda", 1)
    assert trainer_hardware(cpu) == ("cpu", 1)
    assert trainer_hardware(gpu1) == ("gpu", [1])
    assert trainer_hardware(gpu1, accelerator="cuda", devices="1") == ("gpu", [1])
    assert trainer_hardware(torch.device("mps")) == ("mps", 1)
    # several GPUs come from `devices`, as Lightning takes them
    assert trainer_hardware(torch.device("cuda", 0), devices="4") == ("gpu", 4)
    assert trainer_hardware(torch.device("cuda", 0), devices="0,1") == ("gpu", "0,1")
    with pytest.raises(DeepLSMError, match=r"accelerator 'gpu' does not match the device cpu"):
        trainer_hardware(cpu, accelerator="gpu")
    with pytest.raises(DeepLSMError, match="Apple MPS is one device"):
        trainer_hardware(torch.device("mps"), devices=2)


def test_accumulation_dtype_and_module_device():
    assert accumulation_dtype(torch.device("cpu")) is torch.float64
    assert accumulation_dtype(torch.device("cuda", 0)) is torch.float64
    assert accumulation_dtype(torch.device("mps")) is torch.float32  # MPS has no float64
    assert module_device(torch.nn.Linear(2, 2)) == torch.device("cpu")
    assert module_device(torch.nn.ReLU()) == torch.device("cpu")


def test_auto_batch_size_off_cuda_is_the_default():
    net = torch.nn.Conv3d(1, 1, 3)
    assert auto_batch_size(net, torch.zeros(1, 1, 5, 6, 7), default=16) == 16
    assert auto_batch_size(net, torch.zeros(1, 1, 5, 6, 7), default=5) == 5


# --- every command checks --device at the door -------------------------------------------------
COMMANDS = {
    # inputs that do not exist: the device error must come first, before any of them is read
    "train": ["train", "--lesions", "missing/", "--scores", "missing.csv"],
    "explain": ["explain", "--run", "missing_run"],
    "study": ["study", "--config", "missing.toml"],
    "demo": ["demo", "--quick"],
    "faces": ["faces", "--synthetic", "--quick"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize(("device", "match"), [
    ("banana", "--device must be auto, cpu, cuda, cuda:N or mps, got 'banana'"),
    ("cuda", "--device cuda: no CUDA GPU is available"),
    ("cuda:7", "--device cuda:7: no CUDA GPU is available"),
])
def test_every_command_rejects_a_bad_device_first(no_gpu, tmp_path, monkeypatch, capsys, command,
                                                  device, match):
    monkeypatch.chdir(tmp_path)
    argv = [*COMMANDS[command], "--out", "out", "--device", device]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("deeplsm: error: ") and match in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # no partial output


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_rejects_a_missing_gpu_index(two_gpus, tmp_path, monkeypatch, capsys, command):
    monkeypatch.chdir(tmp_path)
    assert main([*COMMANDS[command], "--out", "out", "--device", "cuda:7"]) == 2
    err = capsys.readouterr().err
    assert "deeplsm: error: --device cuda:7: there is no such GPU; torch sees 2" in err
    assert list(tmp_path.iterdir()) == []


def test_train_accelerator_that_contradicts_the_device(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = [*COMMANDS["train"], "--out", "out", "--device", "cpu", "--accelerator", "gpu"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "deeplsm: error: accelerator 'gpu' does not match the device cpu" in err


def test_study_device_keys_are_checked_before_any_stage(no_gpu, tmp_path):
    cfg = demo_config(quick=True)
    assert cfg["models"]["device"] == cfg["explain"]["device"] == "auto"
    cfg["explain"]["device"] = "cuda:1"
    with pytest.raises(DeepLSMError, match=r"explain\.device cuda:1: no CUDA GPU is available"):
        run_study(cfg, tmp_path / "out")
    cfg = demo_config(quick=True)
    cfg["models"]["device"] = "banana"
    with pytest.raises(DeepLSMError, match=r"models\.device must be auto, cpu"):
        run_study(cfg, tmp_path / "out")
    assert not (tmp_path / "out").exists()

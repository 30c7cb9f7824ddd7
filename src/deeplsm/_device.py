"""Where the networks run: one resolver for every command's ``--device`` and the study keys.

``auto`` picks a CUDA GPU when torch sees one, else Apple's MPS when it is usable, else the CPU.
Everything downstream takes the resolved :class:`torch.device`, so the CUDA path is the CPU path
with another device: nets are built and loaded there, explainers keep their batches there, and
only final sums come back to the host.
"""

from __future__ import annotations

import re

import torch

from deeplsm.exceptions import DeepLSMError

__all__ = [
    "DEVICE_HELP",
    "accumulation_dtype",
    "auto_batch_size",
    "module_device",
    "resolve_device",
    "trainer_hardware",
]

#: One sentence for every ``--device`` help text.
DEVICE_HELP = ("auto (a CUDA GPU when there is one, else Apple MPS, else the CPU), cpu, cuda, "
               "cuda:N or mps; checked before any work (default: auto)")

_CUDA = re.compile(r"^cuda(?::(\d+))?$")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(device: str | torch.device | None = "auto", *, what: str = "device") -> torch.device:
    """The :class:`torch.device` that ``device`` names, checked against this machine.

    Parameters
    ----------
    device : {'auto', 'cpu', 'cuda', 'cuda:N', 'mps'} or torch.device, default='auto'
        ``'auto'`` (or None) is the first of CUDA, MPS and the CPU that is available. ``'cuda'``
        is the current CUDA device, with its index filled in.
    what : str, default='device'
        How error messages name the setting (``'--device'``, ``'models.device'``).

    Returns
    -------
    torch.device
        ``cpu``, ``cuda:N`` (always with an index) or ``mps``.

    Raises
    ------
    DeepLSMError
        For an unknown name, CUDA or MPS that this machine lacks, or a GPU index it does not have.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if isinstance(device, torch.device):
        spec = str(device)
    elif device is None:
        spec = "auto"
    elif isinstance(device, str):
        spec = device.strip().lower()
    else:
        raise DeepLSMError(f"{what} must be a string such as 'auto', 'cpu' or 'cuda:0', "
                           f"got {type(device).__name__}")
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec in ("mps", "mps:0"):
        if not _mps_available():
            raise DeepLSMError(f"{what} {spec}: Apple MPS is not available on this machine; "
                               "use auto or cpu")
        return torch.device("mps")
    m = _CUDA.match(spec)
    if m is None:
        raise DeepLSMError(f"{what} must be auto, cpu, cuda, cuda:N or mps, got {device!r}")
    if not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise DeepLSMError(f"{what} {spec}: no CUDA GPU is available (torch {torch.__version__}, "
                           f"{build}); use auto or cpu")
    n = torch.cuda.device_count()
    index = torch.cuda.current_device() if m.group(1) is None else int(m.group(1))
    if index >= n:
        raise DeepLSMError(f"{what} {spec}: there is no such GPU; torch sees {n} CUDA device(s) "
                           f"(cuda:0 to cuda:{n - 1})")
    return torch.device("cuda", index)


#: ``torch.device.type`` -> Lightning accelerator name.
_ACCELERATOR = {"cpu": "cpu", "cuda": "gpu", "mps": "mps"}


def trainer_hardware(device: torch.device, *, accelerator: str | None = "auto",
                     devices: str | int | list[int] | None = "auto") -> tuple[str, int | list[int] | str]:
    """Lightning's ``(accelerator, devices)`` for training on ``device``.

    ``device`` alone trains on that one device (``cuda:1`` -> ``('gpu', [1])``). Several devices
    come from ``devices`` (a count or a list of GPU indices, with a DDP strategy): Lightning then
    gets ``(accelerator of device, devices)`` and ``device`` is where the trained run is
    evaluated and explained. An ``accelerator`` other than ``'auto'`` must agree with ``device``.

    Examples
    --------
    >>> trainer_hardware(torch.device("cpu"))
    ('cpu', 1)
    >>> trainer_hardware(torch.device("cuda", 1))
    ('gpu', [1])
    >>> trainer_hardware(torch.device("cuda", 0), devices=4)
    ('gpu', 4)
    """
    kind = _ACCELERATOR.get(device.type)
    if kind is None:
        raise DeepLSMError(f"cannot train on device {device}; use cpu, cuda or mps")
    acc = "auto" if accelerator is None else str(accelerator).strip().lower()
    if acc not in ("auto", kind) and not (acc == "cuda" and kind == "gpu"):
        raise DeepLSMError(f"accelerator {accelerator!r} does not match the device {device}; "
                           "leave the accelerator at auto and choose the device with --device")
    if isinstance(devices, str) and devices.strip().isdigit():
        devices = int(devices)
    if devices in (None, "auto", 1):
        return kind, ([0 if device.index is None else device.index] if kind == "gpu" else 1)
    if kind == "mps":
        raise DeepLSMError(f"devices={devices!r}: Apple MPS is one device")
    if isinstance(devices, int) and devices < 1:
        raise DeepLSMError(f"devices must be a positive count or a list of GPU indices, got {devices!r}")
    return kind, devices


def accumulation_dtype(device: torch.device) -> torch.dtype:
    """float64 for sums on the CPU and CUDA; float32 on MPS, which has no float64."""
    return torch.float32 if device.type == "mps" else torch.float64


def module_device(model: torch.nn.Module) -> torch.device:
    """The device of a module's first parameter (or buffer); the CPU for one with neither."""
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


def auto_batch_size(model: torch.nn.Module, sample: torch.Tensor, *, default: int = 16,
                    limit: int = 256, fraction: float = 0.5) -> int:
    """Inputs per inference pass of ``model``: ``default`` off CUDA; on CUDA, what fits.

    On a CUDA device the activation memory of one input is measured from a forward pass of two
    copies of ``sample`` (shape ``(1, ...)``, on the model's device) under ``no_grad``, and the
    batch is ``fraction`` of the free memory divided by that, between 1 and ``limit``.
    """
    device = module_device(model)
    if device.type != "cuda":
        return int(default)
    x = sample[:1].expand(2, *sample.shape[1:]).contiguous()
    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    with torch.no_grad():
        model(x)
    torch.cuda.synchronize(device)
    per_input = max(1, (torch.cuda.max_memory_allocated(device) - base) // 2)
    free, _ = torch.cuda.mem_get_info(device)
    return int(max(1, min(limit, fraction * free // per_input)))

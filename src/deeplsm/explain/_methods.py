"""Attribution methods with one shape: the model at construction, data and options at call time.

Every class has

* ``attribute(volumes, *, target=..., ...)`` -> a tensor shaped like ``volumes``;
* ``attribute_targets(volumes, *, targets=..., ...)`` -> ``(N, n_targets, *volumes.shape[1:])``.

Integrated Gradients, GradientSHAP and :class:`OcclusionMap` wrap captum. :class:`LesionAwareOcclusion`
is our own and gives the same numbers as captum's ``Occlusion`` (within float rounding) while
evaluating only the windows that contain a voxel different from the baseline, and serving every
target from one forward pass per window.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from deeplsm._device import accumulation_dtype, auto_batch_size, module_device
from deeplsm._utils import progress_disabled
from deeplsm.exceptions import DeepLSMError

__all__ = [
    "GradientShapMap",
    "IntegratedGradientsMap",
    "LesionAwareOcclusion",
    "OcclusionMap",
    "occlusion_windows",
]


# --- helpers ------------------------------------------------------------------------------
def _as_volumes(volumes) -> tuple[torch.Tensor, bool]:
    """Return a float32 (N, C, X, Y, Z) tensor and whether a channel axis was added."""
    if isinstance(volumes, np.ndarray):
        volumes = torch.from_numpy(np.ascontiguousarray(volumes))
    if not isinstance(volumes, torch.Tensor):
        raise DeepLSMError(f"volumes must be a numpy array or torch tensor, got {type(volumes).__name__}")
    if volumes.ndim == 4:
        return volumes.float().unsqueeze(1), True
    if volumes.ndim != 5:
        raise DeepLSMError(
            f"volumes must have shape (N, C, X, Y, Z) or (N, X, Y, Z), got {tuple(volumes.shape)}"
        )
    return volumes.float(), False


def _triple(value, name: str) -> tuple[int, int, int]:
    if isinstance(value, int | np.integer):
        value = (int(value),) * 3
    value = tuple(int(v) for v in value)
    if len(value) != 3 or any(v <= 0 for v in value):
        raise DeepLSMError(f"{name} must be a positive integer or 3 positive integers, got {value}")
    return value


def _check_positive_int(value, name: str) -> int:
    if not isinstance(value, int | np.integer) or value <= 0:
        raise DeepLSMError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


@contextlib.contextmanager
def _seeded(random_state: int | None, device: torch.device | None = None) -> Iterator[None]:
    """Seed torch and numpy's global RNG (captum draws from both) and restore them afterwards.

    The generator of a CUDA ``device`` is forked too, so seeding leaves no trace there either.
    """
    if random_state is None:
        yield
        return
    np_state = np.random.get_state()  # noqa: NPY002 (captum draws from it)
    cuda = [device.index] if device is not None and device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(int(random_state))
        np.random.seed(int(random_state) % (2**32))  # noqa: NPY002
        try:
            yield
        finally:
            np.random.set_state(np_state)  # noqa: NPY002


def _forward_2d(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = model(x)
    if out.ndim == 1:
        out = out.unsqueeze(1)
    return out.reshape(out.shape[0], -1)


def _target_list(targets, n_outputs: int | None = None) -> list[int | None]:
    if targets is None:
        if n_outputs is None:
            return [None]
        return list(range(n_outputs))
    if isinstance(targets, int | np.integer):
        return [int(targets)]
    out = [None if t is None else int(t) for t in targets]
    if not out:
        raise DeepLSMError("targets is empty")
    return out


class _AttributionMethod:
    """Shared plumbing: eval mode, device, shape bookkeeping, per-target loop."""

    #: short name used in file names (``RUN/maps/{name}_{output}.nii.gz``)
    name = "base"

    def __init__(self, model: torch.nn.Module) -> None:
        if not isinstance(model, torch.nn.Module):
            raise DeepLSMError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model

    def attribute(self, volumes, *, target: int | None = None, **kwargs) -> torch.Tensor:
        """Attributions for one output column, shaped like ``volumes``."""
        x, added = _as_volumes(volumes)
        out = self.attribute_targets(x, targets=[target], **kwargs)[:, 0]
        return out.squeeze(1) if added else out

    def attribute_targets(self, volumes, *, targets: Sequence[int] | int | None = None,
                          **kwargs) -> torch.Tensor:
        """Attributions for several output columns: shape ``(N, n_targets, *volumes.shape[1:])``.

        ``targets=None`` means every output column of the model.
        """
        x, added = _as_volumes(volumes)
        self.model.eval()
        device = module_device(self.model)
        if targets is None:
            with torch.no_grad():
                n_out = _forward_2d(self.model, x[:1].to(device)).shape[1]
            targets = list(range(n_out))
        tl = _target_list(targets)
        res = torch.stack([self._attribute_one(x, t, **kwargs) for t in tl], dim=1)
        return res.squeeze(2) if added else res

    def _attribute_one(self, x: torch.Tensor, target, **kwargs) -> torch.Tensor:  # pragma: no cover
        # Subclasses either attribute one target at a time here, or (like LesionAwareOcclusion)
        # override attribute_targets to serve every target from one sweep.
        raise TypeError(f"{type(self).__name__} does not attribute targets one at a time")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({type(self.model).__name__})"


# --- gradient methods ---------------------------------------------------------------------
class IntegratedGradientsMap(_AttributionMethod):
    """Integrated Gradients (captum) from an all-zero baseline, multiplied by the inputs.

    Because the baseline is zero and attributions are multiplied by ``input - baseline``, every
    voxel that is 0 in a binary lesion map gets exactly 0.

    Parameters
    ----------
    model : torch.nn.Module
        Takes float32 ``(N, 1, X, Y, Z)`` and returns ``(N, n_outputs)``. Put in eval mode.
    """

    name = "ig"

    def attribute_targets(self, volumes, *, targets=None, n_steps: int = 32,
                          internal_batch_size: int | None = 8, batch_size: int = 4,
                          verbose: bool = False) -> torch.Tensor:
        """Integrated Gradients for each target.

        Parameters
        ----------
        volumes : Tensor or ndarray of shape (N, C, X, Y, Z) or (N, X, Y, Z)
        targets : int, sequence of int or None, default=None
            Output columns; ``None`` means all.
        n_steps : int, default=32
            Riemann steps along the straight path from the zero baseline.
        internal_batch_size : int or None, default=8
            Path points per forward/backward pass (memory bound).
        batch_size : int, default=4
            Subjects per captum call.
        verbose : bool, default=False
            Progress bar over subjects.
        """
        _check_positive_int(n_steps, "n_steps")
        _check_positive_int(batch_size, "batch_size")
        if internal_batch_size is not None:
            _check_positive_int(internal_batch_size, "internal_batch_size")
        return super().attribute_targets(volumes, targets=targets, n_steps=n_steps,
                                         internal_batch_size=internal_batch_size,
                                         batch_size=batch_size, verbose=verbose)

    def attribute(self, volumes, *, target=None, n_steps: int = 32,
                  internal_batch_size: int | None = 8, batch_size: int = 4,
                  verbose: bool = False) -> torch.Tensor:
        """Integrated Gradients for one output column, shaped like ``volumes``."""
        return super().attribute(volumes, target=target, n_steps=n_steps,
                                 internal_batch_size=internal_batch_size, batch_size=batch_size,
                                 verbose=verbose)

    def _attribute_one(self, x, target, *, n_steps, internal_batch_size, batch_size, verbose):
        from captum.attr import IntegratedGradients

        device = module_device(self.model)
        ig = IntegratedGradients(self.model, multiply_by_inputs=True)
        outs = []
        for i in tqdm(range(0, x.shape[0], batch_size), desc=f"IG target {target}",
                      disable=progress_disabled(verbose), leave=False):
            xb = x[i:i + batch_size].to(device)
            a = ig.attribute(xb, baselines=torch.zeros_like(xb), target=target, n_steps=n_steps,
                             internal_batch_size=internal_batch_size)
            outs.append(a.detach().to(x.device))
        return torch.cat(outs)


class GradientShapMap(_AttributionMethod):
    """GradientSHAP (captum) with an all-zero baseline, optionally inside NoiseTunnel.

    With ``nt_samples=None`` (the default) it is plain GradientSHAP: ``n_samples`` random points
    between the zero baseline and the input, gradient × (input − baseline); voxels that are 0 in
    the input get exactly 0. With ``nt_samples`` set, Gaussian noise of standard deviation
    ``stdevs`` is added ``nt_samples`` times and the results are combined by ``nt_type``
    (``'smoothgrad_sq'`` as in the paper); the noise makes the map nonzero outside the lesion.

    Parameters
    ----------
    model : torch.nn.Module
        Takes float32 ``(N, 1, X, Y, Z)`` and returns ``(N, n_outputs)``. Put in eval mode.
    """

    name = "gradshap"

    def attribute_targets(self, volumes, *, targets=None, n_samples: int = 8,
                          nt_samples: int | None = None, stdevs: float = 0.1,
                          nt_type: str = "smoothgrad_sq", batch_size: int = 4,
                          random_state: int | None = None, verbose: bool = False) -> torch.Tensor:
        """GradientSHAP for each target.

        Parameters
        ----------
        volumes : Tensor or ndarray of shape (N, C, X, Y, Z) or (N, X, Y, Z)
        targets : int, sequence of int or None, default=None
        n_samples : int, default=8
            Random baseline-to-input points per input (GradientSHAP's own samples).
        nt_samples : int or None, default=None
            NoiseTunnel samples (the paper used 10); ``None`` disables NoiseTunnel. Passed to
            captum as ``nt_samples`` (captum 0.9 would silently give ``n_samples`` to
            GradientSHAP instead).
        stdevs : float, default=0.1
            NoiseTunnel noise standard deviation (inputs are 0/1).
        nt_type : {'smoothgrad_sq', 'smoothgrad', 'vargrad'}, default='smoothgrad_sq'
        batch_size : int, default=4
            Subjects per captum call.
        random_state : int or None, default=None
            Seeds captum's draws (torch and numpy global RNGs, restored afterwards).
        verbose : bool, default=False
        """
        _check_positive_int(n_samples, "n_samples")
        _check_positive_int(batch_size, "batch_size")
        if nt_samples is not None:
            _check_positive_int(nt_samples, "nt_samples")
        if nt_type not in ("smoothgrad", "smoothgrad_sq", "vargrad"):
            raise DeepLSMError(f"nt_type must be smoothgrad, smoothgrad_sq or vargrad, got {nt_type!r}")
        if not stdevs >= 0:
            raise DeepLSMError(f"stdevs must be >= 0, got {stdevs}")
        with _seeded(random_state, module_device(self.model)):
            return super().attribute_targets(volumes, targets=targets, n_samples=n_samples,
                                             nt_samples=nt_samples, stdevs=float(stdevs),
                                             nt_type=nt_type, batch_size=batch_size,
                                             verbose=verbose)

    def attribute(self, volumes, *, target=None, n_samples: int = 8, nt_samples: int | None = None,
                  stdevs: float = 0.1, nt_type: str = "smoothgrad_sq", batch_size: int = 4,
                  random_state: int | None = None, verbose: bool = False) -> torch.Tensor:
        """GradientSHAP for one output column, shaped like ``volumes``."""
        x, added = _as_volumes(volumes)
        out = self.attribute_targets(x, targets=[target], n_samples=n_samples, nt_samples=nt_samples,
                                     stdevs=stdevs, nt_type=nt_type, batch_size=batch_size,
                                     random_state=random_state, verbose=verbose)[:, 0]
        return out.squeeze(1) if added else out

    def _attribute_one(self, x, target, *, n_samples, nt_samples, stdevs, nt_type, batch_size,
                       verbose):
        from captum.attr import GradientShap, NoiseTunnel

        device = module_device(self.model)
        gs = GradientShap(self.model, multiply_by_inputs=True)
        outs = []
        for i in tqdm(range(0, x.shape[0], batch_size), desc=f"GradientSHAP target {target}",
                      disable=progress_disabled(verbose), leave=False):
            xb = x[i:i + batch_size].to(device)
            base = torch.zeros_like(xb[:1])
            if nt_samples is None:
                a = gs.attribute(xb, baselines=base, target=target, n_samples=n_samples)
            else:
                a = NoiseTunnel(gs).attribute(
                    xb, nt_type=nt_type, nt_samples=nt_samples, stdevs=stdevs,
                    draw_baseline_from_distrib=True, baselines=base, target=target,
                    n_samples=n_samples,
                )
            outs.append(a.detach().to(x.device))
        return torch.cat(outs)


# --- occlusion ----------------------------------------------------------------------------
def _axis_windows(size: int, window: int, stride: int, axis: str) -> tuple[np.ndarray, np.ndarray]:
    """Window starts and (clipped) stops along one axis, exactly as captum enumerates them."""
    if window > size:
        raise DeepLSMError(f"occlusion window {window} exceeds the volume size {size} along {axis}")
    if size > window and stride > window:
        raise DeepLSMError(
            f"occlusion stride {stride} is larger than the window {window} along {axis}; "
            "some voxels would never be occluded"
        )
    n = math.ceil((size - window) / stride) + 1
    starts = np.arange(n, dtype=np.int64) * stride
    stops = np.minimum(starts + window, size)
    return starts, stops


def occlusion_windows(shape: Sequence[int], window, stride) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Starts and stops of captum's occlusion windows along each spatial axis.

    captum places ``ceil((size - window) / stride) + 1`` windows per axis at multiples of
    ``stride``; the last one may run past the edge and is clipped.

    Returns
    -------
    starts, stops : list of 3 int arrays
    """
    window, stride = _triple(window, "window"), _triple(stride, "stride")
    res = [_axis_windows(int(s), w, st, ax) for s, w, st, ax in zip(shape, window, stride, "xyz")]
    return [r[0] for r in res], [r[1] for r in res]


def _membership(starts: np.ndarray, stops: np.ndarray, size: int, device: torch.device,
                dtype: torch.dtype) -> torch.Tensor:
    """(n_windows, size) 0/1 matrix: which voxels along one axis each window covers."""
    c = torch.arange(size, device=device)
    lo = torch.as_tensor(starts, device=device)[:, None]
    hi = torch.as_tensor(stops, device=device)[:, None]
    return ((c[None, :] >= lo) & (c[None, :] < hi)).to(dtype)


class OcclusionMap(_AttributionMethod):
    """captum's ``Occlusion`` with a cubic window over all channels and a zero baseline.

    It evaluates every window, ``ceil((X-w)/s+1)·ceil((Y-w)/s+1)·ceil((Z-w)/s+1)`` forward
    passes per volume and target. :class:`LesionAwareOcclusion` gives the same result faster.
    """

    name = "occlusion_captum"

    def attribute_targets(self, volumes, *, targets=None, window=8, stride=4, baseline: float = 0.0,
                          batch_size: int = 16, verbose: bool = False) -> torch.Tensor:
        """captum Occlusion for each target (one full sweep per target).

        Parameters
        ----------
        volumes : Tensor or ndarray of shape (N, C, X, Y, Z) or (N, X, Y, Z)
        targets : int, sequence of int or None, default=None
        window, stride : int or 3 ints, default=8, 4
            Cubic window and stride in voxels (the paper: 8 and 4).
        baseline : float, default=0.0
        batch_size : int, default=16
            Occluded volumes per forward pass (captum's ``perturbations_per_eval`` × N).
        verbose : bool, default=False
        """
        _check_positive_int(batch_size, "batch_size")
        x, _ = _as_volumes(volumes)
        occlusion_windows(x.shape[2:], window, stride)  # validates
        return super().attribute_targets(volumes, targets=targets, window=_triple(window, "window"),
                                         stride=_triple(stride, "stride"), baseline=float(baseline),
                                         batch_size=batch_size, verbose=verbose)

    def attribute(self, volumes, *, target=None, window=8, stride=4, baseline: float = 0.0,
                  batch_size: int = 16, verbose: bool = False) -> torch.Tensor:
        """captum Occlusion for one output column, shaped like ``volumes``."""
        return super().attribute(volumes, target=target, window=window, stride=stride,
                                 baseline=baseline, batch_size=batch_size, verbose=verbose)

    def _attribute_one(self, x, target, *, window, stride, baseline, batch_size, verbose):
        from captum.attr import Occlusion

        device = module_device(self.model)
        occ = Occlusion(self.model)
        c = x.shape[1]
        outs = []
        for i in range(x.shape[0]):  # one volume at a time so batch_size means volumes per pass
            xb = x[i:i + 1].to(device)
            with torch.no_grad():
                a = occ.attribute(xb, sliding_window_shapes=(c, *window), strides=(1, *stride),
                                  baselines=baseline, target=target,
                                  perturbations_per_eval=batch_size,
                                  show_progress=not progress_disabled(verbose))
            outs.append(a.detach().to(x.device))
        return torch.cat(outs)


class LesionAwareOcclusion(_AttributionMethod):
    """Occlusion that evaluates only the windows containing a voxel that differs from the baseline.

    Same semantics as captum's ``Occlusion``: windows are enumerated as captum does (including
    its clipped last window), each window's attribution is ``f(x) - f(x with the window set to
    the baseline)``, and every voxel's sum is divided by captum's per-voxel window count. A window
    whose voxels all equal the baseline leaves the input unchanged, so its attribution is exactly
    zero and it is skipped. With sparse binary lesion maps and a zero baseline that is most of
    them. One forward pass serves every target, so several outputs cost no more than one.

    All the work happens on the model's device: the inputs are copied there once, each batch of
    occluded volumes is gathered from them and masked there, window values are kept there, and
    the attributions are scattered back to voxels there. They are returned on the device of the
    inputs, as captum does. Sums are kept in float64 (float32 on Apple MPS, which lacks float64);
    the result equals ``captum.attr.Occlusion`` up to float rounding.

    Parameters
    ----------
    model : torch.nn.Module
        Takes float32 ``(N, C, X, Y, Z)`` and returns ``(N, n_outputs)``. Put in eval mode.

    Attributes
    ----------
    n_windows_ : int
        Windows in the full captum sweep, per volume (after a call).
    n_evaluated_ : int
        Windows actually evaluated, summed over volumes (after a call).
    batch_size_ : int
        Occluded volumes per forward pass in the last call.
    """

    name = "occlusion"

    def attribute_targets(self, volumes, *, targets=None, window=8, stride=4, baseline: float = 0.0,
                          batch_size: int | None = None, verbose: bool = False) -> torch.Tensor:
        """Occlusion attributions for several targets from one sweep.

        Parameters
        ----------
        volumes : Tensor or ndarray of shape (N, C, X, Y, Z) or (N, X, Y, Z)
        targets : int, sequence of int or None, default=None
            Output columns; ``None`` means all columns of the model's output.
        window, stride : int or 3 ints, default=8, 4
            Cubic (or box) window and stride in voxels.
        baseline : float, default=0.0
            Value an occluded voxel takes.
        batch_size : int or None, default=None
            Occluded volumes per forward pass (windows of several subjects share a batch).
            ``None``: 16, or on a CUDA device as many as half its free memory holds (measured
            from one forward pass; at most 256).
        verbose : bool, default=False

        Returns
        -------
        Tensor of shape (N, n_targets, *volumes.shape[1:]), float32, on the inputs' device
        """
        if batch_size is not None:
            _check_positive_int(batch_size, "batch_size")
        x, added = _as_volumes(volumes)
        n, c = x.shape[:2]
        shape = tuple(int(s) for s in x.shape[2:])
        starts, stops = occlusion_windows(shape, window, stride)
        nwin = tuple(len(s) for s in starts)
        self.n_windows_ = int(np.prod(nwin))

        model = self.model
        model.eval()
        device = module_device(model)
        acc = accumulation_dtype(device)
        baseline = float(baseline)
        xd = x.to(device)  # the only copy of the inputs to the device
        if batch_size is None:
            batch_size = auto_batch_size(model, xd[:1])
        self.batch_size_ = int(batch_size)

        # f(x) for every subject, all outputs
        with torch.no_grad():
            f0 = torch.cat([_forward_2d(model, xd[i:i + batch_size]).to(acc)
                            for i in range(0, n, batch_size)])
        tl = _target_list(targets, f0.shape[1])
        if any(t is None for t in tl):
            if f0.shape[1] != 1:
                raise DeepLSMError(f"target=None needs a single-output model; it has {f0.shape[1]}")
            tl = [0]
        bad = [t for t in tl if not -f0.shape[1] <= t < f0.shape[1]]
        if bad:
            raise DeepLSMError(f"target {bad[0]} out of range for a model with {f0.shape[1]} outputs")
        tidx = torch.tensor(tl, dtype=torch.long, device=device)
        f0 = f0[:, tidx]  # (n, n_targets)

        # Windows containing a non-baseline voxel, from a summed-volume table of every subject:
        # (subject, wi, wj, wk) rows in subject-major, C order.
        nz = (xd != baseline).any(1).to(torch.int32)
        table = torch.zeros((n, *(d + 1 for d in shape)), dtype=torch.int32, device=device)
        table[:, 1:, 1:, 1:] = nz.cumsum(1, dtype=torch.int32).cumsum(2, dtype=torch.int32).cumsum(
            3, dtype=torch.int32)
        lo = [torch.as_tensor(s, device=device) for s in starts]
        hi = [torch.as_tensor(s, device=device) for s in stops]
        a0, a1 = lo[0][:, None, None], hi[0][:, None, None]
        b0, b1 = lo[1][None, :, None], hi[1][None, :, None]
        c0, c1 = lo[2][None, None, :], hi[2][None, None, :]
        t = table
        box = (t[:, a1, b1, c1] - t[:, a0, b1, c1] - t[:, a1, b0, c1] - t[:, a1, b1, c0]
               + t[:, a0, b0, c1] + t[:, a0, b1, c0] + t[:, a1, b0, c0] - t[:, a0, b0, c0])
        jobs = torch.nonzero(box > 0)  # (n_jobs, 4)
        del table, box, nz
        self.n_evaluated_ = int(jobs.shape[0])

        axes = [torch.arange(s, device=device) for s in shape]
        diffs = torch.zeros((n, *nwin, len(tl)), dtype=acc, device=device)
        pbar = tqdm(total=self.n_evaluated_, desc="lesion-aware occlusion", unit="window",
                    disable=progress_disabled(verbose), leave=False)
        with torch.no_grad():
            for j in range(0, self.n_evaluated_, batch_size):
                job = jobs[j:j + batch_size]
                subj = job[:, 0]
                # the occluded batch: gathered from the inputs and masked, on the device
                w = [job[:, k + 1, None] for k in range(3)]
                ins = [(ax >= lo[k][w[k]]) & (ax < hi[k][w[k]]) for k, ax in enumerate(axes)]
                occluded = ins[0][:, :, None, None] & ins[1][:, None, :, None] & ins[2][:, None, None, :]
                xb = xd[subj].masked_fill_(occluded[:, None], baseline)
                out = _forward_2d(model, xb)[:, tidx].to(acc)
                diffs[subj, job[:, 1], job[:, 2], job[:, 3]] = f0[subj] - out
                pbar.update(int(job.shape[0]))
        pbar.close()

        # scatter window values back to voxels: separable sums over the three window axes
        mem = [_membership(a, b, s, device, acc) for a, b, s in zip(starts, stops, shape)]
        att = torch.einsum("nijkt,ix->ntxjk", diffs, mem[0])
        att = torch.einsum("ntxjk,jy->ntxyk", att, mem[1])
        att = torch.einsum("ntxyk,kz->ntxyz", att, mem[2])
        counts = torch.einsum("x,y,z->xyz", *[m.sum(0) for m in mem])
        att = (att / counts).to(torch.float32)
        res = att.unsqueeze(2).expand(n, len(tl), c, *shape).contiguous().to(x.device)
        return res.squeeze(2) if added else res

    def attribute(self, volumes, *, target=None, window=8, stride=4, baseline: float = 0.0,
                  batch_size: int | None = None, verbose: bool = False) -> torch.Tensor:
        """Occlusion attributions for one output column, shaped like ``volumes``."""
        x, added = _as_volumes(volumes)
        out = self.attribute_targets(x, targets=[target], window=window, stride=stride,
                                     baseline=baseline, batch_size=batch_size, verbose=verbose)[:, 0]
        return out.squeeze(1) if added else out


def mm_to_voxels(size_mm: float, voxel_size: Sequence[float]) -> tuple[int, int, int]:
    """Convert a length in mm to a whole number of voxels per axis (rounded, at least 1)."""
    if not size_mm > 0:
        raise DeepLSMError(f"size in mm must be positive, got {size_mm}")
    return tuple(max(1, round(size_mm / float(v))) for v in voxel_size)

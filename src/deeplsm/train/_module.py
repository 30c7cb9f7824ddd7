"""The LightningModule: per-output losses, optional mixup, bf16 guards and non-finite-step guards."""

from __future__ import annotations

import contextlib
import functools
import logging
import math
from collections.abc import Sequence

import lightning as L
import torch
from torch import nn
from torch.nn import functional as F

from deeplsm.models import REGRESSION_KINDS, TaskSpec, activate_output, build_net

log = logging.getLogger("deeplsm")


class LSMModule(L.LightningModule):
    """Trains a :class:`deeplsm.models.MultiOutputNet` on in-memory uint8 (or float) inputs.

    Parameters
    ----------
    outputs : list of dict
        :meth:`TaskSpec.to_list` of the outputs this network predicts.
    dims : {2, 3}, default=3
        3D ResNet10 on lesion maps, or 2D ResNet18 on images.
    n_input_channels : int or None, default=None
        1 for 3D, 3 for 2D when None.
    optimizer : {'adam', 'adamw', 'sgd'}, default='adamw'
    lr : float, default=1e-3
    weight_decay : float, default=0.0
    scheduler : {'onecycle', 'step', 'cosine', 'none'}, default='onecycle'
        ``'step'`` multiplies the learning rate by ``gamma`` at each epoch in ``milestones``
        (the paper's 1e-5 → 1e-6 after epoch 100).
    milestones : sequence of int, default=(100,)
    gamma : float, default=0.1
    mixup_alpha : float, default=0.0
        Mixup of inputs and targets with Beta(alpha, alpha) weights; 0 disables it. Only for
        regression outputs, and valid only when the scores are linear in the input (the
        paper's overlap-fraction scores are).
    input_scale : float, default=1.0
        Inputs become ``x.float() * input_scale`` per batch (1 for {0,1} lesion maps, 1/255 for
        8-bit images).
    channels_last : bool, default=False
        Use channels_last(_3d) memory format for weights and inputs.
    fp32_modules : sequence of str, default=('backbone.layer4',)
        Submodules kept in fp32 under bf16 autocast. In layer4 the feature maps are ~2×2×2
        and the bf16 weight gradients overflowed in 1–2 of every 80 steps (NaN weights by step
        ~42 in a probe), at negligible cost to keep in fp32.
    regression_scale : sequence of float or None
        Per-output multiplier for ``regression`` outputs (ignored for other kinds).
    weights : str or None
        Local pretrained backbone weights (MedicalNet for 3D, torchvision ImageNet for 2D).
    head, head_stage, output01, readout_l1, readout_positive, no_max_pool, subtract_empty, input_shape
        The network's head (see :func:`deeplsm.models.build_net`): the paper's ``'mlp'`` on
        pooled features, or a ``'spatial'`` readout / ``'flat'`` linear head on the feature map
        of stage ``head_stage`` (these need the ``input_shape`` of the grid); ``output01`` is
        the output of ``regression01`` columns (``'sigmoid'`` or ``'linear'``), and the head's
        ``penalty()`` (``readout_l1``) is added to the training loss.
    """

    def __init__(
        self,
        outputs: list[dict],
        dims: int = 3,
        n_input_channels: int | None = None,
        optimizer: str = "adamw",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        scheduler: str = "onecycle",
        milestones: Sequence[int] = (100,),
        gamma: float = 0.1,
        mixup_alpha: float = 0.0,
        input_scale: float = 1.0,
        channels_last: bool = False,
        fp32_modules: Sequence[str] = ("backbone.layer4",),
        regression_scale: Sequence[float] | None = None,
        weights: str | None = None,
        head: str = "mlp",
        head_stage: int = 4,
        output01: str = "sigmoid",
        readout_l1: float = 0.0,
        readout_positive: bool = False,
        no_max_pool: bool = False,
        subtract_empty: bool = False,
        input_shape: Sequence[int] | None = None,
        target_means: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.task = TaskSpec(outputs)
        self.net = build_net(self.task, dims=dims, n_input_channels=n_input_channels, weights=weights,
                             head=head, head_stage=head_stage, output01=output01,
                             readout_l1=readout_l1, readout_positive=readout_positive,
                             no_max_pool=no_max_pool,
                             subtract_empty=subtract_empty, input_shape=input_shape)
        if regression_scale is not None:
            self.net.head.scale.copy_(torch.as_tensor(list(regression_scale), dtype=torch.float32))
        if target_means is not None:
            init_output_bias(self.net.head, self.task, target_means, output01)
        if mixup_alpha and any(o.kind not in REGRESSION_KINDS for o in self.task):
            # Mixed class labels are not labels; keep mixup to the linear-score case.
            raise ValueError("mixup is only supported when every output is a regression")
        self.n_skipped_steps = 0

    # --- inputs -----------------------------------------------------------------------------
    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        if self.hparams.input_scale != 1.0:
            x = x * self.hparams.input_scale
        if self.hparams.channels_last:
            x = x.contiguous(memory_format=_memory_format(x.ndim))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self._prepare(x))

    # --- losses -----------------------------------------------------------------------------
    def losses(self, logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Weighted sum of per-output losses (computed in fp32), and each output's loss."""
        logits = logits.float()
        per: dict[str, torch.Tensor] = {}
        total = logits.new_zeros(())
        cols = self.task.columns
        scale = self.net.head.scale
        for i, spec in enumerate(self.task):
            z = logits[:, cols[spec.name]]
            t = y[:, i]
            if spec.kind == "regression01":
                # sigmoid, or the identity for a linear output (clamped only when predicting)
                loss = F.mse_loss(activate_output(spec.kind, z[:, 0], self.net.head.output01), t)
            elif spec.kind == "regression":
                # On the unit scale: the head multiplies by `scale` only at inference.
                loss = F.mse_loss(F.leaky_relu(z[:, 0]), t / scale[i])
            elif spec.kind == "binary":
                loss = F.binary_cross_entropy_with_logits(z[:, 0], t)
            else:
                loss = F.cross_entropy(z, t.long())
            per[spec.name] = loss
            total = total + spec.weight * loss
        return total, per

    def _mixup(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = float(self.hparams.mixup_alpha)
        lam = float(torch.distributions.Beta(a, a).sample())
        perm = torch.randperm(x.shape[0], device=x.device)
        return lam * x + (1 - lam) * x[perm], lam * y + (1 - lam) * y[perm]

    def training_step(self, batch, batch_idx):
        x, y = batch
        x = self._prepare(x)
        if self.hparams.mixup_alpha:
            x, y = self._mixup(x, y)
        total, _ = self.losses(self.net.logits(x), y)
        total = total + self.net.head.penalty()
        if not torch.isfinite(total):
            # Returning None makes Lightning skip the optimiser step for this batch.
            self.n_skipped_steps += 1
            log.warning("non-finite training loss at step %d; batch skipped", self.global_step)
            return None
        self.log("train_loss", total, on_step=False, on_epoch=True, batch_size=len(x), sync_dist=True)
        return total

    def validation_step(self, batch, batch_idx):
        x, y = batch
        total, per = self.losses(self.net.logits(self._prepare(x)), y)
        self.log("val_loss", total, on_epoch=True, batch_size=len(x), prog_bar=True, sync_dist=True)
        if len(per) > 1:
            for name, v in per.items():
                self.log(f"val_loss/{name}", v, on_epoch=True, batch_size=len(x), sync_dist=True)

    def on_before_optimizer_step(self, optimizer) -> None:
        # A non-finite gradient would poison Adam's moments for good: drop the whole step.
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        # One fused pass: a norm is non-finite iff its tensor holds an inf or a NaN.
        if grads and not torch.isfinite(torch.stack(torch._foreach_norm(grads))).all():
            self.n_skipped_steps += 1
            log.warning("non-finite gradient at step %d; step skipped", self.global_step)
            optimizer.zero_grad(set_to_none=True)

    # --- precision and memory format ----------------------------------------------------------
    def on_fit_start(self) -> None:
        if self.hparams.channels_last:
            self.net.to(memory_format=_memory_format(self.hparams.dims + 2))
        if "bf16" in str(self.trainer.precision) or "16" in str(self.trainer.precision):
            for name in self.hparams.fp32_modules:
                name = name.removeprefix("net.")
                with contextlib.suppress(AttributeError):  # a head on an earlier stage cuts layer4
                    _keep_fp32(self.net.get_submodule(name))

    # --- optimisation -----------------------------------------------------------------------
    def configure_optimizers(self):
        hp = self.hparams
        params = self.parameters()
        if hp.optimizer == "adam":
            opt = torch.optim.Adam(params, lr=hp.lr, weight_decay=hp.weight_decay)
        elif hp.optimizer == "adamw":
            opt = torch.optim.AdamW(params, lr=hp.lr, weight_decay=hp.weight_decay)
        elif hp.optimizer == "sgd":
            opt = torch.optim.SGD(params, lr=hp.lr, momentum=0.9, weight_decay=hp.weight_decay)
        else:
            raise ValueError(f"unknown optimizer {hp.optimizer!r}")
        if hp.scheduler == "none":
            return opt
        if hp.scheduler == "step":
            sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(hp.milestones), gamma=hp.gamma)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
        # OneCycle needs a few steps per phase; a very short run just ends early in the cycle.
        total = max(8, int(self.trainer.estimated_stepping_batches))
        if hp.scheduler == "onecycle":
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=hp.lr, total_steps=total, pct_start=0.25)
        elif hp.scheduler == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
        else:
            raise ValueError(f"unknown scheduler {hp.scheduler!r}")
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def init_output_bias(head: nn.Module, task: TaskSpec, means: Sequence[float], output01: str) -> bool:
    """Start each ``regression01`` output of a readout head at the training mean of its target
    (hyperparameter ``bias_init = "mean"``) instead of 0.

    Only for the heads with one bias per output column and an identity output (``head`` =
    ``'spatial'`` or ``'flat'``, ``output01 = 'linear'``): with ``subtract_empty`` an empty map
    then predicts the mean, and a score that is near 1 for most subjects (a lower-is-worse
    accuracy) does not have to travel there from 0 within a short one-cycle schedule. Returns
    whether the bias was set.
    """
    bias = getattr(head, "bias", None)
    if bias is None and isinstance(getattr(head, "linear", None), nn.Linear):
        bias = head.linear.bias
    if not isinstance(bias, torch.Tensor) or output01 != "linear":
        return False
    with torch.no_grad():
        for spec, mean in zip(task, means):
            if spec.kind == "regression01":
                bias[task.columns[spec.name]] = float(mean)
    return True


def _memory_format(ndim: int) -> torch.memory_format:
    return torch.channels_last_3d if ndim == 5 else torch.channels_last


def _keep_fp32(module: nn.Module) -> None:
    """Run ``module`` with autocast disabled and fp32 inputs (idempotent).

    The forward is replaced on the instance, so parameter names and checkpoints are unchanged.
    """
    if getattr(module, "_deeplsm_fp32", False):
        return
    inner = module.forward

    @functools.wraps(inner)
    def forward(x, *args, **kwargs):
        with torch.autocast(device_type=x.device.type, enabled=False):
            return inner(x.float(), *args, **kwargs)

    module.forward = forward
    module._deeplsm_fp32 = True


@contextlib.contextmanager
def flush_denormal():
    """Flush denormal floats to zero on the CPU while training or predicting.

    Measured on this project's 2-core CPU: a ResNet10 step on a 16×20×16 grid took 1.5–2.5 s
    with denormals and 0.14 s without (the paper-scale 44×55×47 grid was unaffected).
    """
    was = torch.is_flush_denormal() if hasattr(torch, "is_flush_denormal") else False
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(was)


@torch.inference_mode()
def predict_array(net: nn.Module, x, batch_size: int = 16, input_scale: float = 1.0) -> torch.Tensor:
    """Outputs of ``net`` (eval mode, fp32) for an array of inputs, converted to float per batch."""
    net.eval()
    device = next(net.parameters()).device
    outs = []
    with flush_denormal():
        for i in range(0, len(x), batch_size):
            xb = torch.as_tensor(x[i:i + batch_size]).to(device).float()
            if input_scale != 1.0:
                xb = xb * input_scale
            outs.append(net(xb).float().cpu())
    return torch.cat(outs) if outs else torch.empty(0)


def finite_or_nan(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None

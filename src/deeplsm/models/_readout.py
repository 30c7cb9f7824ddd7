"""Heads that keep *where* the damage is: a factorised spatial readout and a flattened linear head.

The paper's head sits on globally average-pooled features, so the network can only say *how
much* of some pattern it saw, not *where*. The overlap-fraction scores of the paper depend on
where the lesion is (the fraction of one region that is damaged), so these heads read a feature
map that is coarser than the input but not collapsed:

- :class:`ResNetStages` runs the stem and the first ``stage`` residual stages of a MONAI ResNet
  (the same module names, so MedicalNet checkpoints still load) and returns the feature map;
- :class:`SpatialReadoutHead` computes, per output column ``k``,
  ``sum_p w_k(p) * (f(p) . v_k) + b_k``: a spatial mask times a channel read-out, as in
  neural system-identification models (Klindt et al., NeurIPS 2017), with an optional L1
  penalty on the spatial masks;
- :class:`FlatLinearHead` is the unfactorised version: one linear layer on the flattened map.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from deeplsm.models._heads import OUTPUT01, activate_output
from deeplsm.models._tasks import TaskSpec


class ResNetStages(nn.Module):
    """The stem (conv1, bn1, act, max-pool) and residual stages ``layer1 … layer{stage}`` of a
    MONAI ResNet, returning the feature map instead of pooled features.

    The submodules keep MONAI's names (``conv1``, ``layer1.0.conv1``, …), so a MedicalNet or
    torchvision checkpoint loads into it (the stages that were cut are ignored).

    Parameters
    ----------
    resnet : monai.networks.nets.ResNet
    stage : {0, 1, 2, 3, 4}
        The last residual stage kept; 0 keeps only the stem (the first convolution, its
        normalisation and activation, and the max-pool unless the ResNet was built without it).
    """

    def __init__(self, resnet: nn.Module, stage: int) -> None:
        super().__init__()
        if stage not in (0, 1, 2, 3, 4):
            raise ValueError(f"stage must be 0, 1, 2, 3 or 4, got {stage}")
        self.stage = int(stage)
        self.conv1, self.bn1, self.act, self.maxpool = resnet.conv1, resnet.bn1, resnet.act, resnet.maxpool
        self.no_max_pool = bool(resnet.no_max_pool)
        for i in range(1, self.stage + 1):
            setattr(self, f"layer{i}", getattr(resnet, f"layer{i}"))

    @property
    def out_channels(self) -> int:
        if self.stage == 0:
            return int(self.conv1.out_channels)
        last = getattr(self, f"layer{self.stage}")[-1]
        return int(last.bn2.num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn1(self.conv1(x)))
        if not self.no_max_pool:
            x = self.maxpool(x)
        for i in range(1, self.stage + 1):
            x = getattr(self, f"layer{i}")(x)
        return x

    def feature_shape(self, input_shape: Sequence[int], n_input_channels: int = 1) -> tuple[int, ...]:
        """Spatial shape of the feature map for an input grid of ``input_shape``."""
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                out = self(torch.zeros(1, n_input_channels, *input_shape))
        finally:
            self.train(was_training)
        return tuple(int(s) for s in out.shape[2:])


class SpatialReadoutHead(nn.Module):
    """Factorised spatial × channel readout: ``y_k = sum_p w_k(p) (f(p) · v_k) + b_k``.

    Every output column ``k`` has its own spatial mask ``w_k`` over the feature-map positions
    and its own channel weights ``v_k``. It can express "how much of region R is damaged"
    directly (a mask on R and a channel that measures local damage) and is linear in the
    features, so its attributions stay where its mask is.

    Parameters
    ----------
    task : TaskSpec
    in_channels : int
        Channels of the feature map.
    feature_shape : sequence of int
        Spatial shape of the feature map (fixed: the head is tied to one input grid).
    output01 : {'sigmoid', 'linear'}, default='linear'
        Output of ``regression01`` columns: a sigmoid, or the identity (trained with MSE and
        clamped to [0, 1] only when predicting), which can reach exact zeros and is linear.
    l1 : float, default=0.0
        Weight of the sparsity penalty ``mean_k ||w_k||_1 ||v_k||_2`` (see :meth:`penalty`;
        invariant to trading scale between ``w_k`` and ``v_k``).
    positive : bool, default=False
        Non-negative masks parametrised as ``w_k = u_k ** 2``. Adam moves every weight by about
        the learning rate per step, so a signed mask over thousands of positions fills with
        noise; with the square, a weight near zero barely moves (its gradient is ``2 u`` times
        smaller) while a useful one grows steadily, so the mask stays sparse. The sign of the
        response is carried by ``v_k``.

    Notes
    -----
    The masks start uniform (``1 / n_positions``, i.e. global average pooling) and the channel
    weights small and random, so training starts from the pooled model and learns where to look.
    """

    def __init__(self, task: TaskSpec, in_channels: int, feature_shape: Sequence[int],
                 output01: str = "linear", l1: float = 0.0, positive: bool = False) -> None:
        super().__init__()
        if output01 not in OUTPUT01:
            raise ValueError(f"output01 must be one of {OUTPUT01}, got {output01!r}")
        self.task, self.output01, self.l1, self.positive = task, output01, float(l1), bool(positive)
        self.feature_shape = tuple(int(s) for s in feature_shape)
        n_pos = 1
        for s in self.feature_shape:
            n_pos *= s
        t = task.total
        # Uniform masks summing to 1 (global average pooling) either way.
        self.spatial = nn.Parameter(torch.full((t, n_pos), n_pos ** -0.5 if positive else 1.0 / n_pos))
        self.channel = nn.Parameter(torch.randn(t, in_channels) / in_channels**0.5)
        self.bias = nn.Parameter(torch.zeros(t))
        self.register_buffer("scale", torch.ones(len(task)))

    def forward(self, features: torch.Tensor, activate: bool = True) -> torch.Tensor:
        """Outputs (N, task.total); ``activate=False`` returns the pre-activation values."""
        f = features.flatten(2)  # (N, C, P)
        g = torch.einsum("ncp,tc->ntp", f, self.channel)
        z = (g * self.mask()).sum(-1) + self.bias
        return _activate_columns(self, z) if activate else z

    def penalty(self) -> torch.Tensor:
        """``l1 * mean_k ||w_k||_1 ||v_k||_2`` (zero when ``l1`` is 0)."""
        if not self.l1:
            return self.spatial.new_zeros(())
        return self.l1 * (self.mask().abs().sum(1) * self.channel.norm(dim=1)).mean()

    def mask(self) -> torch.Tensor:
        """The masks ``w_k``, shape (task.total, n_positions)."""
        return self.spatial * self.spatial if self.positive else self.spatial

    def spatial_masks(self) -> torch.Tensor:
        """The masks ``w_k`` on the feature grid, shape (task.total, *feature_shape)."""
        return self.mask().detach().reshape(-1, *self.feature_shape)


class FlatLinearHead(nn.Module):
    """One linear layer from the flattened feature map to every output column.

    Parameters
    ----------
    task : TaskSpec
    in_channels : int
    feature_shape : sequence of int
    output01 : {'sigmoid', 'linear'}, default='linear'
    """

    def __init__(self, task: TaskSpec, in_channels: int, feature_shape: Sequence[int],
                 output01: str = "linear") -> None:
        super().__init__()
        if output01 not in OUTPUT01:
            raise ValueError(f"output01 must be one of {OUTPUT01}, got {output01!r}")
        self.task, self.output01 = task, output01
        self.feature_shape = tuple(int(s) for s in feature_shape)
        n_in = in_channels
        for s in self.feature_shape:
            n_in *= s
        self.linear = nn.Linear(n_in, task.total)
        self.register_buffer("scale", torch.ones(len(task)))

    def forward(self, features: torch.Tensor, activate: bool = True) -> torch.Tensor:
        z = self.linear(features.flatten(1))
        return _activate_columns(self, z) if activate else z

    def penalty(self) -> torch.Tensor:
        return self.linear.weight.new_zeros(())


def _activate_columns(head: nn.Module, z: torch.Tensor) -> torch.Tensor:
    outs = []
    cols = head.task.columns
    for i, spec in enumerate(head.task):
        zi = activate_output(spec.kind, z[:, cols[spec.name]], head.output01)
        if spec.kind == "regression":
            zi = zi * head.scale[i]
        outs.append(zi)
    return torch.cat(outs, dim=1)

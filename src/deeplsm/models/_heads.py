"""Output heads: one small MLP branch per output, concatenated into one tensor."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from deeplsm.models._tasks import TaskSpec

#: Output of ``regression01`` columns: the paper's sigmoid, or the identity ("linear": trained
#: with MSE on the raw value and clamped to [0, 1] only when predicting).
OUTPUT01 = ("sigmoid", "linear")


class MultiOutputHead(nn.Module):
    """One branch per output: Linear(in, hidden) + ReLU → Linear(hidden, width) + activation.

    This is the paper's head (a 512-unit ReLU layer, then one linear layer per score), branched so
    that each output has its own weights.

    Parameters
    ----------
    task : TaskSpec
        The outputs, in column order.
    in_features : int, default=512
        Width of the backbone's pooled features.
    hidden : int, default=512
        Width of each branch's hidden layer.
    output01 : {'sigmoid', 'linear'}, default='sigmoid'
        Output of ``regression01`` columns (see :data:`OUTPUT01`).

    Notes
    -----
    ``regression`` outputs are multiplied by a per-output ``scale`` buffer (default 1) after the
    leaky ReLU, so that a target such as age in years can be learned on a unit scale; the trainer
    sets it from the training targets and it is saved with the weights.
    """

    def __init__(self, task: TaskSpec, in_features: int = 512, hidden: int = 512,
                 output01: str = "sigmoid") -> None:
        super().__init__()
        if output01 not in OUTPUT01:
            raise ValueError(f"output01 must be one of {OUTPUT01}, got {output01!r}")
        self.task, self.output01 = task, output01
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, o.width))
            for o in task
        )
        self.register_buffer("scale", torch.ones(len(task)))

    def forward(self, features: torch.Tensor, activate: bool = True) -> torch.Tensor:
        """Concatenated outputs, shape (N, task.total).

        With ``activate=False`` the raw pre-activation values (logits) are returned, which the
        losses use for numerical stability (BCE/CE with logits).
        """
        outs = []
        for i, (spec, branch) in enumerate(zip(self.task, self.branches)):
            z = branch(features)
            if activate:
                z = activate_output(spec.kind, z, self.output01)
                if spec.kind == "regression":
                    z = z * self.scale[i]
            outs.append(z)
        return torch.cat(outs, dim=1)

    def penalty(self) -> torch.Tensor:
        """Extra training loss of the head (none for this head)."""
        return self.scale.new_zeros(())


def activate_output(kind: str, z: torch.Tensor, output01: str = "sigmoid") -> torch.Tensor:
    """The output activation of one output's columns ``z`` (pre-activation values)."""
    if kind == "regression01" and output01 == "linear":
        return z
    if kind in ("regression01", "binary"):
        return torch.sigmoid(z)
    if kind == "regression":
        return F.leaky_relu(z)
    return torch.softmax(z, dim=1)

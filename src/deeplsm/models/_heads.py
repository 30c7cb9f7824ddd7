"""Output heads: one small MLP branch per output, concatenated into one tensor."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from deeplsm.models._tasks import TaskSpec


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

    Notes
    -----
    ``regression`` outputs are multiplied by a per-output ``scale`` buffer (default 1) after the
    leaky ReLU, so that a target such as age in years can be learned on a unit scale; the trainer
    sets it from the training targets and it is saved with the weights.
    """

    def __init__(self, task: TaskSpec, in_features: int = 512, hidden: int = 512) -> None:
        super().__init__()
        self.task = task
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
                z = _activate(spec.kind, z)
                if spec.kind == "regression":
                    z = z * self.scale[i]
            outs.append(z)
        return torch.cat(outs, dim=1)


def _activate(kind: str, z: torch.Tensor) -> torch.Tensor:
    if kind in ("regression01", "binary"):
        return torch.sigmoid(z)
    if kind == "regression":
        return F.leaky_relu(z)
    return torch.softmax(z, dim=1)

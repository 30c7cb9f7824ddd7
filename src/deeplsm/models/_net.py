"""A backbone plus a multi-output head, returning one (N, total) tensor."""

from __future__ import annotations

import torch
from torch import nn

from deeplsm.models._heads import MultiOutputHead
from deeplsm.models._tasks import TaskSpec


class MultiOutputNet(nn.Module):
    """``backbone`` (images → (N, 512) features) followed by a :class:`MultiOutputHead`.

    The forward pass returns a single (N, ``task.total``) tensor with the branches concatenated,
    so that captum's ``target=`` picks an output column with no wrapper; ``task.columns`` maps
    output names to columns.

    Parameters
    ----------
    backbone : torch.nn.Module
        Maps (N, C, ...) inputs to (N, in_features) features (global average pooling, so any
        grid size works).
    task : TaskSpec
        Outputs in column order.
    in_features : int, default=512
    """

    def __init__(self, backbone: nn.Module, task: TaskSpec, in_features: int = 512) -> None:
        super().__init__()
        self.backbone = backbone
        self.task = task
        self.head = MultiOutputHead(task, in_features=in_features)

    @property
    def columns(self) -> dict[str, list[int]]:
        return self.task.columns

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-activation outputs, shape (N, total); used by the losses."""
        return self.head(self.backbone(x), activate=False)

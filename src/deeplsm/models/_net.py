"""A backbone plus a multi-output head, returning one (N, total) tensor."""

from __future__ import annotations

import torch
from torch import nn

from deeplsm.models._heads import MultiOutputHead
from deeplsm.models._tasks import TaskSpec


class MultiOutputNet(nn.Module):
    """``backbone`` (images → features) followed by a head (by default a :class:`MultiOutputHead`).

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
    head : torch.nn.Module or None, default=None
        The head; default ``MultiOutputHead(task, in_features)``. Any head takes the backbone's
        output and ``activate=``, and has a ``scale`` buffer and a ``penalty()`` method (see
        :mod:`deeplsm.models._readout` for heads that read a feature map).
    subtract_empty : bool, default=False
        Feed the head ``backbone(x) - backbone(empty)``, the features relative to those of an
        all-zero input (computed in the same pass, so batch normalisation treats both alike).
        An empty lesion map then gives exactly the head's bias, and positions without damage
        give zero features: without this, the constant background features of every position
        of a spatial readout act like thousands of copies of the bias, and Adam's per-weight
        steps on them swamp the few positions that matter.
    """

    def __init__(self, backbone: nn.Module, task: TaskSpec, in_features: int = 512,
                 head: nn.Module | None = None, subtract_empty: bool = False) -> None:
        super().__init__()
        self.backbone = backbone
        self.task = task
        self.head = MultiOutputHead(task, in_features=in_features) if head is None else head
        self.subtract_empty = bool(subtract_empty)

    @property
    def columns(self) -> dict[str, list[int]]:
        return self.task.columns

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """What the head reads: the backbone's output (minus an empty input's, see above)."""
        if not self.subtract_empty:
            return self.backbone(x)
        f = self.backbone(torch.cat([x, x.new_zeros((1, *x.shape[1:]))]))
        return f[:-1] - f[-1:]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-activation outputs, shape (N, total); used by the losses."""
        return self.head(self.features(x), activate=False)

"""Networks: plain torch modules built on MONAI (no Lightning here).

- :class:`TaskSpec` / :class:`OutputSpec`: the ordered outputs and their kinds.
- :class:`MultiOutputNet`: backbone + one head branch per output; forward returns (N, total).
- :func:`build_net`, :func:`build_resnet10_3d`, :func:`build_resnet18_2d` and the local-weight
  loaders.
"""

from deeplsm.models._heads import MultiOutputHead
from deeplsm.models._net import MultiOutputNet
from deeplsm.models._resnet import (
    build_net,
    build_resnet10_3d,
    build_resnet18_2d,
    load_medicalnet_weights,
    load_torchvision_resnet18_weights,
)
from deeplsm.models._tasks import KINDS, REGRESSION_KINDS, OutputSpec, TaskSpec

__all__ = [
    "KINDS",
    "REGRESSION_KINDS",
    "MultiOutputHead",
    "MultiOutputNet",
    "OutputSpec",
    "TaskSpec",
    "build_net",
    "build_resnet10_3d",
    "build_resnet18_2d",
    "load_medicalnet_weights",
    "load_torchvision_resnet18_weights",
]

"""Networks: plain torch modules built on MONAI (no Lightning here).

- :class:`TaskSpec` / :class:`OutputSpec`: the ordered outputs and their kinds.
- :class:`MultiOutputNet`: backbone + one head branch per output; forward returns (N, total).
- :class:`SpatialReadoutHead`, :class:`FlatLinearHead`, :class:`ResNetStages`: heads that read
  a feature map (they know where the damage is), on the first stages of the ResNet.
- :func:`build_net`, :func:`build_resnet10_3d`, :func:`build_resnet18_2d` and the local-weight
  loaders.
"""

from deeplsm.models._heads import OUTPUT01, MultiOutputHead, activate_output
from deeplsm.models._net import MultiOutputNet
from deeplsm.models._readout import FlatLinearHead, ResNetStages, SpatialReadoutHead
from deeplsm.models._resnet import (
    HEADS,
    build_net,
    build_resnet10_3d,
    build_resnet18_2d,
    load_medicalnet_weights,
    load_torchvision_resnet18_weights,
)
from deeplsm.models._tasks import KINDS, REGRESSION_KINDS, OutputSpec, TaskSpec

__all__ = [
    "HEADS",
    "KINDS",
    "OUTPUT01",
    "REGRESSION_KINDS",
    "FlatLinearHead",
    "MultiOutputHead",
    "MultiOutputNet",
    "OutputSpec",
    "ResNetStages",
    "SpatialReadoutHead",
    "TaskSpec",
    "activate_output",
    "build_net",
    "build_resnet10_3d",
    "build_resnet18_2d",
    "load_medicalnet_weights",
    "load_torchvision_resnet18_weights",
]

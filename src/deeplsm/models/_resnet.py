"""ResNet backbones from MONAI (no torchvision) and loaders for local pretrained weights."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from deeplsm.exceptions import DeepLSMError
from deeplsm.models._heads import OUTPUT01, MultiOutputHead
from deeplsm.models._net import MultiOutputNet
from deeplsm.models._readout import FlatLinearHead, ResNetStages, SpatialReadoutHead
from deeplsm.models._tasks import TaskSpec

FEATURES = 512


def build_resnet10_3d(n_input_channels: int = 1, weights: str | os.PathLike | None = None,
                      no_max_pool: bool = False) -> nn.Module:
    """MedicalNet's 3D ResNet10 layout as a feature extractor: (N, C, X, Y, Z) → (N, 512).

    ``conv1_t_stride=2`` is MedicalNet's first-layer stride; it is 7–11× faster on CPU than
    MONAI's default of 1 and keeps the weight shapes, so MedicalNet checkpoints load.

    Parameters
    ----------
    n_input_channels : int, default=1
    weights : path or None, default=None
        A local MedicalNet checkpoint (``resnet_10.pth`` or ``resnet_10_23dataset.pth``). Nothing
        is ever downloaded.
    no_max_pool : bool, default=False
        Drop the stem's stride-2 max-pool (less down-sampling; it has no weights, so the
        checkpoints are unchanged).
    """
    from monai.networks.nets import resnet10

    net = resnet10(
        spatial_dims=3,
        n_input_channels=n_input_channels,
        conv1_t_size=7,
        conv1_t_stride=2,
        no_max_pool=no_max_pool,
        shortcut_type="B",
        bias_downsample=False,
        feed_forward=False,
    )
    if weights is not None:
        load_medicalnet_weights(net, weights)
    return net


def build_resnet18_2d(n_input_channels: int = 3, weights: str | os.PathLike | None = None) -> nn.Module:
    """A 2D ResNet18 feature extractor, (N, 3, H, W) → (N, 512), with torchvision's layout.

    ``bias_downsample=False`` matches torchvision's shortcut convolutions, so an ImageNet
    ``resnet18`` state dict loads with :func:`load_torchvision_resnet18_weights`.
    """
    from monai.networks.nets import resnet18

    net = resnet18(
        spatial_dims=2,
        n_input_channels=n_input_channels,
        conv1_t_size=7,
        conv1_t_stride=2,
        shortcut_type="B",
        bias_downsample=False,
        feed_forward=False,
    )
    if weights is not None:
        load_torchvision_resnet18_weights(net, weights)
    return net


#: Heads: the paper's MLP on globally pooled features, or a head on the feature map of an
#: earlier stage (see :mod:`deeplsm.models._readout`).
HEADS = ("mlp", "spatial", "flat")


def build_net(task: TaskSpec, *, dims: int = 3, n_input_channels: int | None = None,
              weights: str | os.PathLike | None = None, head: str = "mlp", head_stage: int = 4,
              output01: str = "sigmoid", readout_l1: float = 0.0, readout_positive: bool = False,
              no_max_pool: bool = False, subtract_empty: bool = False,
              input_shape: Sequence[int] | None = None) -> MultiOutputNet:
    """A :class:`MultiOutputNet` on the 3D ResNet10 (``dims=3``) or 2D ResNet18 (``dims=2``).

    Parameters
    ----------
    task : TaskSpec
    dims : {2, 3}, default=3
    n_input_channels : int or None
        1 for 3D, 3 for 2D when None.
    weights : path or None
        Local pretrained backbone weights.
    head : {'mlp', 'spatial', 'flat'}, default='mlp'
        ``'mlp'``: the paper's head on globally average-pooled layer4 features.
        ``'spatial'``: :class:`~deeplsm.models._readout.SpatialReadoutHead` on the feature map
        after stage ``head_stage``; ``'flat'``: one linear layer on that map, flattened. Both
        need ``input_shape``; the stages after ``head_stage`` are not built.
    head_stage : {0, 1, 2, 3, 4}, default=4
        The residual stage whose feature map the spatial or flat head reads (0: the stem).
    output01 : {'sigmoid', 'linear'}, default='sigmoid'
        Output of ``regression01`` columns: sigmoid, or the identity (clamped to [0, 1] only
        when predicting).
    readout_l1 : float, default=0.0
        Sparsity penalty on the spatial readout's masks.
    readout_positive : bool, default=False
        Non-negative spatial masks, parametrised as squares (see ``SpatialReadoutHead``).
    no_max_pool : bool, default=False
        Drop the stem's max-pool (3D only): every later feature map is twice as fine.
    subtract_empty : bool, default=False
        The head reads features relative to those of an all-zero input (see
        :class:`MultiOutputNet`).
    input_shape : sequence of int or None
        Spatial shape of the inputs (the analysis grid); required by the spatial and flat heads.

    Examples
    --------
    >>> net = build_net(TaskSpec(["a", "b"]), dims=3)
    >>> net(torch.zeros(2, 1, 16, 20, 16)).shape
    torch.Size([2, 2])
    >>> net = build_net(TaskSpec(["a"]), head="spatial", head_stage=2, input_shape=(16, 20, 16))
    >>> net.head.feature_shape
    (2, 3, 2)
    """
    if dims == 3:
        channels = n_input_channels or 1
        backbone = build_resnet10_3d(channels, weights, no_max_pool=no_max_pool)
    elif dims == 2:
        channels = n_input_channels or 3
        backbone = build_resnet18_2d(channels, weights)
    else:
        raise DeepLSMError(f"dims must be 2 or 3, got {dims}")
    if head not in HEADS:
        raise DeepLSMError(f"unknown head {head!r}; expected one of {', '.join(HEADS)}")
    if output01 not in OUTPUT01:
        raise DeepLSMError(f"unknown output01 {output01!r}; expected one of {', '.join(OUTPUT01)}")
    if head == "mlp":
        return MultiOutputNet(backbone, task, in_features=FEATURES, subtract_empty=subtract_empty,
                              head=MultiOutputHead(task, FEATURES, output01=output01))
    if head_stage not in (0, 1, 2, 3, 4):
        raise DeepLSMError(f"head_stage must be 0, 1, 2, 3 or 4, got {head_stage!r}")
    if input_shape is None or len(input_shape) != dims:
        raise DeepLSMError(f"the {head!r} head needs the {dims}D input shape, got {input_shape!r}")
    stages = ResNetStages(backbone, head_stage)
    shape = stages.feature_shape(input_shape, channels)
    if head == "spatial":
        h = SpatialReadoutHead(task, stages.out_channels, shape, output01=output01, l1=readout_l1,
                               positive=readout_positive)
    else:
        h = FlatLinearHead(task, stages.out_channels, shape, output01=output01)
    return MultiOutputNet(stages, task, head=h, subtract_empty=subtract_empty)


def _read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    p = Path(path)
    if not p.is_file():
        raise DeepLSMError(f"weights file does not exist: {p}")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a bad file
        raise DeepLSMError(f"{p}: cannot read weights ({type(err).__name__}: {err})") from None
    # MedicalNet saves {"state_dict": ...}; Lightning saves {"state_dict": ...} too.
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise DeepLSMError(f"{p}: expected a state dict, got {type(obj).__name__}")
    out = {}
    for k, v in obj.items():
        # MedicalNet was trained with DataParallel, so its keys start with "module.".
        k = k[len("module."):] if k.startswith("module.") else k
        out[k] = v
    return out


def _load_backbone(net: nn.Module, state: dict[str, torch.Tensor], path) -> list[str]:
    own = net.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    wrong = [k for k in state if k in own and own[k].shape != state[k].shape]
    if wrong:
        raise DeepLSMError(f"{path}: shape mismatch for {', '.join(wrong[:3])}; not this architecture")
    convs = [k for k in own if k.endswith(".weight") and "conv" in k]
    if not any(k in usable for k in convs):
        raise DeepLSMError(f"{path}: no matching ResNet weights found (keys like {next(iter(state), '')!r})")
    net.load_state_dict(usable, strict=False)
    return sorted(k for k in own if k not in usable and not k.endswith("num_batches_tracked"))


def load_medicalnet_weights(net: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load a local MedicalNet ResNet10 checkpoint into a :func:`build_resnet10_3d` backbone.

    The ``state_dict`` entry is unwrapped and ``module.`` prefixes are stripped; the
    segmentation head (``conv_seg``) is ignored. Raises :class:`DeepLSMError` if no backbone
    weight matches.
    """
    _load_backbone(net, _read_state_dict(path), path)
    return net


def load_torchvision_resnet18_weights(net: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load a local torchvision ImageNet ``resnet18`` state dict into :func:`build_resnet18_2d`.

    torchvision's names (``conv1``, ``bn1``, ``layerN.M.convK``, ``layerN.M.downsample.{0,1}``)
    are MONAI's names too; only the classifier ``fc.*`` is dropped.
    """
    state = {k: v for k, v in _read_state_dict(path).items() if not k.startswith("fc.")}
    _load_backbone(net, state, path)
    return net

import numpy as np
import pytest
import torch
from _tiny_nets import SHAPE, TinyNet


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def tiny_net():
    torch.manual_seed(0)
    return TinyNet()


@pytest.fixture
def sparse_volumes(rng):
    x = (rng.random((3, 1, *SHAPE)) < 0.04).astype(np.float32)
    x[2] = 0  # one empty subject
    x[0, 0, 6, 7, 8] = 1  # a voxel in the clipped corner
    return torch.from_numpy(x)

"""Tiny fixed-architecture models for attribution tests."""

import numpy as np
import torch

SHAPE = (7, 8, 9)  # distinct sizes so swapped axes cannot pass unnoticed


class TinyNet(torch.nn.Module):
    """Conv3d -> ReLU -> pool -> linear, three outputs."""

    def __init__(self, n_out: int = 3):
        super().__init__()
        self.conv = torch.nn.Conv3d(1, 2, 3, padding=1)
        self.pool = torch.nn.AdaptiveAvgPool3d(2)
        self.fc = torch.nn.Linear(16, n_out)

    def forward(self, x):
        return self.fc(self.pool(torch.relu(self.conv(x))).flatten(1))


class LinearNet(torch.nn.Module):
    """f_t(x) = sum(W_t * x): occlusion values can be worked out by hand."""

    def __init__(self, weights: np.ndarray):
        super().__init__()
        self.w = torch.nn.Parameter(torch.as_tensor(weights, dtype=torch.float32))

    def forward(self, x):
        return torch.einsum("ncxyz,txyz->nt", x, self.w)

"""Tiny in-memory cohorts with a learnable score (the lesioned fraction of a fixed cube)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deeplsm.cohort import LesionCohort

SHAPE = (16, 20, 16)


def make_cohort(n: int = 24, shape=SHAPE, seed: int = 0) -> tuple[LesionCohort, pd.DataFrame]:
    """Random blobs; score_a/score_b = lesioned fraction of two fixed cubes (in [0, 1]),
    plus a binary and a 3-class label derived from them."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), axis=-1)
    data = np.zeros((n, *shape), dtype=np.uint8)
    for i in range(n):
        for _ in range(rng.integers(1, 4)):
            c = rng.uniform(0, np.array(shape))
            r = rng.uniform(2, 5)
            data[i] |= (np.linalg.norm(grid - c, axis=-1) < r).astype(np.uint8)
    ids = [f"sub-{i:03d}" for i in range(n)]
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    cube_a = data[:, 4:10, 5:12, 4:10].reshape(n, -1).mean(1)
    cube_b = data[:, 8:14, 10:18, 6:12].reshape(n, -1).mean(1)
    scores = pd.DataFrame(
        {"score_a": cube_a, "score_b": cube_b, "flag": (cube_a > np.median(cube_a)).astype(float),
         "grp": np.digitize(cube_b, np.quantile(cube_b, [1 / 3, 2 / 3])).astype(float)},
        index=pd.Index(ids, name="subject"),
    )
    return LesionCohort(ids, data, affine), scores


@pytest.fixture(scope="session")
def tiny():
    return make_cohort()


@pytest.fixture(autouse=True)
def _no_progress(monkeypatch):
    monkeypatch.setenv("CI", "1")


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    # On the shared 2-core machine, two OpenMP threads competing with other jobs ran ~3x slower
    # than one thread; these tiny networks gain nothing from a second thread anyway.
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

"""Fixtures for the classical baselines: tiny seeded cohorts on a (7, 8, 9) grid."""

from pathlib import Path

import numpy as np
import pytest

from deeplsm.cohort import LesionCohort

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
LESYMAP = SHARED / "data" / "lesymap-lesions"
SHAPE = (7, 8, 9)


@pytest.fixture
def rng():
    return np.random.default_rng(42)


def make_cohort(rng, n=40, shape=SHAPE, p=0.35, blobs=True):
    """Random binary maps; with ``blobs``, each subject also gets a random box so neighbours
    correlate (needed for cluster tests)."""
    data = (rng.random((n, *shape)) < p).astype(np.uint8)
    if blobs:
        for i in range(n):
            lo = rng.integers(0, np.array(shape) - 3)
            data[i, lo[0]:lo[0] + 3, lo[1]:lo[1] + 3, lo[2]:lo[2] + 3] = 1
    return LesionCohort([f"sub-{i:03d}" for i in range(n)], data, np.eye(4))


@pytest.fixture
def cohort(rng):
    return make_cohort(rng)


@pytest.fixture(name="make_cohort")
def make_cohort_fixture():
    return make_cohort


@pytest.fixture
def X(rng):
    """(40, 300) binary array with ties in nothing; some voxels share patterns."""
    X = (rng.random((40, 300)) < 0.3).astype(np.uint8)
    X[:, 250:] = X[:, :50]  # duplicated patterns for patch compression
    return X

import numpy as np
import pytest

from deeplsm.classical import compress_patches, resolve_min_subjects, voxel_mask
from deeplsm.exceptions import DeepLSMError


def test_min_subjects_count_and_fraction():
    assert resolve_min_subjects(10, 131) == 10
    assert resolve_min_subjects(0.1, 131) == 14  # ceil(13.1)
    assert resolve_min_subjects(0.1, 130) == 13
    assert resolve_min_subjects(5.0, 20) == 5
    for bad in (0, -1, 0.0, 2.5, "10", True, float("nan")):
        with pytest.raises(DeepLSMError, match="min_subjects"):
            resolve_min_subjects(bad, 20)


def test_mask_lower_and_upper_bound():
    n = 20
    counts = np.array([0, 2, 3, 10, 17, 18, 20])
    data = np.zeros((n, counts.size), np.uint8)
    for j, c in enumerate(counts):
        data[:c, j] = 1
    mask, m = voxel_mask(data, 3)
    assert m == 3
    # lesioned in >= 3 and spared in >= 3 subjects
    np.testing.assert_array_equal(mask, [False, False, True, True, True, False, False])


def test_mask_none_pass_message():
    data = np.zeros((12, 5), np.uint8)
    data[:2, 0] = 1
    with pytest.raises(DeepLSMError, match=r"at least 3 .* of the 12 subjects.*most-lesioned voxel has 2"):
        voxel_mask(data, 3)


def test_compress_patches_round_trip(X):
    p = compress_patches(X)
    np.testing.assert_array_equal(p.patterns[:, p.inverse], X)
    assert p.patterns.shape[1] < X.shape[1]
    assert p.counts.sum() == X.shape[1]
    # the duplicated columns (250..299 copy 0..49) share patterns
    np.testing.assert_array_equal(p.inverse[250:], p.inverse[:50])


def test_compress_patches_hash_collision_falls_back_to_exact_sort(monkeypatch):
    """With a degenerate hash (all multipliers 1), keys that are word permutations collide."""
    import deeplsm.classical._mask as mask_mod

    class OnesRng:
        def integers(self, low, high, size, dtype):
            return np.ones(size, dtype=dtype)

    monkeypatch.setattr(mask_mod.np.random, "default_rng", lambda seed=None: OnesRng())
    a = np.r_[np.ones(64), np.zeros(64)].astype(np.uint8)
    b = np.r_[np.zeros(64), np.ones(64)].astype(np.uint8)
    X = np.column_stack([a, b, a, b])
    p = compress_patches(X)
    assert p.patterns.shape[1] == 2
    np.testing.assert_array_equal(p.patterns[:, p.inverse], X)
    np.testing.assert_array_equal(np.sort(p.counts), [2, 2])

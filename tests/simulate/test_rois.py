"""ROI selection rules, the score formula against a hand-made cohort, and determinism."""

from __future__ import annotations

import numpy as np
import pytest

from deeplsm.cohort import LesionCohort
from deeplsm.exceptions import DeepLSMError
from deeplsm.simulate import overlap_fractions, roi_label_image, select_roi_centres, simulate


@pytest.fixture(scope="module")
def cohort() -> LesionCohort:
    """60 subjects with random blobs on a (20, 22, 24) grid, plus a dense common region."""
    rng = np.random.default_rng(0)
    data = np.zeros((60, 20, 22, 24), np.uint8)
    for i in range(60):
        c = rng.integers([4, 4, 4], [16, 18, 20])
        r = rng.integers(3, 7)
        data[i, max(0, c[0] - r):c[0] + r, max(0, c[1] - r):c[1] + r, max(0, c[2] - r):c[2] + r] = 1
    aff = np.diag([2.0, 2.0, 2.0, 1.0])
    aff[:3, 3] = [-20, -22, -24]
    return LesionCohort([f"s{i}" for i in range(60)], data, aff)


@pytest.mark.parametrize("size", [3, 4])
def test_every_roi_voxel_is_common_and_rois_do_not_overlap(cohort, size):
    freq = cohort.frequency_map()
    for seed in range(5):
        centres = select_roi_centres(freq, n_rois=3, roi_size=size, min_patients=10, random_state=seed)
        labels = roi_label_image(cohort.shape, centres, size)
        for k in (1, 2, 3):
            assert (labels == k).sum() == size**3  # whole cube, no overlap overwrote it
            assert freq[labels == k].min() >= 10


def test_cube_geometry():
    labels = roi_label_image((10, 10, 10), [(5, 5, 5)], 4)
    idx = np.argwhere(labels == 1)
    assert idx.min(0).tolist() == [3, 3, 3] and idx.max(0).tolist() == [6, 6, 6]


def test_score_formula_hand_made():
    """Two subjects, one 2x2x2 ROI: subject 0 covers 3 of its 8 voxels, subject 1 none."""
    data = np.zeros((2, 6, 6, 6), np.uint8)
    labels = np.zeros((6, 6, 6), np.int16)
    labels[1:3, 1:3, 1:3] = 1
    data[0, 1, 1, 1] = data[0, 2, 2, 2] = data[0, 1, 2, 1] = 1
    data[0, 4, 4, 4] = 1  # outside the ROI
    data[1, 5, 5, 5] = 1
    np.testing.assert_allclose(overlap_fractions(data, labels), [[3 / 8], [0.0]])


def test_simulate_scores_equal_fractions_by_default(cohort):
    sim = simulate(cohort, n_rois=2, roi_size=3, min_patients=10, random_state=1)
    for k in range(2):
        mask = sim.labels == k + 1
        expected = cohort.data[:, mask].sum(axis=1) / mask.sum()
        np.testing.assert_allclose(sim.scores[:, k], expected)
    assert sim.score_names == ["score_1", "score_2"]
    # Odd cube side: the geometric centre is the centre voxel, mapped through the affine.
    c = np.asarray(sim.centres_vox[0])
    np.testing.assert_allclose(sim.centres_mm[0], c * 2.0 + [-20, -22, -24])


def test_determinism_byte_identical(cohort):
    a = simulate(cohort, roi_size=3, noise=0.2, random_state=7)
    b = simulate(cohort, roi_size=3, noise=0.2, random_state=7)
    assert a.scores.tobytes() == b.scores.tobytes()
    assert a.labels.tobytes() == b.labels.tobytes()
    c = simulate(cohort, roi_size=3, noise=0.2, random_state=8)
    assert c.centres_vox != a.centres_vox


def test_weights_noise_and_volume_confound(cohort):
    w = np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    sim = simulate(cohort, roi_size=3, weights=w, random_state=2)
    np.testing.assert_allclose(sim.scores[:, 0], sim.fractions[:, :2].mean(axis=1))
    np.testing.assert_allclose(sim.scores[:, 1], sim.fractions[:, 2])
    noisy = simulate(cohort, roi_size=3, noise=0.5, clip=False, random_state=2)
    resid = noisy.scores - noisy.fractions
    assert 0.3 < (resid.std(axis=0) / noisy.fractions.std(axis=0)).mean() < 0.7
    conf = simulate(cohort, roi_size=3, volume_weight=1.0, clip=False, random_state=2)
    vol = cohort.lesion_volumes_ml()
    assert np.corrcoef(conf.scores[:, 0] - conf.fractions[:, 0], vol)[0, 1] > 0.8


def test_no_valid_centre_is_an_error(cohort):
    with pytest.raises(DeepLSMError, match=r"only \d of 3 ROIs fit"):
        simulate(cohort, roi_size=3, min_patients=1000)
    with pytest.raises(DeepLSMError, match=r"only \d+ of 40 ROIs fit"):
        simulate(cohort, n_rois=40, roi_size=6, min_patients=5)


def test_roi_size_mm(cohort):
    sim = simulate(cohort, roi_size_mm=6.0, min_patients=5, random_state=0)
    assert sim.params["roi_size"] == 3

"""The minimum-overlap view of the report: the tested-voxel outline and the voxels-per-overlap curve."""

from __future__ import annotations

import nibabel as nib
import numpy as np

from deeplsm.cohort import mni_brain_grid
from deeplsm.report._figures import frequency_figure, voxels_tested_per_overlap


def test_voxels_per_overlap_against_a_direct_count():
    rng = np.random.default_rng(0)
    n = 31
    counts = rng.integers(0, n + 1, size=(9, 10, 11))
    ks, tested = voxels_tested_per_overlap(counts, n)
    assert list(ks) == list(range(1, n // 2 + 1))
    for k, t in zip(ks, tested):
        assert t == sum(1 for c in counts.ravel() if c >= k and n - c >= k)


def test_frequency_figure_outlines_the_tested_voxels_with_or_without_rois():
    grid = mni_brain_grid(8.0)
    rng = np.random.default_rng(1)
    freq = (rng.random(grid.shape) < 0.3) * rng.integers(1, 20, grid.shape)
    freq_img = nib.Nifti1Image(freq.astype(np.float32), grid.affine)
    tested = np.zeros(grid.shape, np.uint8)
    tested[5:12, 6:14, 5:12] = 1
    labels = np.zeros(grid.shape, np.int16)
    labels[8:10, 9:11, 8:10] = 1
    labels_img = nib.Nifti1Image(labels, grid.affine)
    truths = {"score_1": [1]}  # each score's truth labels
    # same title and ROIs; only the outline of the tested voxels differs
    plain = frequency_figure(freq_img, labels_img, truths,
                             tested_img=nib.Nifti1Image(np.zeros_like(tested), grid.affine))
    outlined = frequency_figure(freq_img, labels_img, truths,
                                tested_img=nib.Nifti1Image(tested, grid.affine))
    assert plain[:8] == outlined[:8] == b"\x89PNG\r\n\x1a\n" and plain != outlined
    # without ground truth (a clinical cohort) the figure is drawn too, at slices nilearn picks
    bare = frequency_figure(freq_img, None, None, tested_img=nib.Nifti1Image(tested, grid.affine))
    assert bare[:4] == b"\x89PNG"

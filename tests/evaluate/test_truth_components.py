"""Distances to a truth of several regions: to the NEAREST region's centre, zone by zone, never to
the union's centroid between the regions; a single region keeps its old values exactly; maps
scored against the union of several labels."""

from __future__ import annotations

import math

import nibabel as nib
import numpy as np
import pytest

from deeplsm.evaluate import (
    DEFINITIONS,
    METRICS_VERSION,
    evaluate_map,
    evaluate_maps,
    label_list,
    truth_centres,
)
from deeplsm.exceptions import DeepLSMError

SHAPE = (20, 6, 5)
#: 2 mm along x, 3 mm along y, 4 mm along z, shifted: distances must go through the affine.
AFFINE = np.array([[2.0, 0, 0, 10], [0, 3.0, 0, -20], [0, 0, 4.0, 5], [0, 0, 0, 1]])


def _img(data) -> nib.Nifti1Image:
    return nib.Nifti1Image(np.asarray(data, dtype=np.float32), AFFINE)


@pytest.fixture
def two_blobs() -> np.ndarray:
    """Blob A: x 2-3, y 1-2, z 2 (centre voxel (2.5, 1.5, 2)); blob B: x 14-15, y 3-4, z 2
    (centre (14.5, 3.5, 2)). The union's centroid, (8.5, 2.5, 2), lies in neither."""
    t = np.zeros(SHAPE, np.uint8)
    t[2:4, 1:3, 2] = 1
    t[14:16, 3:5, 2] = 1
    return t


def _mm(dx_vox: float, dy_vox: float = 0.0, dz_vox: float = 0.0) -> float:
    return math.sqrt((2 * dx_vox) ** 2 + (3 * dy_vox) ** 2 + (4 * dz_vox) ** 2)


def _eval(values, truth) -> dict:
    return evaluate_map(_img(values), _img(truth), "none")


def test_components_and_their_centres(two_blobs):
    c = truth_centres(two_blobs, AFFINE)
    # hand: voxel centre -> mm through the affine (equal sizes: scan order)
    assert c.tolist() == [[2 * 2.5 + 10, 3 * 1.5 - 20, 4 * 2 + 5], [2 * 14.5 + 10, 3 * 3.5 - 20, 4 * 2 + 5]]
    diag = np.zeros(SHAPE, np.uint8)
    diag[0, 0, 0] = diag[1, 1, 1] = 1  # touching at a corner only: one region (26-connectivity)
    assert len(truth_centres(diag, np.eye(4))) == 1
    # inside a mask: a component's centre from its voxels there; one wholly outside is left out
    within = np.ones(SHAPE, bool)
    within[14:16] = False
    assert truth_centres(two_blobs, np.eye(4), within=within).tolist() == [[2.5, 1.5, 2.0]]


def test_peak_distance_is_to_the_nearest_region(two_blobs):
    m = np.zeros(SHAPE)
    m[13, 4, 2] = 1.0  # next to blob B: 1.5 voxels in x, 0.5 in y from its centre
    res = _eval(m, two_blobs)
    assert res["truth_components"] == 2
    assert res["peak_distance_mm"] == pytest.approx(_mm(1.5, 0.5))  # 3.16 mm, not 9.2 to the union
    assert res["com_distance_mm"] == pytest.approx(_mm(1.5, 0.5))
    assert res["roi_centre_mm"] == pytest.approx([2 * 8.5 + 10, 3 * 2.5 - 20, 13])  # still the union's
    assert np.allclose(res["roi_centres_mm"], [[15, -15.5, 13], [39, -9.5, 13]])


def test_a_map_on_one_region_scores_zero_and_one_between_them_does_not(two_blobs):
    one = two_blobs.copy().astype(float)
    one[10:] = 0  # finds blob A only, exactly
    res = _eval(one, two_blobs)
    assert res["peak_distance_mm"] == pytest.approx(0.0) and res["com_distance_mm"] == pytest.approx(0.0)
    perfect = _eval(two_blobs.astype(float), two_blobs)
    assert perfect["peak_distance_mm"] == pytest.approx(0.0)
    assert perfect["com_distance_mm"] == pytest.approx(0.0)
    # All of a map's mass halfway between the regions, where the union's centroid is: voxels
    # x = 8 (nearer A) and x = 9 (nearer B), y 2-3. Each zone's centroid is 5.5 voxels in x and
    # 1 voxel in y (A: (8, 2.5) vs (2.5, 1.5); B: (9, 2.5) vs (14.5, 3.5)) from its centre.
    between = np.zeros(SHAPE)
    between[8:10, 2:4, 2] = 1.0
    res = _eval(between, two_blobs)
    assert res["peak_distance_mm"] == pytest.approx(_mm(5.5, 1.0))  # 11.4 mm; the union's rule: 0
    assert res["com_distance_mm"] == pytest.approx(_mm(5.5, 1.0))


def test_centre_of_mass_is_weighted_zone_by_zone(two_blobs):
    m = np.zeros(SHAPE)
    m[4, 1, 2] = 1.0  # zone A, 1.5 voxels in x and 0.5 in y from A's centre: 3.16 mm, weight 1
    m[14, 3, 2] = 3.0  # zone B, 0.5 in x and 0.5 in y from B's centre: 1.80 mm, weight 3 (the peak)
    res = _eval(m, two_blobs)
    assert res["peak_distance_mm"] == pytest.approx(_mm(0.5, 0.5))
    assert res["com_distance_mm"] == pytest.approx((1 * _mm(1.5, 0.5) + 3 * _mm(0.5, 0.5)) / 4)
    # negative values carry no mass
    m[8, 2, 2] = -5.0
    assert _eval(m, two_blobs)["com_distance_mm"] == pytest.approx(res["com_distance_mm"])


def test_tied_peaks_in_both_regions(two_blobs):
    m = np.zeros(SHAPE)
    m[3, 2, 2] = m[14, 3, 2] = m[15, 4, 2] = 1.0  # A: 0.5, 0.5 off; B's two average to its centre
    res = _eval(m, two_blobs)
    assert res["peak_distance_mm"] == pytest.approx((1 * _mm(0.5, 0.5) + 2 * 0.0) / 3)


def test_single_region_values_are_unchanged():
    """One region: exactly the formulas of metrics versions 1-2 (the centroid of the peak voxels and
    the centre of mass, each to the ROI's centroid), bit for bit."""
    rng = np.random.default_rng(3)
    roi = np.zeros(SHAPE, np.uint8)
    roi[5:9, 1:4, 1:4] = 1
    values = rng.random(SHAPE) ** 4
    values[12, 2, 2] = values.max()  # a tie at the maximum, far from the ROI
    res = _eval(values, roi)
    assert res["truth_components"] == 1
    ijk = np.argwhere(np.ones(SHAPE, bool))
    v = values.astype(np.float32).astype(np.float64).ravel()
    world = lambda p: p @ AFFINE[:3, :3].T + AFFINE[:3, 3]  # noqa: E731
    centre = world(np.argwhere(roi > 0).mean(0))
    peak = world(ijk[v == v.max()].mean(0))
    com = world((ijk * v[:, None]).sum(0) / v.sum())
    assert res["peak_distance_mm"] == float(np.linalg.norm(peak - centre))
    assert res["com_distance_mm"] == float(np.linalg.norm(com - centre))


def test_definitions_and_version():
    assert METRICS_VERSION.startswith("3")
    assert "NEAREST" in DEFINITIONS["peak_distance_mm"]
    assert "zone" in DEFINITIONS["com_distance_mm"]
    assert "26-connected" in DEFINITIONS["truth_components"]


def test_evaluate_maps_with_a_union_of_labels(tmp_path, two_blobs):
    labels = np.zeros(SHAPE, np.int16)
    labels[two_blobs > 0] = 1
    labels[14:16, 3:5, 2] = 3  # blob B is label 3
    labels[8, 0, 0] = 2
    nib.save(nib.Nifti1Image(labels, AFFINE), tmp_path / "rois.nii.gz")
    m = np.zeros(SHAPE)
    m[13, 4, 2], m[3, 1, 2] = 1.0, 0.5
    maps = tmp_path / "maps"
    maps.mkdir()
    nib.save(_img(m), maps / "vlsm_naming.nii.gz")
    nib.save(_img(m), maps / "vlsm_fluency.nii.gz")
    ev = evaluate_maps(maps, tmp_path / "rois.nii.gz", labels={"naming": [1, 3], "fluency": 3},
                       mask="none")
    assert ev["truth_labels"] == {"fluency": [3], "naming": [1, 3]}
    union = _eval(m, np.isin(labels, [1, 3]))
    got = ev["results"]["vlsm"]["naming"]
    assert got["label"] == [1, 3] and got["truth_components"] == 2
    for key in ("pr_auc", "cdc", "prevalence", "peak_distance_mm", "com_distance_mm"):
        assert got[key] == pytest.approx(union[key]), key
    assert ev["results"]["vlsm"]["fluency"]["label"] == 3
    assert ev["results"]["vlsm"]["fluency"]["pr_auc"] == pytest.approx(_eval(m, labels == 3)["pr_auc"])
    with pytest.raises(DeepLSMError,
                       match=r"labels naming=1\+4: the truth has no label 4 \(it has 1, 2, 3\)"):
        evaluate_maps(maps, tmp_path / "rois.nii.gz", labels={"naming": [1, 4], "fluency": 3})


@pytest.mark.parametrize("bad", [0, [], [1, 1], "1", [1.5], True, [True]])
def test_label_list_rejects(bad):
    with pytest.raises(DeepLSMError, match="labels for 'x' must be"):
        label_list("x", bad)

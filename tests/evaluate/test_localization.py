import nibabel as nib
import numpy as np
import pytest
from sklearn.metrics import average_precision_score, precision_recall_curve

from deeplsm.evaluate import (
    average_precision,
    best_f1_dice,
    brain_mask_for,
    continuous_dice,
    evaluate_map,
    evaluate_maps,
    pr_auc,
    pr_curve,
)
from deeplsm.exceptions import DeepLSMError

SHAPE = (7, 8, 9)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def roi():
    a = np.zeros(SHAPE, bool)
    a[2:4, 3:6, 4:7] = True
    return a


def test_cdc_equals_dice_for_binary_maps(rng, roi):
    for _ in range(5):
        b = rng.random(SHAPE) < 0.2
        dice = 2 * (roi & b).sum() / (roi.sum() + b.sum())
        assert continuous_dice(roi, b.astype(float)) == pytest.approx(dice)


def test_cdc_scaled_roi_is_one_and_zero_map_is_zero(roi):
    assert continuous_dice(roi, 0.3 * roi) == pytest.approx(1.0)
    assert continuous_dice(roi, np.zeros(SHAPE)) == 0.0
    b = np.zeros(SHAPE)
    b[0, 0, 0] = 0.5  # no overlap: c = 1
    assert continuous_dice(roi, b) == 0.0


def test_pr_auc_perfect_and_blocky_perfect_map(roi):
    p, r, _ = pr_curve(roi.astype(float), roi)
    assert pr_auc(p, r) == pytest.approx(1.0)
    # blocky: all ROI voxels tie at the max with a few extra voxels; anchored at recall 0
    blocky = roi.astype(float) * 0.8
    blocky[roi] = 1.0
    p, r, _ = pr_curve(blocky, roi)
    assert pr_auc(p, r) == pytest.approx(1.0)
    assert average_precision(blocky, roi) == pytest.approx(1.0)


def test_random_map_pr_auc_near_prevalence(rng):
    y = rng.random(200_000) < 0.05
    v = rng.random(200_000)
    p, r, _ = pr_curve(v, y)
    assert pr_auc(p, r) == pytest.approx(y.mean(), abs=0.01)


def test_precision_recall_match_sklearn(rng):
    v = rng.integers(0, 6, size=60) / 5.0  # ties on purpose
    y = rng.random(60) < 0.3
    sk_p, sk_r, sk_t = precision_recall_curve(y, v)
    p, r, _ = pr_curve(v, y, thresholds=sk_t)
    np.testing.assert_allclose(p, sk_p[:-1])
    np.testing.assert_allclose(r, sk_r[:-1])
    assert average_precision(v, y) == pytest.approx(average_precision_score(y, v))


def test_pr_curve_thresholds_from_max_to_min(rng, roi):
    v = rng.random(SHAPE)
    p, r, t = pr_curve(v, roi)
    assert t.size == 1000 and t[0] == v.max() and t[-1] == v.min()
    assert r[-1] == 1.0 and p[-1] == pytest.approx(roi.mean())
    assert np.all(np.diff(r) >= 0)


def test_best_f1_dice(roi):
    v = roi * 1.0
    v[0, 0, :3] = 0.5
    dice, thr = best_f1_dice(v, roi)
    assert dice == 1.0 and thr > 0.5


def _img(data, affine=None):
    return nib.Nifti1Image(np.asarray(data, dtype=np.float32), np.eye(4) if affine is None else affine)


def test_distances_are_in_mm_and_use_affine(roi):
    affine = np.diag([2.0, 3.0, 4.0, 1.0])
    affine[:3, 3] = [10, 20, 30]
    m = np.zeros(SHAPE)
    m[6, 3, 5] = 1.0  # peak two... voxels away on x
    res = evaluate_map(_img(m, affine), _img(roi, affine), "none")
    centre = np.argwhere(roi).mean(0)  # (2.5, 4, 5)
    expected = np.linalg.norm((np.array([6, 3, 5]) - centre) * [2, 3, 4])
    assert res["peak_distance_mm"] == pytest.approx(expected)
    assert res["com_distance_mm"] == pytest.approx(expected)
    assert res["roi_centre_mm"] == pytest.approx(list(centre * [2, 3, 4] + [10, 20, 30]))
    assert res["mask"]["kind"] == "all_voxels"


def test_evaluate_map_all_metrics_and_zero_map(roi):
    res = evaluate_map(_img(roi * 0.7), _img(roi), "none")
    assert res["pr_auc"] == pytest.approx(1) and res["cdc"] == pytest.approx(1)
    assert res["dice_best"] == pytest.approx(1)
    assert res["prevalence"] == pytest.approx(roi.mean())
    assert len(res["precision"]) == 1000
    zero = evaluate_map(_img(np.zeros(SHAPE)), _img(roi), "none")
    assert zero["cdc"] == 0 and zero["peak_distance_mm"] is None and zero["com_distance_mm"] is None


def test_mni_mask_used_on_mni_grid_and_fallback_elsewhere():
    affine = np.diag([6.0, 6.0, 6.0, 1.0])
    affine[:3, 3] = [-90, -126, -72]
    shape = (31, 37, 31)
    mask = brain_mask_for(shape, affine)
    assert 0.2 < mask.mean() < 0.8
    roi = np.zeros(shape)
    roi[14:17, 20:23, 15:18] = 1  # central, inside the brain
    m = np.zeros(shape)
    m[0, 0, 0] = 5.0  # outside the brain: ignored inside the mask
    m[15, 21, 16] = 1.0
    res = evaluate_map(_img(m, affine), _img(roi, affine))
    assert res["mask"]["kind"] == "mni152_brain_mask"
    assert res["mask"]["n_voxels"] == mask.sum()
    assert res["peak_distance_mm"] == pytest.approx(0.0)
    # a grid far outside the MNI brain: not MNI space, falls back to all voxels
    far = np.eye(4)
    far[:3, 3] = 300
    res = evaluate_map(_img(np.ones(SHAPE), far), _img(np.eye(7, 8)[:, :, None] * np.ones(SHAPE), far))
    assert res["mask"]["kind"] == "all_voxels"


def test_evaluate_maps_matching(tmp_path, roi):
    truth = np.zeros(SHAPE)
    truth[roi] = 1
    truth[5:7, 0:2, 0:2] = 2
    nib.save(_img(truth), tmp_path / "rois.nii.gz")
    maps = tmp_path / "maps"
    maps.mkdir()
    nib.save(_img(roi), maps / "ig_score_1.nii.gz")
    nib.save(_img(truth == 2), maps / "vlsm_score_2.nii")
    ev = evaluate_maps(maps, tmp_path / "rois.nii.gz", mask="none")
    assert ev["results"]["ig"]["score_1"]["pr_auc"] == pytest.approx(1)
    assert ev["results"]["vlsm"]["score_2"]["label"] == 2
    ev = evaluate_maps([maps / "ig_score_1.nii.gz"], tmp_path / "rois.nii.gz", mask="none",
                       labels={"score_1": 2})
    assert ev["results"]["ig"]["score_1"]["pr_auc"] < 0.5
    nib.save(_img(roi), tmp_path / "plain.nii.gz")
    with pytest.raises(DeepLSMError, match="cannot tell which ROI"):
        evaluate_maps([tmp_path / "plain.nii.gz"], tmp_path / "rois.nii.gz")
    with pytest.raises(DeepLSMError, match="is for label 7"):
        nib.save(_img(roi), tmp_path / "x_score_7.nii.gz")
        evaluate_maps([tmp_path / "x_score_7.nii.gz"], tmp_path / "rois.nii.gz", mask="none")


def test_evaluate_map_resamples_other_grids(roi):
    big = np.zeros((14, 16, 18))
    big[4:8, 6:12, 8:14] = 1
    res = evaluate_map(_img(big, np.diag([0.5, 0.5, 0.5, 1])), _img(roi), "none")
    assert res["map_resampled_to_truth_grid"] and res["pr_auc"] > 0.9


def test_errors(roi):
    with pytest.raises(DeepLSMError, match="ROI is empty"):
        pr_curve(np.ones(5), np.zeros(5))
    with pytest.raises(DeepLSMError, match="NaN"):
        pr_curve(np.array([np.nan, 1]), np.array([1, 0]))
    with pytest.raises(DeepLSMError, match="map does not exist"):
        evaluate_maps(["/nonexistent/x_score_1.nii.gz"], _img(roi))

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
    pr_auc_trapezoid,
    pr_curve,
)
from deeplsm.evaluate._figures import curve_points
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


def brute_force_ap(values, roi) -> float:
    """Average precision written out: for each distinct value t from high to low, the binary
    map ``values >= t`` (ties enter together); AP = sum of (R_k - R_{k-1}) * P_k, R_0 = 0."""
    v = np.asarray(values, dtype=float).ravel()
    y = np.asarray(roi).ravel() > 0
    ap, r_prev = 0.0, 0.0
    for t in sorted(set(v.tolist()), reverse=True):
        sel = v >= t
        tp = int((sel & y).sum())
        p, r = tp / int(sel.sum()), tp / int(y.sum())
        ap += (r - r_prev) * p
        r_prev = r
    return ap


def brute_force_best_dice(values, roi) -> float:
    v = np.asarray(values, dtype=float).ravel()
    y = np.asarray(roi).ravel() > 0
    return max(2 * int(((v >= t) & y).sum()) / (int((v >= t).sum()) + int(y.sum()))
               for t in set(v.tolist()))


def test_perfect_and_blocky_perfect_maps_score_one(roi):
    p, r, _ = pr_curve(roi.astype(float), roi)
    assert average_precision(roi.astype(float), roi) == pytest.approx(1.0)
    assert pr_auc_trapezoid(p, r) == pytest.approx(1.0)
    # blocky: all ROI voxels tie at the max, every other voxel below them
    blocky = roi.astype(float) * 0.8
    blocky[roi] = 1.0
    p, r, _ = pr_curve(blocky, roi)
    assert pr_auc_trapezoid(p, r) == pytest.approx(1.0)
    assert average_precision(blocky, roi) == pytest.approx(1.0)
    assert evaluate_map(_img(blocky), _img(roi), "none")["pr_auc"] == pytest.approx(1.0)


@pytest.mark.parametrize("kind", ["zero", "constant", "negative constant"])
def test_flat_maps_score_the_prevalence(roi, kind):
    """A map that finds nothing must not score above chance (the old trapezoid anchored at
    (recall 0, precision 1) gave 0.518 here, against a prevalence of 0.036)."""
    value = {"zero": 0.0, "constant": 0.3, "negative constant": -2.0}[kind]
    flat = np.full(SHAPE, value)
    prevalence = 18 / 504
    assert roi.mean() == pytest.approx(prevalence)
    res = evaluate_map(_img(flat), _img(roi), "none")
    assert res["pr_auc"] == pytest.approx(prevalence)
    assert res["average_precision"] == pytest.approx(prevalence)
    assert res["pr_auc_trapezoid"] == pytest.approx(prevalence)
    assert res["prevalence"] == pytest.approx(prevalence)
    assert brute_force_ap(flat, roi) == pytest.approx(prevalence)
    # the only binary map a flat map gives is every voxel: Dice 2p / (1 + p)
    assert res["dice_best"] == pytest.approx(2 * prevalence / (1 + prevalence))


def test_random_map_scores_about_the_prevalence(rng):
    y = rng.random(200_000) < 0.05
    v = rng.random(200_000)
    p, r, _ = pr_curve(v, y)
    assert average_precision(v, y) == pytest.approx(y.mean(), abs=0.005)
    assert pr_auc_trapezoid(p, r) == pytest.approx(y.mean(), abs=0.005)
    roi = np.zeros(SHAPE, bool)  # the 7x8x9 case: a few hundred voxels, so many maps
    roi[2:4, 3:6, 4:7] = True
    aps = [average_precision(rng.random(SHAPE), roi) for _ in range(200)]
    assert np.mean(aps) == pytest.approx(roi.mean(), abs=0.02)


def test_blocky_map_with_ties_hand_value_sklearn_and_brute_force(roi):
    """A block of 12 voxels tied at 1 holds 6 of the 18 ROI voxels (a third); everything else is 0.

    Step-wise AP: (1/3) * 6/12 + (2/3) * 18/504 = 0.190. The old trapezoid from (0, 1) gave 0.429;
    the trapezoid kept for the figure starts at the block's precision instead: 0.357.
    """
    block = np.zeros(SHAPE)
    block[1:5, 3:6, 4:5] = 1.0
    assert (block > 0).sum() == 12 and ((block > 0) & roi).sum() == 6
    prevalence = 18 / 504
    expected = (1 / 3) * 0.5 + (2 / 3) * prevalence
    res = evaluate_map(_img(block), _img(roi), "none")
    assert res["pr_auc"] == pytest.approx(expected, abs=1e-12)
    assert res["pr_auc"] == pytest.approx(average_precision_score(roi.ravel(), block.ravel()), abs=1e-12)
    assert res["pr_auc"] == pytest.approx(brute_force_ap(block, roi), abs=1e-12)
    expected_trapezoid = (1 / 3) * 0.5 + (2 / 3) * (0.5 + prevalence) / 2
    assert res["pr_auc_trapezoid"] == pytest.approx(expected_trapezoid, abs=1e-9)
    # best Dice: the block alone, 2 * 6 / (12 + 18)
    assert res["dice_best"] == pytest.approx(0.4) and res["dice_best_threshold"] == 1.0


def test_ap_and_curve_with_ties_against_independent_values(rng):
    v = rng.integers(0, 6, size=60) / 5.0  # ties on purpose
    y = rng.random(60) < 0.3
    sk_p, sk_r, sk_t = precision_recall_curve(y, v)
    p, r, _ = pr_curve(v, y, thresholds=sk_t)
    np.testing.assert_allclose(p, sk_p[:-1])
    np.testing.assert_allclose(r, sk_r[:-1])
    assert average_precision(v, y) == pytest.approx(brute_force_ap(v, y), abs=1e-12)
    assert best_f1_dice(v, y)[0] == pytest.approx(brute_force_best_dice(v, y), abs=1e-12)


def test_trapezoid_starts_at_the_highest_thresholds_precision():
    # highest threshold: precision 0.5 at recall 0.5, then (1.0, 0.25)
    assert pr_auc_trapezoid([0.5, 0.25], [0.5, 1.0]) == pytest.approx(0.5 * 0.5 + 0.5 * 0.375)
    rec, pre = curve_points({"recall": [0.5, 1.0], "precision": [0.5, 0.25]})
    assert rec == [0.0, 0.5, 1.0] and pre == [0.5, 0.5, 0.25]
    rec, pre = curve_points({"recall": [0.0, 1.0], "precision": [0.0, 0.25]})
    assert rec == [0.0, 1.0] and pre == [0.0, 0.25]  # already at recall 0: unchanged


def test_pr_curve_thresholds_from_max_to_min(rng, roi):
    v = rng.random(SHAPE)
    p, r, t = pr_curve(v, roi)
    assert t.size == 1000 and t[0] == v.max() and t[-1] == v.min()
    assert r[-1] == 1.0 and p[-1] == pytest.approx(roi.mean())
    assert np.all(np.diff(r) >= 0)


def test_best_f1_dice(roi, rng):
    v = roi * 1.0
    v[0, 0, :3] = 0.5
    dice, thr = best_f1_dice(v, roi)
    assert dice == 1.0 and thr > 0.5
    # every distinct value is a candidate threshold, even where evenly spaced ones skip it
    v = rng.random(SHAPE) * 0.01
    v[0, 0, 0] = 100.0  # one outlier squeezes the other values below the first grid step
    v[roi] += 0.02
    assert best_f1_dice(v, roi)[0] == pytest.approx(brute_force_best_dice(v, roi))
    assert best_f1_dice(v, roi)[0] > best_f1_dice(v, roi, n_thresholds=1000)[0]


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

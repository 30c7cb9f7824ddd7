"""Cluster and peak tables: a hand-built map with known blobs (RAS and LAS), nilearn's
get_clusters_table on the same maps, atlas labels, the writer and bad input."""

from __future__ import annotations

import json
import warnings

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nilearn.reporting import get_clusters_table
from scipy import ndimage

from deeplsm.evaluate import cluster_table, clusters_path, load_atlas, write_cluster_table
from deeplsm.exceptions import DeepLSMError

SHAPE = (12, 14, 10)
# RAS: x = 2i - 12, y = 2j - 20, z = 2k - 10
RAS = np.array([[2.0, 0, 0, -12], [0, 2, 0, -20], [0, 0, 2, -10], [0, 0, 0, 1]])
# LAS, the same space with i flipped: x = 10 - 2i (voxel i here is voxel 11 - i in RAS)
LAS = np.array([[-2.0, 0, 0, 10], [0, 2, 0, -20], [0, 0, 2, -10], [0, 0, 0, 1]])


def _blobs_ras() -> np.ndarray:
    d = np.zeros(SHAPE)
    d[2:5, 3:6, 2:5] = 0.6  # blob A: 27 voxels, peak 1.0 at its centre (3, 4, 3)
    d[3, 4, 3] = 1.0
    d[8:10, 9:11, 6] = -0.8  # blob B: 4 voxels, negative, peak -0.9 at (9, 10, 6)
    d[9, 10, 6] = -0.9
    d[10, 2, 8] = 0.7  # blob C: one voxel (8 mm³), below the size limit used below
    return d


def _img(orientation: str, data: np.ndarray | None = None) -> nib.Nifti1Image:
    d = _blobs_ras() if data is None else data
    if orientation == "LAS":
        return nib.Nifti1Image(d[::-1].copy(), LAS)
    return nib.Nifti1Image(d, RAS)


def _atlas_files(tmp_path, sep="\t"):
    """A 1 mm RAS atlas whose voxel centres include the map's (integers in mm):
    1 'Region A' where y < -11, 2 'Region B' where x > 0 and y >= 0."""
    shape = (40, 44, 30)
    aff = np.array([[1.0, 0, 0, -20], [0, 1, 0, -25], [0, 0, 1, -15], [0, 0, 0, 1]])
    x, y, _ = np.meshgrid(np.arange(shape[0]) - 20, np.arange(shape[1]) - 25,
                          np.arange(shape[2]) - 15, indexing="ij")
    lab = np.zeros(shape, np.int16)
    lab[y < -11] = 1
    lab[(x > 0) & (y >= 0)] = 2
    nib.Nifti1Image(lab, aff).to_filename(tmp_path / "atlas.nii.gz")
    table = tmp_path / ("labels.tsv" if sep == "\t" else "labels.csv")
    table.write_text(f"index{sep}name\n1{sep}Region A\n2{sep}Region B\n")
    return tmp_path / "atlas.nii.gz", table


@pytest.mark.parametrize("orientation", ["RAS", "LAS"])
def test_two_blobs_by_hand(orientation, tmp_path):
    atlas = load_atlas(*_atlas_files(tmp_path))
    t = cluster_table(_img(orientation), min_volume_mm3=20, atlas=atlas)
    # default threshold: half of max|value| = 0.5; blob C (8 mm³) is below 20 mm³
    assert t.attrs["threshold"] == pytest.approx(0.5) and t.attrs["min_voxels"] == 3
    main = t[t["peak"] == 0].reset_index(drop=True)
    assert list(main["cluster"]) == [1, 2] and list(main["sign"]) == ["+", "-"]
    assert list(main["size_voxels"]) == [27, 4]
    np.testing.assert_allclose(main["size_mm3"], [27 * 8, 4 * 8])
    np.testing.assert_allclose(main["peak_value"], [1.0, -0.9])
    # peaks in MNI mm, by hand: A at voxel (3, 4, 3) -> (-6, -12, -4); B at (9, 10, 6) -> (6, 0, 2)
    np.testing.assert_allclose(main[["x_mm", "y_mm", "z_mm"]], [[-6, -12, -4], [6, 0, 2]])
    ras_i = [3, 9] if orientation == "RAS" else [11 - 3, 11 - 9]
    assert list(main["i"]) == ras_i and list(main["j"]) == [4, 10] and list(main["k"]) == [3, 6]
    # centres of mass weighted by |value|: A is symmetric about its peak; B by hand:
    # i = (0.8*8 + 0.8*8 + 0.8*9 + 0.9*9) / 3.3 = 28.1 / 3.3, j = 31.4 / 3.3
    np.testing.assert_allclose(main.loc[0, ["com_x_mm", "com_y_mm", "com_z_mm"]], [-6, -12, -4])
    np.testing.assert_allclose(main.loc[1, ["com_x_mm", "com_y_mm", "com_z_mm"]],
                               [2 * 28.1 / 3.3 - 12, 2 * 31.4 / 3.3 - 20, 2], atol=1e-9)
    # atlas: A's peak (y = -12) is in region A, which holds its y = -14 and -12 slices (18/27);
    # B's peak (x = 6, y = 0) is in region B, which holds its y = 0 half (2/4)
    assert list(main["label"]) == ["Region A", "Region B"]
    assert list(main["cluster_labels"]) == ["Region A (67%)", "Region B (50%)"]
    # one-sided: only A
    one = cluster_table(_img(orientation), min_volume_mm3=20, two_sided=False)
    assert list(one.loc[one["peak"] == 0, "size_voxels"]) == [27]
    # with no size limit, C (0.7 at voxel (10, 2, 8) -> (8, -16, 6)) is the second cluster
    all_ = cluster_table(_img(orientation), min_volume_mm3=0, sub_peaks=0)
    assert list(all_["size_voxels"]) == [27, 1, 4]
    np.testing.assert_allclose(all_.loc[1, ["x_mm", "y_mm", "z_mm", "peak_value"]], [8, -16, 6, 0.7])


def test_tables_from_las_and_ras_agree_in_mm():
    rng = np.random.default_rng(3)
    d = ndimage.gaussian_filter(rng.normal(size=SHAPE), 1.0)
    ras = cluster_table(_img("RAS", d), min_volume_mm3=0)
    las = cluster_table(_img("LAS", d), min_volume_mm3=0)
    cols = ["cluster", "peak", "size_voxels", "peak_value", "x_mm", "y_mm", "z_mm", "com_x_mm"]
    pd.testing.assert_frame_equal(ras[cols], las[cols])


def _smooth_map(seed: int, shape=(23, 27, 21)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    d = ndimage.gaussian_filter(rng.normal(size=shape), 1.2)
    d /= np.abs(d).max()
    # a flat, isolated 2x2x2 cluster: its peak is the plateau's centre, (16.5, 2.5, 4.5), which
    # numpy rounds half to even (to 16, 2, 4), whatever the crop
    d[15:19, 1:5, 3:7] = 0.0
    d[16:18, 2:4, 4:6] = 0.9
    return d


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_same_peaks_and_sizes_as_nilearn(seed):
    """Every peak and sub-peak, value and size equals get_clusters_table on the whole map."""
    d = _smooth_map(seed)
    aff = LAS if seed % 2 else np.diag([3.0, 3.0, 3.0, 1.0])
    img = nib.Nifti1Image(d, aff)
    vox = abs(np.linalg.det(aff[:3, :3]))
    thr, k = 0.3, 3
    ours = cluster_table(img, threshold=thr, min_volume_mm3=k * vox)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ref = get_clusters_table(img, thr, cluster_threshold=k, two_sided=True)
    assert len(ours) == len(ref) > 10
    np.testing.assert_allclose(ours[["x_mm", "y_mm", "z_mm", "peak_value"]].to_numpy(),
                               ref[["X", "Y", "Z", "Peak Stat"]].to_numpy(dtype=float))
    is_main = ref["Cluster ID"].map(lambda c: str(c).isdigit()).to_numpy()
    np.testing.assert_array_equal(ours["peak"].to_numpy() == 0, is_main)
    # nilearn truncates mm³ to an integer
    np.testing.assert_array_equal(np.floor(ours.loc[is_main, "size_mm3"].to_numpy() + 1e-9),
                                  ref.loc[is_main, "Cluster Size (mm3)"].to_numpy(dtype=float))
    # the plateau cluster is reported at its centre, as nilearn does
    assert (ours["peak_value"] == 0.9).sum() == 1


def test_sizes_and_centres_match_scipy_labels():
    d = _smooth_map(5)
    img = nib.Nifti1Image(d, RAS)
    t = cluster_table(img, threshold=0.25, min_volume_mm3=0, two_sided=False)
    lab, _ = ndimage.label(d > 0.25)  # scipy's default structure is face connectivity
    sizes = np.bincount(lab.ravel())[1:]
    assert sorted(t.loc[t["peak"] == 0, "size_voxels"]) == sorted(sizes)
    top = t[t["peak"] == 0].iloc[0]
    k = lab[top["i"], top["j"], top["k"]]
    com = ndimage.center_of_mass(np.abs(d), lab, k)
    np.testing.assert_allclose(top[["com_x_mm", "com_y_mm", "com_z_mm"]].to_numpy(dtype=float),
                               RAS[:3, :3] @ com + RAS[:3, 3])
    assert top["peak_value"] == pytest.approx(d[lab == k].max())


def test_mask_and_sub_peaks():
    d = _smooth_map(1)
    img = nib.Nifti1Image(d, RAS)
    mask = np.zeros(d.shape, bool)
    mask[: d.shape[0] // 2] = True
    t = cluster_table(img, threshold=0.3, min_volume_mm3=0, mask=mask)
    assert (t["i"] < d.shape[0] // 2).all()
    assert t.groupby("cluster")["peak"].max().max() <= 3
    none = cluster_table(img, threshold=0.3, min_volume_mm3=0, sub_peaks=0)
    assert (none["peak"] == 0).all()
    far = cluster_table(img, threshold=0.3, min_volume_mm3=0, min_distance=1000)
    assert (far["peak"] == 0).all()


def test_blank_map_gives_an_empty_table(tmp_path):
    t = cluster_table(nib.Nifti1Image(np.zeros(SHAPE), RAS))
    assert t.empty and "peak_value" in t.columns and t.attrs["threshold"] == 0
    path = write_cluster_table(t, tmp_path / "blank_clusters.tsv")
    assert pd.read_csv(path, sep="\t").empty


def test_write_round_trip_and_sidecar(tmp_path):
    img_path = tmp_path / "ig_score_1.nii.gz"
    _img("RAS").to_filename(img_path)
    assert clusters_path(img_path) == tmp_path / "ig_score_1_clusters.tsv"
    atlas_img, labels = _atlas_files(tmp_path, sep=",")
    t = cluster_table(img_path, min_volume_mm3=20, atlas=atlas_img, atlas_labels=labels)
    out = write_cluster_table(t, clusters_path(img_path))
    text = out.read_text().splitlines()
    assert text[0].split("\t")[:4] == ["cluster", "peak", "sign", "size_voxels"]
    back = pd.read_csv(out, sep="\t", na_values=["n/a"], keep_default_na=False)
    assert list(back["size_voxels"].dropna()) == [27, 4]
    assert "n/a" in out.read_text() or back["size_voxels"].notna().all()
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["threshold"] == pytest.approx(0.5) and side["connectivity"] == 6
    assert side["atlas"].endswith("atlas.nii.gz") and "label" in side["columns"]


def test_sub_peak_rows_leave_cluster_columns_empty(tmp_path):
    d = np.zeros((20, 8, 8))
    d[2:18, 3:5, 3:5] = 0.6  # a long bar with two separate maxima 20 mm apart
    d[4, 3, 3], d[14, 4, 4] = 1.0, 0.9
    t = cluster_table(nib.Nifti1Image(d, np.diag([2.0, 2, 2, 1])), min_volume_mm3=0)
    # (nilearn also counts the bar's flat ends as local maxima, after the two peaks)
    assert list(t["peak"]) == list(range(len(t))) and (t["cluster"] == 1).all()
    np.testing.assert_allclose(t.loc[:1, ["x_mm", "peak_value"]], [[8, 1.0], [28, 0.9]])
    assert t.loc[1:, "size_voxels"].isna().all() and t.loc[1:, "com_x_mm"].isna().all()
    path = write_cluster_table(t, tmp_path / "bar_clusters.tsv")
    assert path.read_text().splitlines()[2].split("\t")[3] == "n/a"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"threshold": -1}, "threshold must be"),
    ({"relative_threshold": 1.5}, "relative_threshold must be in"),
    ({"sub_peaks": 5}, "sub_peaks must be 0 to 3"),
    ({"min_distance": 0}, "min_distance must be positive"),
    ({"mask": np.ones((2, 2, 2), bool)}, "mask has shape"),
    ({"atlas": "atlas.nii.gz"}, "needs its label table"),
])
def test_bad_parameters(kwargs, message):
    with pytest.raises(DeepLSMError, match=message):
        cluster_table(_img("RAS"), **kwargs)


def test_bad_maps_and_atlases(tmp_path):
    with pytest.raises(DeepLSMError, match="map does not exist"):
        cluster_table(tmp_path / "missing.nii.gz")
    with pytest.raises(DeepLSMError, match="NaN"):
        cluster_table(nib.Nifti1Image(np.full(SHAPE, np.nan), RAS))
    with pytest.raises(DeepLSMError, match="must be 3D"):
        cluster_table(nib.Nifti1Image(np.zeros((*SHAPE, 2)), RAS))
    atlas_img, labels = _atlas_files(tmp_path)
    frac = tmp_path / "frac.nii.gz"
    nib.Nifti1Image(np.full((4, 4, 4), 0.5), np.eye(4)).to_filename(frac)
    with pytest.raises(DeepLSMError, match="non-negative integer labels"):
        load_atlas(frac, labels)
    bad = tmp_path / "bad.tsv"
    bad.write_text("id\tlabel\n1\tA\n")
    with pytest.raises(DeepLSMError, match="needs the columns 'index' and 'name'"):
        load_atlas(atlas_img, bad)
    bad.write_text("index\tname\n1\tA\n1\tB\n")
    with pytest.raises(DeepLSMError, match="index 1 appears twice"):
        load_atlas(atlas_img, bad)
    bad.write_text("index\tname\nx\tA\n")
    with pytest.raises(DeepLSMError, match="not a non-negative integer"):
        load_atlas(atlas_img, bad)
    # labels missing from the table are named by their index
    atlas = load_atlas(atlas_img, {1: "Region A"})
    t = cluster_table(_img("RAS"), min_volume_mm3=20, atlas=atlas)
    assert list(t.loc[t["peak"] == 0, "label"]) == ["Region A", "label 2"]

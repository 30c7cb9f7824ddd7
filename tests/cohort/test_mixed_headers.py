"""Maps in one MNI space with different headers (LAS/RAS, fields of view) on an MNI grid."""

from __future__ import annotations

import logging

import nibabel as nib
import numpy as np
import pytest
from nilearn.image import resample_to_img

from deeplsm.cli import main
from deeplsm.cohort import LesionCohort, load_lesions, mni_brain_grid, mni_coverage
from deeplsm.exceptions import DeepLSMError
from tests.conftest import LESYMAP_DIR, write_nifti

# A 2 mm MNI grid whose voxel centres fall on the centres of the 6 mm analysis grid, so that
# every resampling below is exact.
MNI2_AFFINE = np.array([[2.0, 0, 0, -90], [0, 2, 0, -125], [0, 0, 2, -72], [0, 0, 0, 1]])
MNI2_SHAPE = (91, 109, 91)


def _synthetic_masks(n: int) -> list[nib.Nifti1Image]:
    """Boxes and balls at random places inside the MNI brain, on the 2 mm grid."""
    rng = np.random.default_rng(7)
    ijk = np.indices(MNI2_SHAPE).reshape(3, -1).T
    xyz = ijk * 2.0 + MNI2_AFFINE[:3, 3]
    imgs = []
    for _ in range(n):
        centre = rng.uniform([-50, -70, -20], [50, 40, 50])
        radius = rng.uniform(8, 20)
        data = (np.linalg.norm(xyz - centre, axis=1) <= radius).reshape(MNI2_SHAPE)
        imgs.append(nib.Nifti1Image(data.astype(np.uint8), MNI2_AFFINE))
    return imgs


def _lesymap_masks(n: int) -> list[nib.Nifti1Image]:
    return [nib.load(p) for p in sorted(LESYMAP_DIR.glob("Subject_*.nii.gz"))[:n]]


def _las_other_fov(img: nib.Nifti1Image) -> nib.Nifti1Image:
    """The same map in LAS orientation, cropped on two axes and padded on another."""
    data = np.asarray(img.dataobj)[::-1]  # flip x: voxel i is old voxel (nx - 1 - i)
    affine = img.affine.copy()
    affine[:, 0] = -img.affine[:, 0]
    affine[:3, 3] = img.affine[:3, 3] + img.affine[:3, 0] * (img.shape[0] - 1)
    data = data[3:, :-4]  # crop: x loses 3 voxels at the start, y 4 at the end
    affine[:3, 3] += 3 * affine[:3, 0]
    data = np.pad(data, ((0, 0), (0, 0), (5, 2)))  # pad z by 5 voxels below, 2 above
    affine[:3, 3] -= 5 * affine[:3, 2]
    out = nib.Nifti1Image(data, affine)
    assert nib.aff2axcodes(out.affine) == ("L", "A", "S")
    # Every lesion voxel inside the new field of view is where it was in the world.
    ijk = np.argwhere(np.asarray(img.dataobj) > 0)
    ijk = ijk[(ijk[:, 0] >= 3) & (ijk[:, 1] < img.shape[1] - 4)]
    np.testing.assert_allclose(_world(out), _world(img, ijk))
    return out


def _world(img: nib.Nifti1Image, ijk: np.ndarray | None = None) -> np.ndarray:
    if ijk is None:
        ijk = np.argwhere(np.asarray(img.dataobj) > 0)
    return np.unique(np.round(nib.affines.apply_affine(img.affine, ijk), 3), axis=0)


@pytest.fixture(params=["synthetic", "lesymap"])
def mixed(request, tmp_path):
    """A folder of RAS masks plus one LAS mask with another field of view, and the voxel size."""
    if request.param == "lesymap":
        if not LESYMAP_DIR.is_dir():
            pytest.skip("shared LESYMAP masks not available")
        imgs, voxel = _lesymap_masks(6), 4.0
    else:
        imgs, voxel = _synthetic_masks(6), 6.0
    folder = tmp_path / "mixed"
    folder.mkdir()
    odd = 2
    for i, img in enumerate(imgs):
        out = _las_other_fov(img) if i == odd else img
        nib.save(out, folder / f"sub-{i:02d}_lesion.nii.gz")
    return folder, imgs, odd, voxel


def test_las_mask_with_other_fov_loads_as_if_resampled_beforehand(mixed, tmp_path, caplog):
    folder, imgs, odd, voxel = mixed
    caplog.set_level(logging.INFO, logger="deeplsm")
    cohort = load_lesions(folder, voxel_size=voxel, verbose=False)
    assert cohort.grid == mni_brain_grid(voxel)
    assert (f"resampled {len(imgs)} of {len(imgs)} lesion maps through their own headers"
            in caplog.text)
    assert "2 different headers; reoriented to RAS: 1 from LAS" in caplog.text

    # The reference: the odd mask put back in RAS on the others' grid first, by nibabel and
    # nilearn (exact here: the grids are aligned), then loaded with one header for all.
    ref_folder = tmp_path / "ref"
    ref_folder.mkdir()
    for i, img in enumerate(imgs):
        if i == odd:
            canonical = nib.as_closest_canonical(nib.load(folder / f"sub-{i:02d}_lesion.nii.gz"))
            img = resample_to_img(canonical, img, interpolation="nearest", force_resample=True,
                                  copy_header=True)
        nib.save(img, ref_folder / f"sub-{i:02d}_lesion.nii.gz")
    ref = load_lesions(ref_folder, voxel_size=voxel, verbose=False)
    assert cohort.subject_ids == ref.subject_ids
    np.testing.assert_array_equal(cohort.affine, ref.affine)
    assert cohort.data[odd].sum() > 0
    np.testing.assert_array_equal(cohort.data, ref.data)


def test_native_grid_keeps_the_strict_rule(mixed, tmp_path, capsys):
    folder, _, _, _ = mixed
    with pytest.raises(DeepLSMError, match=r"sub-02 .*differs from subject sub-00.*--grid mni"):
        load_lesions(folder, grid="native", verbose=False)
    out = tmp_path / "sim"
    rc = main(["simulate", "--lesions", str(folder), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "--grid mni" in err and "Traceback" not in err and not out.exists()


def test_grid_mni_alone_uses_the_maps_voxel_size(tmp_path):
    imgs = _synthetic_masks(3)
    nib.save(_las_other_fov(imgs[0]), tmp_path / "a.nii.gz")
    for i, img in enumerate(imgs[1:]):
        nib.save(img, tmp_path / f"b{i}.nii.gz")
    cohort = load_lesions(tmp_path, grid="mni", verbose=False)
    assert cohort.grid == mni_brain_grid(2.0)


def test_map_in_another_space_is_refused_by_name(tmp_path, capsys):
    imgs = _synthetic_masks(4)
    for i, img in enumerate(imgs):
        nib.save(img, tmp_path / f"sub-{i}_lesion.nii.gz")
    shifted = MNI2_AFFINE.copy()
    shifted[:3, 3] += [0, 150, 0]  # same grid, 150 mm forward: most of the brain is outside
    write_nifti(tmp_path / "sub-8_lesion.nii.gz", np.asarray(imgs[0].dataobj), shifted)
    write_nifti(tmp_path / "sub-9_lesion.nii.gz", np.ones((7, 8, 9), np.uint8))  # 7x8x9 mm box
    with pytest.raises(DeepLSMError, match=r"2 of 6 lesion maps do not lie in MNI space") as err:
        load_lesions(tmp_path, voxel_size=6.0, verbose=False)
    msg = str(err.value)
    assert "sub-8_lesion" in msg and "sub-9_lesion" in msg and "sub-0_lesion" not in msg
    out = tmp_path.parent / f"{tmp_path.name}_out"
    assert main(["simulate", "--lesions", str(tmp_path), "--voxel-size", "6", "--out", str(out),
                 "--quiet"]) == 2
    err_text = capsys.readouterr().err
    assert err_text.count("deeplsm: error:") == 1 and "sub-8" in err_text and not out.exists()
    # The same maps on their native grid are not checked against MNI (the strict rule applies).
    with pytest.raises(DeepLSMError, match="affine differs"):
        load_lesions(tmp_path, verbose=False)


def test_cache_in_another_space_is_refused():
    cohort = LesionCohort(["a"], np.ones((1, 7, 8, 9), np.uint8), np.eye(4))
    with pytest.raises(DeepLSMError, match="the cohort: 0%"):
        load_lesions(cohort, voxel_size=4.0, verbose=False)


def test_mni_coverage_brute_force():
    """Coverage against counting the 1 mm MNI152 brain-mask voxels directly."""
    from nilearn.datasets import load_mni152_brain_mask

    mask = load_mni152_brain_mask(resolution=1)
    xyz = nib.affines.apply_affine(mask.affine, np.argwhere(np.asarray(mask.dataobj) > 0))
    assert mni_coverage(MNI2_SHAPE, MNI2_AFFINE) == pytest.approx(1.0, abs=1e-3)
    # The left half: x in [-90, -1] mm on a 1 mm RAS grid, and the same box stored LAS.
    left = np.diag([1.0, 1, 1, 1])
    left[:3, 3] = [-90, -130, -80]
    shape = (90, 240, 200)
    expected = float(np.mean(xyz[:, 0] <= -0.5))
    assert mni_coverage(shape, left) == pytest.approx(expected, abs=0.01)
    las = left.copy()
    las[0, 0], las[0, 3] = -1.0, -1.0
    assert mni_coverage(shape, las) == pytest.approx(expected, abs=0.01)
    shifted = MNI2_AFFINE.copy()
    shifted[2, 3] += 100  # 100 mm up: only the bottom of the box overlaps the brain
    expected = float(np.mean(xyz[:, 2] >= -72 + 100 - 1))
    assert mni_coverage(MNI2_SHAPE, shifted) == pytest.approx(expected, abs=0.01)
    assert mni_coverage(MNI2_SHAPE, np.zeros((4, 4))) == 0.0

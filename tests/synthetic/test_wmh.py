"""The synthetic WMH cohort: seeded, in white matter, periventricular, asymmetric, log-normal."""

from __future__ import annotations

import numpy as np
import pytest

from deeplsm.cohort import mni_brain_grid
from deeplsm.synthetic import make_wmh_cohort, wmh_priors, write_cohort_folder

VOXEL = 4.0


@pytest.fixture(scope="module")
def cohort():
    return make_wmh_cohort(120, voxel_size=VOXEL, random_state=3, verbose=False)


def test_seeded_and_thread_independent(cohort):
    again = make_wmh_cohort(120, voxel_size=VOXEL, random_state=3, n_jobs=1, verbose=False)
    np.testing.assert_array_equal(again.data, cohort.data)
    other = make_wmh_cohort(120, voxel_size=VOXEL, random_state=4, verbose=False)
    assert not np.array_equal(other.data, cohort.data)


def test_grid_and_ids(cohort):
    assert cohort.grid == mni_brain_grid(VOXEL)
    assert cohort.subject_ids[:2] == ["sub-0001", "sub-0002"]
    assert cohort.data.dtype == np.uint8 and set(np.unique(cohort.data)) <= {0, 1}


def test_burden_is_lognormal_like_a_memory_clinic():
    # Burden does not depend on the grid's resolution much; a coarse grid keeps this fast.
    big = make_wmh_cohort(600, voxel_size=6.0, random_state=0, verbose=False)
    vol = big.lesion_volumes_ml()
    assert 3.5 < np.median(vol) < 7.0
    assert 0.15 < (vol < 2).mean() < 0.40  # many subjects under 2 mL
    assert (vol > 50).mean() > 0.01  # a tail above 50 mL


def test_lesions_lie_in_white_matter(cohort):
    pri = wmh_priors(cohort.grid)
    lesioned = cohort.data.any(axis=0)
    assert not (lesioned & ~pri.candidate).any()
    freq = cohort.frequency_map().astype(float)
    assert (freq * pri.white_matter).sum() / freq.sum() > 0.5


def test_periventricular_dominance(cohort):
    """Voxels close to the ventricles are lesioned far more often than deep ones."""
    pri = wmh_priors(cohort.grid)
    freq = cohort.frequency_map()
    near = pri.candidate & (pri.periventricular > 0.6)
    far = pri.candidate & (pri.periventricular < 0.2)
    assert freq[near].mean() > 3 * freq[far].mean()


def test_roughly_symmetric_but_not_mirrored(cohort):
    # The grid's x axis runs left to right in MNI, so halves are hemispheres (to a voxel).
    freq = cohort.frequency_map().astype(float)
    left = freq[: freq.shape[0] // 2].sum()
    right = freq[freq.shape[0] // 2 :].sum()
    assert 0.7 < left / right < 1.4
    mirrored = cohort.data[:, ::-1]
    same = [(a == b).all() for a, b in zip(cohort.data, mirrored) if a.any()]
    assert not any(same)


def test_write_folder(cohort, tmp_path):
    from deeplsm.cohort import load_lesions

    small = cohort.subset(range(5))
    out = write_cohort_folder(small, tmp_path / "synth", verbose=False)
    back = load_lesions(out, verbose=False)
    np.testing.assert_array_equal(back.data, small.data)
    tsv = (out / "participants.tsv").read_text().splitlines()
    assert tsv[0] == "participant_id\tlesion_volume_ml" and len(tsv) == 6

"""``simulate`` checks its numbers with the shared ranges before any work, the ROI against the grid."""

from __future__ import annotations

import numpy as np
import pytest

from deeplsm.cohort import LesionCohort
from deeplsm.exceptions import DeepLSMError
from deeplsm.simulate import roi_side_voxels, select_roi_centres, simulate


@pytest.fixture
def cohort() -> LesionCohort:
    rng = np.random.default_rng(1)
    return LesionCohort([f"s{i}" for i in range(20)], (rng.random((20, 10, 12, 14)) < 0.6).astype(np.uint8),
                        np.diag([2.0, 2.0, 2.0, 1.0]))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"roi_size": 100}, "roi_size = 100: the cube side must be from 1 to 9 voxels, smaller than the "
     "10x12x14 analysis grid"),
    ({"roi_size": 10}, "roi_size = 10: the cube side must be from 1 to 9 voxels"),
    ({"roi_size_mm": 30.0}, "roi_size_mm = 30.0: 15 voxels; the cube side must be from 1 to 9 voxels"),
    ({"roi_size": "4"}, "roi_size = '4': must be an integer >= 1"),
    ({"roi_size": True}, "roi_size = True: must be an integer >= 1"),
    ({"roi_size_mm": -4}, "roi_size_mm = -4: must be a number > 0"),
    ({"n_rois": 1.5}, "n_rois = 1.5: must be an integer >= 1"),
    ({"noise": -1}, "noise = -1: must be a number >= 0"),
    ({"volume_weight": float("nan")}, "volume_weight = nan: must be a number"),
    ({"min_patients": 0}, "min_patients = 0: must be an integer >= 1"),
])
def test_bad_parameters(cohort, kwargs, message):
    with pytest.raises(DeepLSMError) as err:
        simulate(cohort, **{"roi_size": 2, "min_patients": 3, **kwargs})
    assert str(err.value).startswith(message), str(err.value)


def test_largest_cube_that_fits_the_grid_is_accepted(cohort):
    assert roi_side_voxels((10, 12, 14), (2.0,) * 3, roi_size=9) == 9
    assert roi_side_voxels((10, 12, 14), (2.0,) * 3, roi_size_mm=18.0) == 9  # 9 voxels of 2 mm
    freq = np.full((10, 12, 14), 50)
    # A 9-cube fits only where its whole extent is inside the grid: centres 4..5 on the first axis.
    centre = select_roi_centres(freq, n_rois=1, roi_size=9, min_patients=1, random_state=0)[0]
    assert 4 <= centre[0] <= 5

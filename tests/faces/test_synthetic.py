"""The synthetic set: seeded, labels readable from their regions, masks where the objects are."""

from __future__ import annotations

import numpy as np
import pytest

from deeplsm.exceptions import DeepLSMError
from deeplsm.faces import COLOURS, make_synthetic_faces, region_masks


def test_seeded_and_shaped():
    a = make_synthetic_faces(12, image_size=40, random_state=1)
    b = make_synthetic_faces(12, image_size=40, random_state=1)
    c = make_synthetic_faces(12, image_size=40, random_state=2)
    np.testing.assert_array_equal(a.images, b.images)
    assert a.labels.equals(b.labels)
    assert not np.array_equal(a.images, c.images)
    assert a.images.shape == (12, 3, 40, 40) and a.images.dtype == np.uint8
    assert a.task.names == ["age", "sex", "ethnicity"]
    assert a.labels["age"].between(1, 90).all()
    assert set(a.labels["sex"]) <= {0.0, 1.0} and set(a.labels["ethnicity"]) <= {0.0, 1.0, 2.0, 3.0}


def test_masks_are_disjoint_boxes_in_three_quadrants():
    m = region_masks(48)
    assert sorted(m) == ["age", "ethnicity", "sex"]
    total = sum(v.astype(int) for v in m.values())
    assert total.max() == 1
    h = 24
    assert m["age"][:h, :h].sum() == m["age"].sum()
    assert m["sex"][:h, h:].sum() == m["sex"].sum()
    assert m["ethnicity"][h:, :h].sum() == m["ethnicity"].sum()
    assert not any(v[h:, h:].any() for v in m.values())  # the distractor quadrant


def test_labels_are_written_inside_their_regions():
    ds = make_synthetic_faces(40, image_size=48, noise=0.0, random_state=0)
    x = ds.images.astype(float) / 255
    m = ds.masks
    # age: the brightest grey level inside the age box grows with age
    bright = np.array([xi[:, m["age"]].mean(0).max() for xi in x])
    assert np.corrcoef(bright, ds.labels["age"])[0, 1] > 0.99
    # sex: the cross's near-white pixels only when sex == 1
    white = np.array([(xi[:, m["sex"]].min(0) > 0.9).sum() for xi in x])
    assert ((white > 0) == (ds.labels["sex"] == 1)).all()
    # ethnicity: the square's colour is the class colour
    palette = np.array(list(COLOURS.values()))
    for xi, k in zip(x, ds.labels["ethnicity"].astype(int)):
        px = xi[:, m["ethnicity"]].T
        assert np.isclose(px, palette[k], atol=0.01).all(axis=1).sum() > 20
    # nothing label-related outside the three boxes: the background there has no white cross
    outside = ~(m["age"] | m["sex"] | m["ethnicity"])
    assert (x[:, :, :24, :][:, :, outside[:24, :]].min(1) > 0.9).sum() == 0


def test_bad_arguments():
    with pytest.raises(DeepLSMError, match="image_size must be at least 16"):
        make_synthetic_faces(4, image_size=8)
    with pytest.raises(DeepLSMError, match="n_images must be positive"):
        make_synthetic_faces(0)

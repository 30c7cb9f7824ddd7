"""A seeded synthetic 2D set whose three labels live in three known image regions.

Each image is a noisy grey background split into quadrants:

* top left, ``age``: a grey disc whose brightness sets the continuous label (1–90);
* top right, ``sex``: a bright cross, present (1) or absent (0);
* bottom left, ``ethnicity``: a square whose colour (red, green, blue, yellow) is the class;
* bottom right: a distractor (random shape and colour, present half the time) unrelated to
  every label.

Objects are jittered inside their quadrant; each output's ground-truth mask is the box that
holds every position of its object, so explanation maps can be scored against it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from deeplsm._utils import check_random_state
from deeplsm.exceptions import DeepLSMError
from deeplsm.faces._dataset import ImageSet, face_task

#: RGB of the four ``ethnicity`` classes.
COLOURS = {"red": (0.9, 0.15, 0.1), "green": (0.1, 0.8, 0.2), "blue": (0.15, 0.3, 0.95),
           "yellow": (0.95, 0.85, 0.1)}
AGE_RANGE = (1.0, 90.0)
#: Quadrant (row, column) of each output's object; the distractor takes (1, 1).
QUADRANTS = {"age": (0, 0), "sex": (0, 1), "ethnicity": (1, 0)}
_HALF = 0.12  # object half-extent, in image sizes
_JITTER = 0.04  # maximal shift of an object from its quadrant centre, in image sizes


def _centre(q: tuple[int, int], size: int) -> np.ndarray:
    return (np.asarray(q, dtype=float) * 2 + 1) * size / 4 - 0.5


def region_masks(image_size: int) -> dict[str, np.ndarray]:
    """Ground-truth region of each output: boolean (size, size) boxes.

    Examples
    --------
    >>> m = region_masks(32)
    >>> sorted(m), int(m["age"].sum())
    (['age', 'ethnicity', 'sex'], 100)
    """
    s = image_size
    r = (_HALF + _JITTER) * s
    rows, cols = np.mgrid[0:s, 0:s]
    out = {}
    for name, q in QUADRANTS.items():
        c = _centre(q, s)
        out[name] = (np.abs(rows - c[0]) <= r) & (np.abs(cols - c[1]) <= r)
    return out


def make_synthetic_faces(
    n_images: int = 600,
    *,
    image_size: int = 64,
    noise: float = 0.06,
    random_state: int | np.random.Generator | None = 0,
) -> ImageSet:
    """The synthetic stand-in for UTKFace, with ground-truth masks.

    Parameters
    ----------
    n_images : int, default=600
    image_size : int, default=64
        Images are ``image_size`` × ``image_size`` RGB (at least 16).
    noise : float, default=0.06
        Standard deviation of the (smoothed) background noise.
    random_state : int, Generator or None, default=0

    Returns
    -------
    ImageSet
        ``age`` (regression, 1–90), ``sex`` (binary), ``ethnicity`` (4 classes named after
        :data:`COLOURS`) and ``masks``.

    Examples
    --------
    >>> ds = make_synthetic_faces(8, image_size=32, random_state=0)
    >>> ds.images.shape, list(ds.labels.columns)
    ((8, 3, 32, 32), ['age', 'sex', 'ethnicity'])
    """
    if int(n_images) < 1:
        raise DeepLSMError(f"n_images must be positive, got {n_images}")
    if int(image_size) < 16:
        raise DeepLSMError(f"image_size must be at least 16, got {image_size}")
    if not noise >= 0:
        raise DeepLSMError(f"noise must be >= 0, got {noise}")
    rng = check_random_state(random_state)
    n, s = int(n_images), int(image_size)
    u = rng.random(n)
    age = AGE_RANGE[0] + (AGE_RANGE[1] - AGE_RANGE[0]) * u
    sex = (rng.random(n) < 0.5).astype(float)
    eth = rng.integers(0, len(COLOURS), n).astype(float)
    palette = np.array(list(COLOURS.values()))
    rows, cols = np.mgrid[0:s, 0:s].astype(float)
    h, jit = _HALF * s, _JITTER * s
    images = np.empty((n, 3, s, s), dtype=np.uint8)
    kernel = np.array([1.0, 2.0, 1.0]) / 4
    for i in range(n):
        bg = rng.normal(0.0, noise * 2, (3, s, s))
        for ax in (1, 2):  # a little smoothing, so the noise is not pure pixel noise
            bg = np.apply_along_axis(lambda v: np.convolve(v, kernel, mode="same"), ax, bg)
        img = 0.25 + bg
        shift = rng.uniform(-jit, jit, (4, 2))
        # age: disc, brightness from the label
        c = _centre(QUADRANTS["age"], s) + shift[0]
        disc = (rows - c[0]) ** 2 + (cols - c[1]) ** 2 <= h**2
        img[:, disc] = 0.3 + 0.7 * u[i]
        # sex: a cross when 1
        if sex[i]:
            c = _centre(QUADRANTS["sex"], s) + shift[1]
            arm = max(1.0, 0.35 * h)
            cross = ((np.abs(rows - c[0]) <= arm) & (np.abs(cols - c[1]) <= h)) | (
                (np.abs(cols - c[1]) <= arm) & (np.abs(rows - c[0]) <= h))
            img[:, cross] = 0.95
        # ethnicity: coloured square
        c = _centre(QUADRANTS["ethnicity"], s) + shift[2]
        sq = (np.abs(rows - c[0]) <= 0.85 * h) & (np.abs(cols - c[1]) <= 0.85 * h)
        img[:, sq] = palette[int(eth[i])][:, None]
        # distractor: random colour, disc or square, half the time
        if rng.random() < 0.5:
            c = _centre((1, 1), s) + shift[3]
            if rng.random() < 0.5:
                shape = (rows - c[0]) ** 2 + (cols - c[1]) ** 2 <= h**2
            else:
                shape = (np.abs(rows - c[0]) <= 0.85 * h) & (np.abs(cols - c[1]) <= 0.85 * h)
            img[:, shape] = rng.uniform(0.1, 1.0, 3)[:, None]
        images[i] = np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)
    ids = pd.Index([f"synth-{i:05d}" for i in range(n)], name="image")
    labels = pd.DataFrame({"age": age, "sex": sex, "ethnicity": eth}, index=ids)
    source = {"loader": "synthetic", "n_images": n, "image_size": [s, s], "noise": float(noise),
              "regions": {k: f"quadrant (row {q[0]}, column {q[1]})" for k, q in QUADRANTS.items()}}
    return ImageSet(images, labels, face_task(4),
                    {"sex": ["absent", "present"], "ethnicity": list(COLOURS)},
                    region_masks(s), source)

"""Fixtures for the 2D part: a tiny fake UTKFace folder of generated JPEGs, one torch thread."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

#: Valid UTKFace names (age, gender, race) written by ``fake_utkface``; one is race 4 "Others".
VALID = [
    "26_1_2_20170116174525125.jpg.chip.jpg",
    "1_0_0_20161219140623097.jpg.chip.jpg",
    "45_0_1_20170109150557335.jpg",
    "80_1_3_20170110122615427.jpg.chip.jpg",
    "33_0_0_20170117190916471.jpg.chip.jpg",
    "8_1_2_20170109201852138.jpg.chip.jpg",
    "61_0_1_20170120133844583.jpg.chip.jpg",
    "19_1_3_20170116165617563.jpg.chip.jpg",
    "52_1_4_20170117191040519.jpg.chip.jpg",
]
#: Malformed names as found in real copies (race field missing) and other breakages.
MALFORMED = [
    "39_1_20170116174525125.jpg.chip.jpg",
    "61_1_20170109142408075.jpg.chip.jpg",
    "24_0_1_2017010414.jpg.chip.jpg",
    "age_0_1_20170104142408075.jpg",
]


def write_jpeg(path: Path, rng: np.random.Generator, size: tuple[int, int] = (40, 36)) -> Path:
    from PIL import Image

    arr = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path, format="JPEG", quality=90)
    return path


@pytest.fixture
def fake_utkface(tmp_path: Path) -> Path:
    """VALID and MALFORMED JPEGs (non-square, so resizing is exercised) plus a non-image file."""
    rng = np.random.default_rng(7)
    folder = tmp_path / "UTKFace"
    folder.mkdir()
    for name in [*VALID, *MALFORMED]:
        write_jpeg(folder / name, rng)
    (folder / "README.txt").write_text("not an image")
    return folder


@pytest.fixture(autouse=True)
def _quiet_and_one_thread(monkeypatch):
    # One thread: on a shared 2-core machine two threads per process were several times slower.
    monkeypatch.setenv("CI", "1")
    was = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(was)

"""UTKFace file-name parsing and loading; the generic image folder + CSV loader."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deeplsm.exceptions import DeepLSMError
from deeplsm.faces import load_image_folder, load_utkface, parse_utkface_name, read_image
from tests.faces.conftest import MALFORMED, VALID, write_jpeg


@pytest.mark.parametrize(("name", "expected"), [
    ("26_1_2_20170116174525125.jpg.chip.jpg", (26, 1, 2)),
    ("100_0_0_20170112213500903.jpg.chip.jpg", (100, 0, 0)),
    ("1_1_4_20161223215528347.jpg", (1, 1, 4)),
    ("/some/dir/45_0_3_20170119180141213.JPG.CHIP.JPG", (45, 0, 3)),
])
def test_parse_valid(name, expected):
    assert parse_utkface_name(name) == expected


@pytest.mark.parametrize("name", [
    "39_1_20170116174525125.jpg.chip.jpg",      # race missing (real copies have a few)
    "61_3_20170109150557335.jpg.chip.jpg",      # race missing, gender looks like race
    "26_2_2_20170116174525125.jpg.chip.jpg",    # gender 2
    "26_1_5_20170116174525125.jpg.chip.jpg",    # race 5
    "26_1_2_2017011617452512.jpg.chip.jpg",     # 16-digit datetime
    "1234_1_2_20170116174525125.jpg",           # 4-digit age
    "130_1_2_20170116174525125.jpg",            # age over 120
    "26_1_2_20170116174525125.png",             # not the UTKFace extension
    "26_1_2_20170116174525125.jpg.chip.jpg.bak",
    "x26_1_2_20170116174525125.jpg",
    "",
])
def test_parse_malformed(name):
    assert parse_utkface_name(name) is None


def test_load_fake_folder_drops_others_and_counts_malformed(fake_utkface):
    ds = load_utkface(fake_utkface, image_size=24)
    assert ds.images.shape == (len(VALID) - 1, 3, 24, 24)
    assert ds.images.dtype == np.uint8
    assert ds.source["n_malformed"] == len(MALFORMED)
    assert set(ds.source["malformed_examples"]) == set(MALFORMED)
    assert ds.source["n_others"] == 1 and ds.source["others"] == "dropped"
    assert ds.task.get("ethnicity").n_classes == 4
    row = ds.labels.loc["26_1_2_20170116174525125.jpg.chip.jpg"]
    assert (row["age"], row["sex"], row["ethnicity"]) == (26, 1, 2)
    assert ds.labels["ethnicity"].max() <= 3
    assert ds.label_text("ethnicity", 2) == "Asian" and ds.label_text("sex", 1) == "female"


def test_load_keep_others_and_default_size(fake_utkface):
    ds = load_utkface(fake_utkface, keep_others=True)
    assert ds.images.shape == (len(VALID), 3, 200, 200)  # the paper's pre-processing
    assert ds.task.get("ethnicity").n_classes == 5
    assert ds.labels.loc["52_1_4_20170117191040519.jpg.chip.jpg", "ethnicity"] == 4
    assert ds.class_names["ethnicity"][4] == "Others"


def test_subset_is_seeded(fake_utkface):
    a = load_utkface(fake_utkface, image_size=16, subset=4, random_state=3)
    b = load_utkface(fake_utkface, image_size=16, subset=4, random_state=3)
    c = load_utkface(fake_utkface, image_size=16, subset=4, random_state=4)
    assert len(a) == 4 and a.ids == b.ids
    np.testing.assert_array_equal(a.images, b.images)
    assert a.ids != c.ids or not np.array_equal(a.images, c.images)


def test_unreadable_image_is_skipped(fake_utkface):
    (fake_utkface / "30_0_1_20170116174525999.jpg").write_bytes(b"not a jpeg")
    ds = load_utkface(fake_utkface, image_size=16)
    assert ds.source["n_unreadable"] == 1
    assert "30_0_1_20170116174525999.jpg" not in ds.ids


def test_read_image_scales_to_uint8_rgb(tmp_path, rng):
    p = write_jpeg(tmp_path / "a.jpg", rng, size=(30, 50))
    x = read_image(p, 20)
    assert x.shape == (3, 20, 20) and x.dtype == np.uint8


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(DeepLSMError, match="image folder does not exist"):
        load_utkface(tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DeepLSMError, match="no UTKFace images"):
        load_utkface(empty)


def test_only_malformed_names(tmp_path, rng):
    for name in MALFORMED:
        write_jpeg(tmp_path / name, rng)
    with pytest.raises(DeepLSMError, match="4 with malformed names"):
        load_utkface(tmp_path)


# --- generic folder + CSV -------------------------------------------------------------------
@pytest.fixture
def folder_csv(tmp_path, rng):
    names = [f"img{i}.png" for i in range(6)]
    from PIL import Image

    for n in names:
        Image.fromarray(rng.integers(0, 256, (12, 14, 3), dtype=np.uint8)).save(tmp_path / n)
    df = pd.DataFrame({"file": names, "score": np.linspace(2, 30, 6), "flag": [0, 1] * 3,
                       "grp": [0, 1, 2, 0, 1, 2]})
    df.to_csv(tmp_path / "labels.csv", index=False)
    return tmp_path, tmp_path / "labels.csv"


def test_image_folder_with_csv(folder_csv):
    folder, csv = folder_csv
    ds = load_image_folder(folder, csv, outputs=["score", "flag:binary", "grp:multiclass"], image_size=16)
    assert ds.images.shape == (6, 3, 16, 16)
    assert [o.kind for o in ds.task] == ["regression", "binary", "multiclass"]
    assert ds.task.get("grp").n_classes == 3
    assert ds.labels.loc["img3.png", "score"] == pytest.approx(2 + 3 * 28 / 5)


@pytest.mark.parametrize(("edit", "match"), [
    (lambda df: df.rename(columns={"file": "name"}), "needs a file column"),
    (lambda df: df.assign(file=["missing.png", *df["file"][1:]]), "not in"),
    (lambda df: df.assign(flag=[0, 1, 2, 0, 1, 0]), "must be 0/1"),
    (lambda df: df.assign(score=["a", 1, 2, 3, 4, 5]), "non-numeric"),
])
def test_image_folder_bad_csv(folder_csv, edit, match):
    folder, csv = folder_csv
    edit(pd.read_csv(csv)).to_csv(csv, index=False)
    with pytest.raises(DeepLSMError, match=match):
        load_image_folder(folder, csv, outputs=["score", "flag:binary", "grp:multiclass"], image_size=16)


def test_image_folder_unparseable_csv(folder_csv):
    folder, csv = folder_csv
    csv.write_bytes(b"\x00\x01\x02")
    with pytest.raises(DeepLSMError):
        load_image_folder(folder, csv)
    with pytest.raises(DeepLSMError, match="labels CSV does not exist"):
        load_image_folder(folder, folder / "none.csv")

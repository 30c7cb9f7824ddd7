"""UTKFace: strict file-name parsing and loading; a generic image folder with a CSV of labels."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from deeplsm._utils import check_random_state
from deeplsm.exceptions import DeepLSMError
from deeplsm.faces._dataset import RACE_NAMES, SEX_NAMES, ImageSet, face_task
from deeplsm.models import OutputSpec

log = logging.getLogger("deeplsm")

#: ``[age]_[gender]_[race]_[date&time].jpg`` with the optional ``.chip.jpg`` of the aligned and
#: cropped release; gender 0 male, 1 female; race 0 White, 1 Black, 2 Asian, 3 Indian, 4 Others.
UTKFACE_RE = re.compile(r"^(\d{1,3})_([01])_([0-4])_(\d{17})\.jpg(?:\.chip\.jpg)?$", re.IGNORECASE)
MAX_AGE = 120
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
UTKFACE_SIZE = 200


def parse_utkface_name(name: str) -> tuple[int, int, int] | None:
    """``(age, gender, race)`` from a UTKFace file name, or ``None`` if the name is malformed.

    Examples
    --------
    >>> parse_utkface_name("26_1_2_20170116174525125.jpg.chip.jpg")
    (26, 1, 2)
    >>> parse_utkface_name("39_1_20170116174525125.jpg.chip.jpg") is None  # race missing
    True
    """
    m = UTKFACE_RE.match(os.path.basename(str(name)))
    if m is None:
        return None
    age = int(m.group(1))
    if age > MAX_AGE:
        return None
    return age, int(m.group(2)), int(m.group(3))


def read_image(path: str | os.PathLike, size: int | tuple[int, int]) -> np.ndarray:
    """An image file as uint8 RGB of shape (3, height, width), resized (bilinear) to ``size``."""
    from PIL import Image, UnidentifiedImageError

    hw = (size, size) if isinstance(size, int) else tuple(size)
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if im.size != (hw[1], hw[0]):
                im = im.resize((hw[1], hw[0]), Image.Resampling.BILINEAR)
            arr = np.asarray(im, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise DeepLSMError(f"{path}: cannot read image ({err})") from None
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def _check_folder(folder) -> Path:
    p = Path(folder)
    if not p.exists():
        raise DeepLSMError(f"image folder does not exist: {p}")
    if not p.is_dir():
        raise DeepLSMError(f"expected an image folder, got a file: {p}")
    return p


def _subset(n: int, subset: int | None, random_state) -> np.ndarray:
    if subset is None or subset >= n:
        return np.arange(n)
    if subset < 1:
        raise DeepLSMError(f"subset must be a positive number of images, got {subset}")
    return np.sort(check_random_state(random_state).choice(n, size=int(subset), replace=False))


def _read_all(paths: Sequence[Path], size, skipped: list[str]) -> tuple[np.ndarray, list[int]]:
    imgs, keep = [], []
    for i, p in enumerate(paths):
        try:
            imgs.append(read_image(p, size))
            keep.append(i)
        except DeepLSMError as err:
            skipped.append(str(err))
    if not imgs:
        raise DeepLSMError(f"none of the {len(paths)} images could be read, e.g. {skipped[0]}")
    return np.stack(imgs), keep


def load_utkface(
    folder: str | os.PathLike,
    *,
    keep_others: bool = False,
    image_size: int = UTKFACE_SIZE,
    subset: int | None = None,
    random_state: int | np.random.Generator | None = None,
) -> ImageSet:
    """Load UTKFace (or any folder of files named like it) as age / sex / ethnicity.

    Files whose names do not parse (for example with the race field missing, as a few in the
    public release) are skipped and counted in ``source['n_malformed']``; unreadable images in
    ``source['n_unreadable']``.

    Parameters
    ----------
    folder : path
        Folder holding ``[age]_[gender]_[race]_[datetime].jpg[.chip.jpg]`` files (searched
        recursively).
    keep_others : bool, default=False
        Keep race 4 ("Others") as a fifth class. The paper drops it and keeps four classes.
    image_size : int, default=200
        Images are resized to ``image_size`` × ``image_size`` (the paper: 200).
    subset : int or None, default=None
        Load a random subset of this many images (the paper: 9000).
    random_state : int, Generator or None
        Seeds the subset.

    Returns
    -------
    ImageSet
        Labels ``age`` (years), ``sex`` (0 male, 1 female), ``ethnicity`` (0 White, 1 Black,
        2 Asian, 3 Indian[, 4 Others]); the image ID is the file name.
    """
    root = _check_folder(folder)
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    rows, paths, malformed = [], [], []
    for p in files:
        parsed = parse_utkface_name(p.name)
        if parsed is None:
            malformed.append(p.name)
            continue
        age, sex, race = parsed
        if race == 4 and not keep_others:
            continue
        rows.append((p.name, age, sex, race))
        paths.append(p)
    n_others = sum(1 for p in files if (q := parse_utkface_name(p.name)) and q[2] == 4)
    if malformed:
        log.warning("%s: skipped %d file(s) with malformed UTKFace names, e.g. %s",
                    root, len(malformed), malformed[0])
    if not rows:
        raise DeepLSMError(
            f"no UTKFace images in {root}: expected files named [age]_[gender]_[race]_[datetime].jpg "
            f"(found {len(files)} image file(s), {len(malformed)} with malformed names)"
        )
    ids = [r[0] for r in rows]
    dup = len(ids) - len(set(ids))
    if dup:
        raise DeepLSMError(f"{root}: {dup} duplicate file name(s) in subfolders; image IDs must be unique")
    pick = _subset(len(rows), subset, random_state)
    rows = [rows[i] for i in pick]
    paths = [paths[i] for i in pick]
    unreadable: list[str] = []
    images, keep = _read_all(paths, image_size, unreadable)
    rows = [rows[i] for i in keep]
    labels = pd.DataFrame(rows, columns=["image", "age", "sex", "ethnicity"]).set_index("image")
    labels = labels.astype(float)
    n_classes = 5 if keep_others else 4
    source = {
        "loader": "utkface", "path": str(root), "n_files": len(files), "n_malformed": len(malformed),
        "malformed_examples": malformed[:10], "n_others": n_others,
        "others": "kept as class 4" if keep_others else "dropped",
        "n_unreadable": len(unreadable), "unreadable_examples": unreadable[:5],
        "subset": subset, "n_images": len(rows), "image_size": [image_size, image_size],
    }
    return ImageSet(images, labels, face_task(n_classes),
                    {"sex": list(SEX_NAMES), "ethnicity": list(RACE_NAMES[:n_classes])}, None, source)


_FILE_COLUMNS = ("file", "filename", "image", "path")


def load_image_folder(
    folder: str | os.PathLike,
    labels_csv: str | os.PathLike,
    *,
    outputs: Sequence[str | OutputSpec] | None = None,
    image_size: int = UTKFACE_SIZE,
    subset: int | None = None,
    random_state: int | np.random.Generator | None = None,
) -> ImageSet:
    """Any folder of 2D images plus a CSV of labels.

    Parameters
    ----------
    folder : path
        The images (paths in the CSV are relative to it).
    labels_csv : path
        A CSV with a file column (``file``, ``filename``, ``image`` or ``path``) and one column per
        label.
    outputs : sequence of str or OutputSpec, default=None
        ``name[:kind[:n_classes]]`` per label (e.g. ``age:regression``, ``sex:binary``,
        ``ethnicity:multiclass:4``); default: every other column, kind inferred as
        :func:`deeplsm.train.resolve_outputs` does (classification kinds must be named).
    image_size : int, default=200
    subset : int or None, default=None
    random_state : int, Generator or None
    """
    from deeplsm.train import check_targets, resolve_outputs

    root = _check_folder(folder)
    csv = Path(labels_csv)
    if not csv.is_file():
        raise DeepLSMError(f"labels CSV does not exist: {csv}")
    try:
        df = pd.read_csv(csv)
    except Exception as err:  # pandas raises several types
        raise DeepLSMError(f"{csv}: cannot read CSV ({type(err).__name__}: {err})") from None
    fcol = next((c for c in df.columns if str(c).lower() in _FILE_COLUMNS), None)
    if fcol is None:
        raise DeepLSMError(f"{csv}: needs a file column named one of {', '.join(_FILE_COLUMNS)}; "
                           f"columns are {', '.join(map(str, df.columns))}")
    if df.empty:
        raise DeepLSMError(f"{csv}: has no rows")
    df[fcol] = df[fcol].astype(str)
    if df[fcol].duplicated().any():
        raise DeepLSMError(f"{csv}: file {df[fcol][df[fcol].duplicated()].iloc[0]!r} is listed twice")
    labels = df.set_index(fcol)
    if outputs is None:
        outputs = [c for c in labels.columns]
        if not outputs:
            raise DeepLSMError(f"{csv}: has no label columns besides {fcol!r}")
    for o in outputs:
        name = o.name if isinstance(o, OutputSpec) else str(o).split("@")[0].split(":")[0]
        if name not in labels.columns:
            continue  # resolve_outputs names the missing column
        v = pd.to_numeric(labels[name], errors="coerce")
        if v.isna().any():
            raise DeepLSMError(f"{csv}: label column {name!r} has NaN or non-numeric values, e.g. "
                               f"for file {v.index[v.isna().to_numpy()][0]!r}")
        labels[name] = v
    task = resolve_outputs(labels, outputs)
    y = check_targets(labels, task)
    missing = [f for f in labels.index if not (root / f).is_file()]
    if missing:
        raise DeepLSMError(f"{len(missing)} image(s) listed in {csv.name} are not in {root}, "
                           f"e.g. {missing[0]}")
    pick = _subset(len(labels), subset, random_state)
    files = [labels.index[i] for i in pick]
    unreadable: list[str] = []
    images, keep = _read_all([root / f for f in files], image_size, unreadable)
    ids = [files[i] for i in keep]
    table = pd.DataFrame(y[pick][keep], columns=task.names, index=pd.Index(ids, name="image"))
    class_names = {}
    for spec in task:
        if spec.kind == "binary":
            class_names[spec.name] = ["0", "1"]
        elif spec.kind == "multiclass":
            class_names[spec.name] = [str(k) for k in range(spec.n_classes)]
    source = {"loader": "folder", "path": str(root), "labels": str(csv), "n_listed": len(labels),
              "n_unreadable": len(unreadable), "unreadable_examples": unreadable[:5],
              "subset": subset, "n_images": len(ids), "image_size": [image_size, image_size]}
    return ImageSet(images, table, task, class_names, None, source)

"""The reliability corpus: tiny inputs, a snapshot of the user's files, and the one-line check.

Every case asserts the exit code, exactly one ``deeplsm: error: ...`` line on stderr (log and
warning lines aside), no traceback, and that every file the user had is still there, byte for
byte.
"""

from __future__ import annotations

import builtins
import errno
import hashlib
import io
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from deeplsm.cli import main

SHAPE = (7, 8, 9)
N = 30


@pytest.fixture(autouse=True)
def _ci_and_one_thread(monkeypatch):
    import torch

    monkeypatch.setenv("CI", "1")
    monkeypatch.delenv("DEEPLSM_DEBUG", raising=False)
    was = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(was)


@pytest.fixture(scope="session")
def base(tmp_path_factory) -> Path:
    """A user's data folder, built once: NIfTI lesions, scores, a ROI image, a maps folder, a lesion
    cache with its scores, a trained run and a study configuration. Tests copy it."""
    from tests.train.conftest import make_cohort

    d = tmp_path_factory.mktemp("base") / "mydata"
    les = d / "lesions"
    les.mkdir(parents=True)
    rng = np.random.default_rng(0)
    data = (rng.random((N, *SHAPE)) < 0.3).astype(np.uint8)
    ids = [f"sub-{i:02d}" for i in range(N)]
    for sid, v in zip(ids, data):
        nib.save(nib.Nifti1Image(v.astype(np.float32), np.eye(4)), les / f"{sid}_lesion.nii.gz")
    y = data[:, 3, 4, 5] + 0.5 * data[:, 2, 2, 2] + 0.1 * rng.random(N)
    pd.DataFrame({"subject": ids, "score_1": y}).to_csv(d / "scores.csv", index=False)
    truth = np.zeros(SHAPE, np.int16)
    truth[3, 4, 5] = 1
    nib.save(nib.Nifti1Image(truth, np.eye(4)), d / "rois.nii.gz")
    maps = d / "maps"
    maps.mkdir()
    nib.save(nib.Nifti1Image(rng.random(SHAPE).astype(np.float32), np.eye(4)), maps / "ig_score_1.nii.gz")
    (d / "notes.txt").write_text("my own notes\n")

    cohort, scores = make_cohort()
    cohort.save(d / "tiny.lesions.npz")
    scores.reset_index().to_csv(d / "tiny_scores.csv", index=False)
    (d / "study.toml").write_text(
        '[cohort]\nsource = "tiny.lesions.npz"\ngrid = "native"\n'
        '[scores]\nsource = "tiny_scores.csv"\ncolumns = ["score_a"]\n'
        '[models]\nmodes = []\n'
        '[classical]\nmethods = ["vlsm"]\nsubjects = "all"\npermutations = 5\nmin_subjects = 3\n')
    assert main(["train", "--lesions", str(d / "tiny.lesions.npz"), "--scores", str(d / "tiny_scores.csv"),
                 "--outputs", "score_a", "--epochs", "1", "--batch-size", "8", "--threads", "1",
                 "--out", str(d / "run"), "--quiet"]) == 0
    return d


def _copy_or_link(src: str, dst: str) -> None:
    # The trained run's checkpoints (~220 MB) are hard links, not copies: a hundred tests would
    # otherwise write tens of GB. A test that damages one must replace the file, not edit it in
    # place (see test_damaged_state._truncate).
    if src.endswith(".ckpt"):
        os.link(src, dst)
    else:
        shutil.copy2(src, dst)


@pytest.fixture
def mydata(base, tmp_path) -> Path:
    """A fresh copy of the user's data folder, under ``tmp_path/mydata``."""
    return Path(shutil.copytree(base, tmp_path / "mydata", symlinks=True, copy_function=_copy_or_link))


_HASHES: dict[tuple, str] = {}


def _sha256(f: Path) -> str:
    st = f.stat()
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        _HASHES[key] = hashlib.sha256(f.read_bytes()).hexdigest()
    return _HASHES[key]


def snapshot(*roots: Path) -> dict[str, str]:
    """SHA-256 of every file under ``roots`` (hidden ones too), by path."""
    out = {}
    for root in roots:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for f in files:
            out[str(f)] = _sha256(f)
    return out


def argv_for(cmd: str, d: Path, out: str) -> list[str]:
    """A tiny, valid command line of ``cmd`` reading the user's files in ``d``, writing ``out``."""
    les, scores = str(d / "lesions"), str(d / "scores.csv")
    return {
        "synth": ["synth", "--n", "2", "--voxel-size", "12", "--out", out],
        "simulate": ["simulate", "--lesions", les, "--n-rois", "1", "--roi-size", "1",
                     "--min-patients", "3", "--out", out],
        "train": ["train", "--lesions", str(d / "tiny.lesions.npz"), "--scores", str(d / "tiny_scores.csv"),
                  "--outputs", "score_a", "--epochs", "1", "--batch-size", "8", "--threads", "1",
                  "--out", out],
        "explain": ["explain", "--run", str(d / "run"), "--methods", "occlusion", "--max-subjects", "1",
                    "--occlusion-window", "8", "--occlusion-stride", "8", "--out", out],
        "evaluate": ["evaluate", "--maps", str(d / "maps"), "--truth", str(d / "rois.nii.gz"),
                     "--mask", "none", "--n-thresholds", "20", "--out", out],
        "vlsm": ["vlsm", "--lesions", les, "--scores", scores, "--min-subjects", "3", "--permutations", "5",
                 "--out", out],
        "svr": ["svr", "--lesions", les, "--scores", scores, "--min-subjects", "3", "--permutations", "0",
                "--out", out],
        "ridge": ["ridge", "--lesions", les, "--scores", scores, "--min-subjects", "3", "--permutations", "0",
                  "--out", out],
        "study": ["study", "--config", str(d / "study.toml"), "--out", out],
        "demo": ["demo", "--quick", "--out", out],
        "faces": ["faces", "--synthetic", "--quick", "--mode", "multi", "--out", out],
    }[cmd] + ([] if cmd == "evaluate" else ["--quiet"])


COMMANDS = ("synth", "simulate", "train", "explain", "evaluate", "vlsm", "svr", "ridge", "study", "demo",
            "faces")


def run(capsys, argv: list[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(argv)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def assert_one_line(rc: int, err: str, *, code: int = 2, match: str = "",
                    prefix: str = "deeplsm: error:") -> str:
    """Exit ``code``, exactly one ``prefix`` line containing ``match``, no traceback; return it."""
    assert rc == code, err
    assert "Traceback" not in err and '  File "' not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    hits = [line for line in lines if line.startswith(prefix)]
    assert len(hits) == 1, err
    assert match in hits[0], hits[0]
    others = [line for line in lines if line not in hits]
    assert all(line.startswith("deeplsm: ") for line in others), err  # log and warning lines only
    return hits[0]


def leftovers(folder: Path) -> list[Path]:
    """deeplsm's temporary files and folders under ``folder``."""
    return [p for p in folder.rglob("*") if ".deeplsm-tmp-" in p.name]


@pytest.fixture
def read_only(monkeypatch):
    """Make a folder read-only (mode 0555); restored afterwards so pytest can clean up."""
    made: list[Path] = []

    def apply(folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o555)
        made.append(folder)
        return folder

    yield apply
    for f in made:
        f.chmod(0o755)


@pytest.fixture
def unreadable(monkeypatch):
    """Make a file unreadable: mode 0000, and, for the superuser (who reads it anyway), ``open``
    of that file raises the ``PermissionError`` any other user gets."""
    made: list[Path] = []

    def apply(path: Path) -> Path:
        path.chmod(0)
        made.append(path)
        if os.geteuid() == 0:
            target = str(path.resolve())
            real = builtins.open

            def guarded(file, *a, **k):
                if isinstance(file, str | os.PathLike) and os.path.realpath(file) == target:
                    raise PermissionError(errno.EACCES, "Permission denied", os.fspath(file))
                return real(file, *a, **k)

            monkeypatch.setattr(builtins, "open", guarded)
            monkeypatch.setattr(io, "open", guarded)
        return path

    yield apply
    for p in made:
        p.chmod(0o644)


class _FullDiskFile:
    """A file whose writes stop with ENOSPC once ``budget`` bytes are written (a partial write
    reaches the file first, as on a real full disk)."""

    def __init__(self, fh, budget: int) -> None:
        self._fh = fh
        self._budget = budget

    def write(self, data) -> int:
        n = len(memoryview(data).cast("B"))
        if n > self._budget:
            self._fh.write(memoryview(data).cast("B")[: self._budget])
            self._fh.flush()
            self._budget = 0
            raise OSError(errno.ENOSPC, "No space left on device", self._fh.name)
        self._budget -= n
        return self._fh.write(data)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._fh.close()

    def __iter__(self):
        return iter(self._fh)

    def __getattr__(self, name):
        return getattr(self._fh, name)


@pytest.fixture
def full_disk(monkeypatch):
    """``full_disk(folder, when)``: files opened for writing under ``folder`` (and for which
    ``when(path)`` is true) fill the disk after a few bytes, raising ``OSError(ENOSPC)``."""

    def apply(folder: Path, when: Callable[[str], bool] = lambda p: True, budget: int = 64) -> None:
        root = str(folder.resolve())
        real = builtins.open

        def opener(file, mode="r", *a, **k):
            fh = real(file, mode, *a, **k)
            if (isinstance(file, str | os.PathLike) and any(c in mode for c in "wax+")
                    and os.path.realpath(file).startswith(root) and when(os.fspath(file))):
                return _FullDiskFile(fh, budget)
            return fh

        monkeypatch.setattr(builtins, "open", opener)
        monkeypatch.setattr(io, "open", opener)

    return apply

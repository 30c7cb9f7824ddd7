"""Issue 10.1: every command works from any working folder with relative paths, through a
symlinked folder with ``..``, and with a space and non-ASCII characters in the names.

Lightning reports checkpoint paths absolute and symlink-resolved; the run folder was relative, so
``train``, ``study``, ``demo`` and ``faces`` crashed after training. Each case here runs the
command for real (tiny sizes, one epoch) with ``chdir`` into a fresh folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from deeplsm._outputs import MARKER
from tests.reliability.conftest import COMMANDS, argv_for, run

#: What each command must have written under its --out.
PRODUCTS = {
    "synth": "participants.tsv", "simulate": "scores.csv", "train": "metrics.json",
    "explain": "maps.json", "evaluate": None, "vlsm": "summary.json", "svr": "summary.json",
    "ridge": "summary.json",
    "study": "metrics.json", "demo": "report.html", "faces": "report.html",
}
CASES = [*[(cmd, "relative") for cmd in COMMANDS], ("train", "symlink"), ("train", "space non-ASCII")]


@pytest.mark.parametrize(("cmd", "case"), CASES)
def test_command_with_relative_paths(cmd, case, base, tmp_path, capsys, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    if case == "symlink":
        shutil.copytree(base, tmp_path / "stored data", symlinks=True)
        (work / "link").symlink_to(tmp_path / "stored data")
        # ".." after a symlink is the parent of its target, as the operating system resolves it
        data, out = Path("link/lesions/.."), "link/lesions/../out"
    elif case == "space non-ASCII":
        shutil.copytree(base, work / "mes données", symlinks=True)
        data, out = Path("mes données"), "résultats ü/out"
    else:
        shutil.copytree(base, work / "data", symlinks=True)
        data, out = Path("data"), "out"
    if cmd == "evaluate":
        out += ".json"
    monkeypatch.chdir(work)
    rc, _, err = run(capsys, argv_for(cmd, data, out))
    assert rc == 0, err
    assert "Traceback" not in err
    produced = work / out
    if cmd == "evaluate":
        assert json.loads(produced.read_text())["results"]
        assert produced.with_suffix(".png").is_file()
        return
    assert (produced / PRODUCTS[cmd]).is_file()
    assert (produced / MARKER).is_file()
    if cmd == "train":
        m = json.loads((produced / "metrics.json").read_text())
        assert m["training"]["multi"]["best_checkpoint"] == "checkpoints/best.ckpt"
        assert (produced / "checkpoints" / "best.ckpt").is_file()

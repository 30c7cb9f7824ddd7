"""Issue 11.2: errors of the file system and the environment are one line, exit 2, no traceback,
checked at the door where they can be, and never leave partial output or a truncated checkpoint."""

from __future__ import annotations

import os
import signal

import pytest
import torch

from deeplsm.train import load_trained
from tests.reliability.conftest import COMMANDS, argv_for, assert_one_line, leftovers, run, snapshot


@pytest.mark.parametrize("cmd", COMMANDS)
def test_read_only_output_folder(cmd, mydata, capsys, read_only):
    """Every command refuses a read-only place at the door, before any work."""
    ro = read_only(mydata / "ro")
    out = str(ro / ("out.json" if cmd == "evaluate" else "out"))
    before = snapshot(mydata)
    rc, _, err = run(capsys, argv_for(cmd, mydata, out))
    assert_one_line(rc, err, match="read-only")
    assert snapshot(mydata) == before and not any(ro.iterdir())


def test_read_only_existing_output_folder(mydata, capsys, read_only):
    ro = read_only(mydata / "ro")
    rc, _, err = run(capsys, argv_for("vlsm", mydata, str(ro)))
    assert_one_line(rc, err, match="read-only")


@pytest.mark.parametrize("cmd", COMMANDS)
def test_a_file_where_the_output_folder_should_be(cmd, mydata, capsys):
    before = snapshot(mydata)
    if cmd == "evaluate":  # its --out is a file; a file as its parent is the same mistake
        out, match = str(mydata / "notes.txt" / "ev.json"), "is a file, not a folder"
    else:
        out, match = str(mydata / "notes.txt"), "is a file, not a folder"
    rc, _, err = run(capsys, argv_for(cmd, mydata, out))
    assert_one_line(rc, err, match=match)
    assert snapshot(mydata) == before


@pytest.mark.parametrize("cmd", ["synth", "vlsm", "train"])
def test_a_file_as_the_parent_of_the_output_folder(cmd, mydata, capsys):
    before = snapshot(mydata)
    rc, _, err = run(capsys, argv_for(cmd, mydata, str(mydata / "notes.txt" / "out")))
    assert_one_line(rc, err, match="notes.txt is a file, not a folder")
    assert snapshot(mydata) == before


@pytest.mark.parametrize("cmd", ["synth", "vlsm"])
def test_full_disk_leaves_no_partial_output(cmd, mydata, tmp_path, capsys, full_disk):
    out = tmp_path / "out"
    before = snapshot(mydata)
    full_disk(tmp_path)
    rc, _, err = run(capsys, argv_for(cmd, mydata, str(out)))
    assert_one_line(rc, err, match="no space left on the device")
    assert not out.exists() and not leftovers(tmp_path)
    assert snapshot(mydata) == before


def test_full_disk_during_training_leaves_the_last_good_checkpoint(mydata, tmp_path, capsys, full_disk,
                                                                   monkeypatch):
    """The disk fills while epoch 2 writes its checkpoint: the run stops with one line, the epoch-1
    checkpoints are intact (not truncated), and --resume finishes the run."""
    out = tmp_path / "run"
    argv = argv_for("train", mydata, str(out))
    argv[argv.index("--epochs") + 1] = "2"
    saves = []

    def second_epoch(path: str) -> bool:
        if ".ckpt" not in os.path.basename(path):
            return False
        saves.append(path)
        return len(saves) > 2  # epoch 1 writes best.ckpt and last.ckpt

    full_disk(tmp_path, second_epoch, budget=1000)
    rc, _, err = run(capsys, argv)
    assert_one_line(rc, err, match="no space left on the device")
    ck = out / "checkpoints"
    assert not leftovers(out)
    for name in ("best.ckpt", "last.ckpt"):
        state = torch.load(ck / name, map_location="cpu", weights_only=False)
        assert state["epoch"] == 0  # epoch 1's, complete
    assert not (out / "metrics.json").exists()
    monkeypatch.undo()  # space again
    assert run(capsys, ["train", "--resume", "--out", str(out), "--quiet"])[0] == 0
    assert load_trained(out).models


def test_unreadable_scores_file(mydata, tmp_path, capsys, unreadable):
    unreadable(mydata / "scores.csv")
    rc, _, err = run(capsys, argv_for("vlsm", mydata, str(tmp_path / "out")))
    assert_one_line(rc, err, match="permission denied")
    assert not (tmp_path / "out").exists()


def test_unreadable_lesion_file_is_not_called_corrupt(mydata, tmp_path, capsys, unreadable):
    unreadable(mydata / "lesions" / "sub-03_lesion.nii.gz")
    rc, _, err = run(capsys, argv_for("vlsm", mydata, str(tmp_path / "out")))
    line = assert_one_line(rc, err, match="permission denied")
    assert "sub-03" in line and "corrupt" not in line


def _signal_at_step(monkeypatch, signum: int, at: int = 2) -> list[str]:
    """Send ``signum`` to this process from inside training step ``at``; record later steps."""
    from deeplsm.train._module import LSMModule

    real = LSMModule.training_step
    calls: list[str] = []

    def step(self, batch, batch_idx):
        calls.append("step")
        if len(calls) == at:
            try:
                os.kill(os.getpid(), signum)
            finally:
                calls.append("signalled")
        return real(self, batch, batch_idx)

    monkeypatch.setattr(LSMModule, "training_step", step)
    return calls


@pytest.fixture
def interactive_sigint():
    """SIGINT as Python sets it up in a terminal (Ctrl-C raises KeyboardInterrupt). A test run
    started in the background by a non-interactive shell inherits SIGINT ignored (SIG_IGN),
    under which a Ctrl-C cannot happen at all; restored afterwards."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupted_training(signum, code, mydata, tmp_path, capsys, monkeypatch, interactive_sigint):
    """Ctrl-C or a kill stops training at once, with one line and 130/143; the run resumes."""
    calls = _signal_at_step(monkeypatch, signum)
    out = tmp_path / "run"
    argv = argv_for("train", mydata, str(out))
    argv[argv.index("--epochs") + 1] = "2"
    rc, _, err = run(capsys, argv)
    assert_one_line(rc, err, code=code, prefix="deeplsm: interrupted", match="--resume --out")
    assert calls[-1] == "signalled"  # no training step ran after the signal
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Lightning's SIG_IGN undone
    monkeypatch.undo()
    assert run(capsys, ["train", "--resume", "--out", str(out), "--quiet"])[0] == 0
    assert load_trained(out).models


def test_sigterm_during_faces_training_is_prompt(tmp_path, capsys, monkeypatch):
    calls = _signal_at_step(monkeypatch, signal.SIGTERM)
    rc, _, err = run(capsys, argv_for("faces", tmp_path, str(tmp_path / "faces")))
    assert_one_line(rc, err, code=143, prefix="deeplsm: interrupted")
    assert calls[-1] == "signalled"


def test_an_internal_error_is_one_line_with_exit_code_1(mydata, tmp_path, capsys, monkeypatch):
    import deeplsm.classical

    def broken(*a, **k):
        raise TypeError("a bug")

    monkeypatch.setattr(deeplsm.classical.MassUnivariateLSM, "fit", broken)
    rc, _, err = run(capsys, argv_for("vlsm", mydata, str(tmp_path / "out")))
    assert_one_line(rc, err, code=1, match="internal error (TypeError: a bug)")
    assert not (tmp_path / "out").exists()
    monkeypatch.setenv("DEEPLSM_DEBUG", "1")
    with pytest.raises(TypeError):
        run(capsys, argv_for("vlsm", mydata, str(tmp_path / "out")))

"""Issue 11.1: ``--out`` can never delete or replace the user's files.

Each case ends by comparing every file the user had, byte for byte, with a snapshot taken before.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from deeplsm._outputs import MARKER, clean_stale_temps, prepare_output, remove_output
from deeplsm._utils import atomic_path
from deeplsm.exceptions import DeepLSMError
from tests.reliability.conftest import argv_for, assert_one_line, leftovers, run, snapshot

CHEAP = ("synth", "simulate", "vlsm", "svr", "ridge", "evaluate")


def test_out_as_parent_of_the_inputs_deletes_nothing(mydata, capsys):
    """The issue's case: ``vlsm --lesions mydata/lesions --scores mydata/scores.csv --out mydata``."""
    before = snapshot(mydata)
    rc, _, err = run(capsys, argv_for("vlsm", mydata, str(mydata)))
    assert_one_line(rc, err, match="contains the input")
    assert snapshot(mydata) == before


@pytest.mark.parametrize("cmd", CHEAP)
def test_out_dot_is_refused(cmd, mydata, capsys, monkeypatch):
    monkeypatch.chdir(mydata)
    before = snapshot(mydata)
    rc, _, err = run(capsys, argv_for(cmd, mydata, "."))
    line = assert_one_line(rc, err)
    assert any(m in line for m in ("current folder", "contains the input", "is a folder")), line
    assert snapshot(mydata) == before


@pytest.mark.parametrize("cmd", CHEAP)
def test_empty_out_is_refused(cmd, mydata, capsys, monkeypatch):
    """``--out "$UNSET"``: an error, not the current folder."""
    monkeypatch.chdir(mydata)
    before = snapshot(mydata)
    rc, _, err = run(capsys, argv_for(cmd, mydata, ""))
    assert_one_line(rc, err, match="--out is empty")
    assert snapshot(mydata) == before


def test_out_containing_the_current_folder_is_refused(mydata, capsys, monkeypatch):
    monkeypatch.chdir(mydata / "lesions")
    before = snapshot(mydata)
    rc, _, err = run(capsys, argv_for("synth", mydata, ".."))
    assert_one_line(rc, err, match="contains the current folder")
    assert snapshot(mydata) == before


@pytest.mark.parametrize("overwrite", [False, True])
def test_synth_into_a_users_folder_deletes_nothing(overwrite, mydata, capsys):
    """``synth --out EXISTING`` used to delete EXISTING; --overwrite does not allow it either."""
    before = snapshot(mydata)
    argv = argv_for("synth", mydata, str(mydata / "lesions")) + (["--overwrite"] if overwrite else [])
    rc, _, err = run(capsys, argv)
    assert_one_line(rc, err, match="not written by deeplsm")
    assert snapshot(mydata) == before


def test_out_inside_an_input_folder_is_refused(mydata, capsys):
    before = snapshot(mydata)
    rc, _, err = run(capsys, argv_for("vlsm", mydata, str(mydata / "lesions" / "vlsm")))
    assert_one_line(rc, err, match="inside the input folder")
    assert snapshot(mydata) == before
    assert not (mydata / "lesions" / "vlsm").exists()


def test_replacing_deeplsm_output_needs_overwrite_and_keeps_the_users_files(mydata, capsys):
    out = mydata / "sim"
    argv = argv_for("simulate", mydata, str(out))
    assert run(capsys, argv)[0] == 0
    assert (out / MARKER).is_file()
    (out / "my_notes.txt").write_text("mine")          # the user adds a file to deeplsm's folder
    (out / "scores.csv").write_text("stale")          # and damages one of deeplsm's
    before = snapshot(mydata)
    rc, _, err = run(capsys, argv)
    assert_one_line(rc, err, match="add --overwrite")
    assert snapshot(mydata) == before
    rc, _, err = run(capsys, [*argv, "--overwrite"])
    assert rc == 0, err
    assert (out / "my_notes.txt").read_text() == "mine"        # kept
    assert (out / "scores.csv").read_text().startswith("subject,score_1")  # replaced
    after = snapshot(mydata)
    assert {k: v for k, v in after.items() if not k.startswith(str(out))} == {
        k: v for k, v in before.items() if not k.startswith(str(out))}
    assert not leftovers(mydata)


def test_overwrite_never_replaces_a_folder_holding_the_inputs(mydata, capsys):
    """A deeplsm folder used as input (here simulate's output, read by vlsm) is not replaced by
    writing into it, even with --overwrite."""
    sim = mydata / "sim"
    assert run(capsys, argv_for("simulate", mydata, str(sim)))[0] == 0
    before = snapshot(mydata)
    argv = ["vlsm", "--lesions", str(mydata / "lesions"), "--scores", str(sim / "scores.csv"),
            "--min-subjects", "3", "--permutations", "0", "--out", str(sim), "--overwrite", "--quiet"]
    rc, _, err = run(capsys, argv)
    assert_one_line(rc, err, match="contains the input")
    assert snapshot(mydata) == before


def test_evaluate_does_not_replace_a_users_file(mydata, capsys):
    before = snapshot(mydata)
    rc, _, err = run(capsys, argv_for("evaluate", mydata, str(mydata / "notes.txt")))
    assert_one_line(rc, err, match="not written by deeplsm")
    rc, _, err = run(capsys, argv_for("evaluate", mydata, str(mydata / "ev.json")))
    assert rc == 0, err
    rc, _, err = run(capsys, argv_for("evaluate", mydata, str(mydata / "ev.json")))
    assert_one_line(rc, err, match="add --overwrite")
    assert rc == 2
    assert run(capsys, [*argv_for("evaluate", mydata, str(mydata / "ev.json")), "--overwrite"])[0] == 0
    after = snapshot(mydata)
    assert {k: after[k] for k in before} == before


@pytest.mark.parametrize("cmd", ["study", "explain", "train_resume"])
def test_commands_that_resume_reuse_their_own_folder(cmd, mydata, capsys):
    """study/demo and train --resume rerun into their folder by design; explain adds maps to
    RUN/maps (inside its input run, which deeplsm wrote)."""
    if cmd == "study":
        argv = argv_for("study", mydata, str(mydata / "st"))
        assert run(capsys, argv)[0] == 0
    elif cmd == "explain":
        argv = [*argv_for("explain", mydata, "")[:-3], "--quiet"]  # without --out: RUN/maps
        assert "--out" not in argv
        assert run(capsys, argv)[0] == 0
        assert (mydata / "run" / "maps" / MARKER).is_file()
    else:
        argv = ["train", "--resume", "--out", str(mydata / "run"), "--quiet"]
    before = snapshot(mydata)
    rc, _, err = run(capsys, argv)
    assert rc == 0, err
    after = snapshot(mydata)
    kept = [k for k in before if not any(s in k for s in ("/st/", "/run/maps/", "/run/metrics.json",
                                                           "/run/predictions.csv", "/run/learning_curves"))]
    assert {k: after[k] for k in kept} == {k: before[k] for k in kept}


def test_atomic_path_never_deletes_a_folder_deeplsm_did_not_write(tmp_path):
    target = tmp_path / "theirs"
    target.mkdir()
    (target / "precious.txt").write_text("x")
    before = snapshot(target)
    with pytest.raises(DeepLSMError, match="not written by deeplsm"):
        with atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "new.txt").write_text("y")
    assert snapshot(target) == before
    assert not leftovers(tmp_path)
    with pytest.raises(DeepLSMError, match="not written by deeplsm"):
        remove_output(target)
    assert snapshot(target) == before


def test_replacing_a_deeplsm_folder_refuses_to_clobber_a_users_file_of_the_same_name(tmp_path):
    target = tmp_path / "out"
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "a.txt").write_text("deeplsm")
    (target / "b.txt").write_text("user")
    with pytest.raises(DeepLSMError, match=r"b\.txt was not written by deeplsm"):
        with atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "b.txt").write_text("deeplsm")
    assert (target / "b.txt").read_text() == "user" and (target / "a.txt").read_text() == "deeplsm"


def test_prepare_output_resolves_once(tmp_path, monkeypatch):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    monkeypatch.chdir(tmp_path)
    assert prepare_output("link/../link/out") == (tmp_path / "real" / "out").resolve()
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    with pytest.raises(DeepLSMError, match="symlink loop"):
        prepare_output("loop/out")


def test_stale_temporaries_of_a_killed_run_are_removed(tmp_path):
    dead = 2**22 + 12345  # above the default pid_max: no such process
    assert not Path(f"/proc/{dead}").exists()
    out = tmp_path / "out"
    with atomic_path(out) as tmp:
        tmp.mkdir()
    stale = [tmp_path / f".out.deeplsm-tmp-{dead}-abc", out / "sub" / f".x.deeplsm-tmp-{dead}-def"]
    live = tmp_path / f".out.deeplsm-tmp-{os.getpid()}-ghi"
    other = tmp_path / ".out.keepme"  # not ours
    for p in [*stale, live, other]:
        p.mkdir(parents=True)
    prepare_output(out, overwrite=True)
    assert not any(p.exists() for p in stale)
    assert live.exists() and other.exists()
    assert clean_stale_temps(tmp_path) == []


def test_marker_names_what_deeplsm_owns(mydata, capsys):
    out = mydata / "v"
    assert run(capsys, argv_for("vlsm", mydata, str(out)))[0] == 0
    body = json.loads((out / MARKER).read_text())
    assert "summary.json" in body["owns"] and "deeplsm" in body


def test_overwrite_keeps_the_users_files_inside_deeplsm_subfolders(mydata, capsys):
    run_dir = mydata / "run"
    assert run(capsys, [*argv_for("explain", mydata, "")[:-3], "--quiet"])[0] == 0  # into RUN/maps
    (run_dir / "maps" / "my_reading.txt").write_text("mine")
    (run_dir / "notes.md").write_text("mine too")
    rc, _, err = run(capsys, [*argv_for("train", mydata, str(run_dir)), "--overwrite"])
    assert rc == 0, err
    assert (run_dir / "maps" / "my_reading.txt").read_text() == "mine"
    assert (run_dir / "notes.md").read_text() == "mine too"
    assert not (run_dir / "maps" / "occlusion_score_a.nii.gz").exists()  # deeplsm's own, replaced
    assert "notes.md" not in json.loads((run_dir / MARKER).read_text())["owns"]
    remove_output(run_dir)  # deeplsm's own files go, the user's stay
    assert sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.is_file()) == [
        "maps/my_reading.txt", "notes.md"]


def test_a_rerun_does_not_claim_the_users_files(mydata, capsys):
    out = mydata / "st"
    argv = argv_for("study", mydata, str(out))
    assert run(capsys, argv)[0] == 0
    (out / "my_notes.txt").write_text("x")
    assert run(capsys, argv)[0] == 0
    assert "my_notes.txt" not in json.loads((out / MARKER).read_text())["owns"]

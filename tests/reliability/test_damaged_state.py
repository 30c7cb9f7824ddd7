"""Issue 11.3: damaged run state (a kill during a write, a full disk, or damage since) is detected:
a stage whose outputs changed is redone with a warning, a damaged record counts as absent, a
damaged checkpoint restarts that model, and damaged direct input is a clear error naming it."""

from __future__ import annotations

import json

import pytest
import torch

from deeplsm.study import load_config
from deeplsm.study._run import Study
from deeplsm.train import load_trained
from tests.reliability.conftest import argv_for, assert_one_line, run

GARBAGE = b"\xff\xfe\x00\x81garbage\x80\x00\x9c" * 8


def _truncate(path, keep: int = 100) -> None:
    data = path.read_bytes()
    path.unlink()  # a new file: checkpoints in `mydata` are hard links shared between tests
    path.write_bytes(data[:keep])


@pytest.fixture
def study_dir(mydata, capsys):
    """A finished tiny study (cohort cache, scores, VLSM only)."""
    out = mydata / "st"
    assert run(capsys, argv_for("study", mydata, str(out)))[0] == 0
    return out


def _rerun(mydata, out) -> Study:
    study = Study(load_config(mydata / "study.toml"), out, verbose=False)
    study.run()
    return study


def test_intact_study_is_cached(mydata, study_dir):
    study = _rerun(mydata, study_dir)
    assert study.ran == [] and set(study.skipped) == {"cohort", "simulate", "vlsm", "clusters"}
    rec = json.loads((study_dir / "stages" / "vlsm.json").read_text())
    assert "classical/vlsm/summary.json" in rec["outputs"]
    assert "maps/classical/vlsm_score_a.nii.gz" in rec["outputs"]


@pytest.mark.parametrize(
    ("damage", "redone"),
    [
        ("cohort/cohort.lesions.npz", "cohort"),                    # truncated cache
        ("simulation/scores.csv", "simulate"),                      # garbage
        ("classical/vlsm/score_a_stat.nii.gz", "vlsm"),             # truncated map
        ("maps/classical/vlsm_score_a.nii.gz", "vlsm"),             # missing map
    ],
)
def test_damaged_output_redoes_its_stage(damage, redone, mydata, study_dir):
    before = (study_dir / damage).read_bytes()
    target = study_dir / damage
    if damage.endswith("scores.csv"):
        target.write_bytes(GARBAGE)
    elif damage.startswith("maps/"):
        target.unlink()
    else:
        _truncate(target)
    with pytest.warns(UserWarning, match=f"output {damage} is missing or damaged; redoing the stage"):
        study = _rerun(mydata, study_dir)
    assert redone in study.ran
    if damage.endswith(".npz"):  # a zip records its write time; compare the content
        from deeplsm.cohort import LesionCohort

        assert LesionCohort.load(target).n_subjects == 24
    else:
        assert target.read_bytes() == before  # the same result again
    assert _rerun(mydata, study_dir).ran == []


@pytest.mark.parametrize("content", [b"", b'{"stage": "vlsm", "key": "ab'])
def test_truncated_or_empty_stage_record_counts_as_absent(content, mydata, study_dir):
    (study_dir / "stages" / "vlsm.json").write_bytes(content)
    with pytest.warns(UserWarning, match="vlsm.json is damaged"):
        study = _rerun(mydata, study_dir)
    assert study.ran == ["vlsm"]


def test_damaged_study_through_the_cli(mydata, study_dir, capsys):
    _truncate(study_dir / "cohort" / "cohort.lesions.npz")
    with pytest.warns(UserWarning, match="output cohort/cohort.lesions.npz is missing or damaged"):
        rc, _, err = run(capsys, argv_for("study", mydata, str(study_dir)))
    assert rc == 0, err


def test_stale_temporary_folders_in_a_study_are_removed(mydata, study_dir):
    stale = study_dir / "maps" / ".multi.deeplsm-tmp-4206666-x"
    stale.mkdir(parents=True)
    (stale / "half.nii.gz").write_bytes(b"half")
    _rerun(mydata, study_dir)
    assert not stale.exists()


def test_damaged_last_checkpoint_restarts_the_model(mydata, capsys):
    run_dir = mydata / "run"
    (run_dir / "metrics.json").unlink()
    (run_dir / "checkpoints" / "complete.json").unlink()  # as if killed before the end
    _truncate(run_dir / "checkpoints" / "last.ckpt", 2000)
    with pytest.warns(UserWarning, match=r"last\.ckpt is damaged .*; restarting model"):
        rc, _, err = run(capsys, ["train", "--resume", "--out", str(run_dir), "--quiet"])
    assert rc == 0, err
    torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["training"]["multi"]["epochs"] == 1
    assert load_trained(run_dir).models


def test_damaged_checkpoint_in_a_study_restarts_training(mydata, capsys):
    """A study's training stage killed mid-way, then the checkpoint damaged: it restarts."""
    cfg = load_config(mydata / "study.toml")
    cfg["models"].update(modes=["multi"], overrides={"max_epochs": 1, "batch_size": 8}, threads=1)
    cfg["explain"].update(methods=["occlusion"], max_subjects=1, window=8, stride=8)
    out = mydata / "st2"
    Study(cfg, out, verbose=False).run()
    run_dir = out / "train" / "multi"
    (out / "stages" / "train_multi.json").unlink()
    (run_dir / "metrics.json").unlink()
    (run_dir / "checkpoints" / "complete.json").unlink()
    _truncate(run_dir / "checkpoints" / "last.ckpt", 2000)
    with pytest.warns(UserWarning, match="last.ckpt is damaged"):
        study = Study(cfg, out, verbose=False)
        study.run()
    assert "train_multi" in study.ran


def test_truncated_lesion_cache_as_direct_input(mydata, tmp_path, capsys):
    _truncate(mydata / "tiny.lesions.npz")
    rc, _, err = run(capsys, argv_for("train", mydata, str(tmp_path / "run")))
    assert_one_line(rc, err, match="tiny.lesions.npz: not a readable deeplsm cohort cache")
    assert not (tmp_path / "run").exists()


def test_garbage_scores_as_direct_input(mydata, tmp_path, capsys):
    (mydata / "scores.csv").write_bytes(GARBAGE)
    rc, _, err = run(capsys, argv_for("vlsm", mydata, str(tmp_path / "out")))
    assert_one_line(rc, err, match="scores.csv: cannot read score table")


def test_damaged_run_folder_for_explain(mydata, tmp_path, capsys):
    (mydata / "run" / "config.json").write_bytes(b'{"mode": "mul')
    rc, _, err = run(capsys, argv_for("explain", mydata, str(tmp_path / "maps")))
    assert_one_line(rc, err, match="config.json: damaged run configuration")

"""``deeplsm train`` on the command line: a full run, --resume, and clean failures."""

from __future__ import annotations

import json

import lightning as L
import numpy as np
import pytest

from deeplsm.cli import main
from deeplsm.train import train_run


@pytest.fixture
def files(tmp_path, tiny):
    cohort, scores = tiny
    lesions = cohort.save(tmp_path / "tiny.lesions.npz")
    csv = tmp_path / "scores.csv"
    scores.reset_index().to_csv(csv, index=False)
    return tmp_path, str(lesions), csv, scores


def _train(lesions, scores, out, *extra):
    return main(["train", "--lesions", lesions, "--scores", str(scores), "--out", str(out),
                 "--epochs", "1", "--batch-size", "8", "--quiet", *extra])


def _assert_error(capsys, rc, match, out):
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("deeplsm: error:"), err
    assert match in err, err
    assert err.count("\n") == 1, err
    assert not out.exists()


def test_cli_train_multi(files, capsys):
    tmp, lesions, csv, _ = files
    out = tmp / "run"
    rc = _train(lesions, csv, out, "--outputs", "score_a,score_b,grp:multiclass", "--seed", "3")
    assert rc == 0
    err = capsys.readouterr().err
    assert "deeplsm train: test score_a: r²=" in err and "grp: bal.acc=" in err
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["seed"] == 3 and cfg["lesions"]["source"] == lesions and cfg["scores"]["source"] == str(csv)
    assert [o["kind"] for o in cfg["outputs"]] == ["regression01", "regression01", "multiclass"]
    for name in ("metrics.json", "predictions.csv", "learning_curves.png", "checkpoints/best.ckpt"):
        assert (out / name).is_file()


def test_cli_resume_after_kill(files, tiny, capsys):
    tmp, *_ = files
    cohort, scores = tiny
    out = tmp / "killed"

    class Kill(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.current_epoch == 1:
                raise KeyboardInterrupt

    # Lightning turns Ctrl-C into SystemExit(1) after saving nothing more: a killed run.
    with pytest.raises((SystemExit, KeyboardInterrupt)):
        train_run(out, cohort, scores, outputs=["score_b"], overrides={"max_epochs": 2, "batch_size": 8},
                  verbose=False, callbacks=[Kill()])
    assert not (out / "metrics.json").exists()
    assert main(["train", "--resume", "--out", str(out), "--quiet"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["training"]["multi"]["resumed"] and m["training"]["multi"]["epochs"] == 2
    assert np.isfinite(m["test"]["score_b"]["mse"])


@pytest.mark.parametrize(
    ("edit", "args", "match"),
    [
        ("rename", [], "lesion subjects have no score, e.g. sub-000"),
        (None, ["--outputs", "score_a,missing"], "missing score column(s) missing"),
        ("text", [], "column 'score_a' is not numeric (subject sub-003: 'abc')"),
        ("nan", [], "NaN or missing scores for 1 subject(s), e.g. sub-005"),
        (None, ["--outputs", "score_a:binary"], "'score_a' must be 0/1 for a binary output"),
        (None, ["--outputs", "score_a:ordinal"], "unknown kind 'ordinal'"),
    ],
)
def test_cli_bad_scores(files, capsys, edit, args, match):
    tmp, lesions, csv, scores = files
    df = scores.reset_index()
    if edit == "rename":
        df.loc[0, "subject"] = "sub-999"
    elif edit == "text":
        df["score_a"] = df["score_a"].astype(object)
        df.loc[3, "score_a"] = "abc"
    elif edit == "nan":
        df.loc[5, "score_b"] = np.nan
    df.to_csv(csv, index=False)
    out = tmp / "run"
    _assert_error(capsys, _train(lesions, csv, out, *args), match, out)


def test_cli_too_few_subjects(files, tiny, capsys):
    tmp, _, csv, _ = files
    cohort, _ = tiny
    small = cohort.subset(list(range(6))).save(tmp / "small.lesions.npz")
    out = tmp / "run"
    _assert_error(capsys, _train(str(small), csv, out), "too few subjects to split: 6 subjects", out)


def test_cli_missing_inputs(files, capsys):
    tmp, lesions, csv, _ = files
    out = tmp / "run"
    _assert_error(capsys, main(["train", "--scores", str(csv), "--out", str(out)]),
                  "--lesions is required", out)
    _assert_error(capsys, _train(lesions, tmp / "nope.csv", out), "scores file does not exist", out)
    _assert_error(capsys, main(["train", "--resume", "--out", str(out)]), "cannot resume", out)


def test_cli_existing_out(files, capsys):
    tmp, lesions, csv, _ = files
    out = tmp / "run"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert _train(lesions, csv, out) == 2
    assert "not empty and was not written by deeplsm" in capsys.readouterr().err
    assert (out / "keep.txt").exists()


def test_cli_tensorboard_without_the_package(files, capsys, monkeypatch):
    import deeplsm.train._run as run_mod

    monkeypatch.setattr(run_mod, "_tensorboard_available", lambda: False)
    tmp, lesions, csv, _ = files
    out = tmp / "run"
    _assert_error(capsys, _train(lesions, csv, out, "--tensorboard"), "needs the tensorboard package", out)
